#!/usr/bin/env bash
# Prepares sops' own functional-tests crate (github.com/getsops/sops/v3@v3.13.3, directory
# functional-tests/) to run against any `sops`-compatible binary, once, into
#   ${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools/sops-functional-tests-v3.13.3-<hash>/
# and prints that directory. It holds:
#   crate/        the crate, with its PGP keys replaced by the test age keys (see below)
#   test-binary   a file naming the compiled test executable (libtest; run it with cwd=crate/)
#
# The crate's tests run `./sops` from their working directory, read `./.sops.yaml` and
# `./res/*`. Its creation rules name three PGP fingerprints and five of its res/ files are
# encrypted to PGP key FBC7B9E2...; until enseal reads PGP keys (issue 14) they are swapped for
# the test age keys in tests/keys/: FBC7B9E2... -> a, D7229043... -> b, B611A2F9... -> c (c is
# the key the "missing decryption key" test must not hold). The res/ files are re-keyed by the
# real sops 3.13.3 (`updatekeys`, which keeps the data key, the ciphertexts and the MAC), with
# the crate's own test PGP key imported into a throwaway GNUPGHOME. Nothing else is changed.
#
# Needs: Go (module download), gpg, cargo, and ENSEAL_SOPS_313_BIN (tests/tools/sops.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

module=github.com/getsops/sops/v3
version=v3.13.3
tools_cache=${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools
sops=${ENSEAL_SOPS_313_BIN:?set ENSEAL_SOPS_313_BIN to sops 3.13.3 (bash tests/tools/sops.sh)}

if [[ -z ${GO:-} ]]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

# A change to this script or to the test keys lands in a fresh directory.
hash=$(cat "$0" tests/keys/a.pub tests/keys/b.pub tests/keys/c.pub | sha256sum | cut -c1-12)
out=$tools_cache/sops-functional-tests-$version-$hash
if [[ -f $out/.complete && -f $out/test-binary && -x $(cat "$out/test-binary") ]]; then
	echo "$out"
	exit 0
fi

mkdir -p "$tools_cache"
exec 9>"$tools_cache/sops-functional-tests.lock"
flock 9
if [[ ! -f $out/.complete ]]; then
	start=$(date +%s)
	echo "sops-functional-tests.sh: preparing sops $version functional-tests into $out (once)" >&2
	# The module zip from the proxy, checked against the Go checksum database.
	src=$(GOTOOLCHAIN=local GOFLAGS= "$GO" mod download -json "$module@$version" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
	[[ -d $src/functional-tests ]] || {
		echo "sops-functional-tests.sh: $src has no functional-tests/" >&2
		exit 1
	}

	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	cp -r "$src/functional-tests" "$tmp/crate"
	chmod -R u+w "$tmp/crate"

	a=$(cat tests/keys/a.pub) b=$(cat tests/keys/b.pub) c=$(cat tests/keys/c.pub)
	sed -i -e 's/\bpgp:/age:/' \
		-e "s/FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4/$a/" \
		-e "s/D7229043384BCC60326C6FB9D8720D957C3D3074/$b/" \
		-e "s/B611A2F9F11D0FF82568805119F9B5DAEA91FF86/$c/" \
		"$tmp/crate/.sops.yaml"
	if grep -Eq 'pgp|[0-9A-F]{40}' "$tmp/crate/.sops.yaml"; then
		echo "sops-functional-tests.sh: a PGP key is left in .sops.yaml:" >&2
		cat "$tmp/crate/.sops.yaml" >&2
		exit 1
	fi

	# Re-key the PGP-encrypted res/ files to age key a with the real sops.
	gnupghome=$(mktemp -d)
	trap 'gpgconf --homedir "$gnupghome" --kill all >/dev/null 2>&1 || true; rm -rf "$gnupghome"' EXIT
	chmod 700 "$gnupghome"
	GNUPGHOME=$gnupghome gpg --batch --quiet --import "$src/pgp/sops_functional_tests_key.asc" 2>/dev/null
	rekeyed=0
	for f in "$tmp"/crate/res/*; do
		grep -q 'BEGIN PGP MESSAGE' "$f" || continue
		# The last creation rule (no path_regex) applies to res/: age key a.
		(cd "$tmp/crate" && GNUPGHOME=$gnupghome SOPS_AGE_KEY_FILE=/dev/null \
			"$sops" updatekeys --yes "res/${f##*/}" >/dev/null 2>&1) || {
			echo "sops-functional-tests.sh: sops updatekeys failed on res/${f##*/}" >&2
			exit 1
		}
		if grep -q 'BEGIN PGP MESSAGE' "$f"; then
			echo "sops-functional-tests.sh: res/${f##*/} still holds a PGP key after updatekeys" >&2
			exit 1
		fi
		rekeyed=$((rekeyed + 1))
	done
	echo "sops-functional-tests.sh: re-keyed $rekeyed res/ files from PGP to age" >&2

	# Build the tests once, with the crate's own Cargo.lock.
	target=$tools_cache/sops-functional-tests-target
	bin=$(cd "$tmp/crate" && CARGO_TARGET_DIR=$target cargo test --locked --no-run \
		--message-format=json 2>/dev/null |
		python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
')
	[[ -x $bin ]] || {
		echo "sops-functional-tests.sh: building the functional tests failed" >&2
		(cd "$tmp/crate" && CARGO_TARGET_DIR=$target cargo test --locked --no-run) >&2 || true
		exit 1
	}
	echo "$bin" >"$tmp/test-binary"
	echo "prepared in $(($(date +%s) - start))s" >"$tmp/.complete"
	rm -rf "$out"
	mv "$tmp" "$out"
	echo "sops-functional-tests.sh: done in $(($(date +%s) - start))s" >&2
fi
echo "$out"
