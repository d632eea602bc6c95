#!/usr/bin/env bash
# Builds the current sops, pinned (3.13.3), from Go source through the Go module proxy, once,
# into
#   ${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools/sops-<version>-<hash>/sops
# and prints that path; on a warm cache it only checks the binary is there (instant).
#
# Why a second sops beside the PyPI one (3.11.0): files written by 3.12/3.13 are in real
# repositories and Flux builds on 3.13, so the interop suite runs against both. `go install
# MODULE@VERSION` builds with that release's own go.mod/go.sum, checked against the Go
# checksum database, so no go.sum of ours is needed. About 3 minutes cold on 2 cores.
set -euo pipefail

SOPS_MODULE=github.com/getsops/sops/v3/cmd/sops
SOPS_VERSION=v3.13.3
TOOLS_CACHE=${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools

if [[ -z ${GO:-} ]]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

# Upstream's release build strips symbols; the version is compiled in (version.Version).
LDFLAGS="-s -w"

# A new pin, Go version or link flags lands in a fresh directory instead of a stale binary.
hash=$({ echo "$SOPS_MODULE@$SOPS_VERSION"; "$GO" env GOVERSION; echo "$LDFLAGS"; } |
	sha256sum | cut -c1-12)
out=$TOOLS_CACHE/sops-$SOPS_VERSION-$hash

if [[ -f $out/.complete && -x $out/sops ]]; then
	echo "$out/sops"
	exit 0
fi

mkdir -p "$TOOLS_CACHE"
# Two test binaries (or a developer and CI) at once: one builds, the other waits and then
# finds the cache filled.
exec 9>"$TOOLS_CACHE/sops.lock"
flock 9
if [[ ! -f $out/.complete ]]; then
	# GOTOOLCHAIN=local: never download a toolchain behind our back. CGO off: a static
	# binary, as upstream ships. GOFLAGS from the caller's go.mod settings do not apply here.
	export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
	echo "sops.sh: building sops $SOPS_VERSION into $out (once; a few minutes)" >&2
	start=$(date +%s)
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(cd "$tmp" && GOBIN="$tmp" "$GO" install -ldflags="$LDFLAGS" "$SOPS_MODULE@$SOPS_VERSION")
	"$tmp/sops" --version --disable-version-check | grep -q "^sops ${SOPS_VERSION#v}\b" || {
		echo "sops.sh: the built binary says $("$tmp/sops" --version --disable-version-check), not $SOPS_VERSION" >&2
		exit 1
	}
	echo "built in $(($(date +%s) - start))s with $("$GO" env GOVERSION)" >"$tmp/.complete"
	rm -rf "$out"
	mv "$tmp" "$out"
	echo "sops.sh: sops $SOPS_VERSION done in $(($(date +%s) - start))s" >&2
fi
echo "$out/sops"
