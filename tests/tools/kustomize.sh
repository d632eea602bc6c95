#!/usr/bin/env bash
# Builds the real kustomize CLI, pinned, from Go source (through the Go module proxy), once,
# into
#   ${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools/kustomize-<version>-<hash>/kustomize
# and prints that path; on a warm cache it only checks the binary is there (instant).
#
# Why not kubectl's built-in kustomize (also v5.5.0): `kubectl kustomize` has no
# --enable-exec flag, and without it kustomize skips KRM exec functions silently (the
# generator's output is just missing). The `enseal kustomize` tests need both: the real CLI
# for exec functions, kubectl for legacy exec plugins.
#
# `go install MODULE@VERSION` builds with that release's own go.mod/go.sum, checked against
# the Go checksum database, so no go.sum of ours is needed. About 50 s cold on 2 cores.
set -euo pipefail

KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5
KUSTOMIZE_VERSION=v5.5.0
TOOLS_CACHE=${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools

if [[ -z ${GO:-} ]]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

# Upstream's release stamps the version; without it `kustomize version` says (devel).
LDFLAGS="-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION"

# A new pin, Go version or link flags lands in a fresh directory instead of a stale binary.
hash=$({ echo "$KUSTOMIZE_MODULE@$KUSTOMIZE_VERSION"; "$GO" env GOVERSION; echo "$LDFLAGS"; } |
	sha256sum | cut -c1-12)
out=$TOOLS_CACHE/kustomize-$KUSTOMIZE_VERSION-$hash

if [[ -f $out/.complete && -x $out/kustomize ]]; then
	echo "$out/kustomize"
	exit 0
fi

mkdir -p "$TOOLS_CACHE"
# Two test binaries (or a developer and CI) at once: one builds, the other waits and then
# finds the cache filled.
exec 9>"$TOOLS_CACHE/kustomize.lock"
flock 9
if [[ ! -f $out/.complete ]]; then
	# GOTOOLCHAIN=local: never download a toolchain behind our back. CGO off: a static
	# binary, as upstream ships. GOFLAGS from the caller's go.mod settings do not apply here.
	export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
	echo "kustomize.sh: building kustomize $KUSTOMIZE_VERSION into $out (once; about a minute)" >&2
	start=$(date +%s)
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(cd "$tmp" && GOBIN="$tmp" "$GO" install -ldflags="$LDFLAGS" "$KUSTOMIZE_MODULE@$KUSTOMIZE_VERSION")
	"$tmp/kustomize" version | grep -qx "$KUSTOMIZE_VERSION" || {
		echo "kustomize.sh: the built binary says $("$tmp/kustomize" version), not $KUSTOMIZE_VERSION" >&2
		exit 1
	}
	echo "built in $(($(date +%s) - start))s with $("$GO" env GOVERSION)" >"$tmp/.complete"
	rm -rf "$out"
	mv "$tmp" "$out"
	echo "kustomize.sh: kustomize $KUSTOMIZE_VERSION done in $(($(date +%s) - start))s" >&2
fi
echo "$out/kustomize"
