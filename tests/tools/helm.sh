#!/usr/bin/env bash
# Builds the pinned helm from Go source (through the Go module proxy), once, into
#   ${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools/helm-<version>-<hash>/helm
# and prints that path. On a warm cache it only checks the binary is there, so CI
# (scripts/test.sh) can call it every run. The version is pinned in helm/go.mod next
# to this script (the single source of truth); go.sum is committed.
#
# Usage: helm.sh           build if needed, print the binary's path
#        helm.sh --check   print the path if already built, else exit 1 (never builds);
#                          the Rust tests use this so that a plain `cargo test` never
#                          starts a multi-minute build behind the developer's back
set -euo pipefail

TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MOD_DIR=$TOOLS_DIR/helm
TOOLS_CACHE=${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools

if [[ -z ${GO:-} ]]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

HELM_MODULE=helm.sh/helm/v4
HELM_VERSION=$(awk -v m="$HELM_MODULE" '$1 == "require" && $2 == m { print $3; exit } $1 == m { print $2; exit }' \
	"$MOD_DIR/go.mod")
if [[ -z $HELM_VERSION ]]; then
	echo "helm.sh: $MOD_DIR/go.mod does not require $HELM_MODULE" >&2
	exit 1
fi

# Upstream's Makefile stamps the version at link time; without it `helm version`
# says v4.x-unreleased and charts' kubeVersion checks see a wrong client.
LDFLAGS="-s -w -X $HELM_MODULE/internal/version.version=$HELM_VERSION"
LDFLAGS+=" -X $HELM_MODULE/internal/version.gitTreeState=clean"

# The key holds the version (readable) plus a hash of everything that decides the
# output (go.mod minus comments, go.sum, Go version, link flags): a new pin or
# toolchain lands in a fresh directory instead of reusing a stale binary.
hash=$(
	cd "$MOD_DIR" &&
		{ grep -v '^[[:space:]]*//' go.mod; cat go.sum; "$GO" env GOVERSION; echo "$LDFLAGS"; } |
			sha256sum | cut -c1-12
)
out=$TOOLS_CACHE/helm-$HELM_VERSION-$hash

if [[ -f $out/.complete && -x $out/helm ]]; then
	echo "$out/helm"
	exit 0
fi
if [[ ${1:-} == --check ]]; then
	echo "helm.sh: helm $HELM_VERSION is not built yet (expected $out/helm)" >&2
	exit 1
fi

mkdir -p "$TOOLS_CACHE"
# Two callers at once (a developer and CI, or two test runs): one builds, the
# other waits and then finds the cache filled.
exec 9>"$TOOLS_CACHE/helm.lock"
flock 9
if [[ ! -f $out/.complete ]]; then
	# readonly: a missing or changed go.sum entry is an error, never a silent
	# re-resolution. GOTOOLCHAIN=local: never download a toolchain behind our
	# back. CGO off gives a static binary, as upstream ships.
	export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly -trimpath"
	export GOTOOLCHAIN=local CGO_ENABLED=0
	echo "helm.sh: building helm $HELM_VERSION into $out (once; a few minutes on 2 cores)" >&2
	start=$(date +%s)
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(cd "$MOD_DIR" && "$GO" build -ldflags="$LDFLAGS" -o "$tmp/helm" "$HELM_MODULE/cmd/helm")
	"$tmp/helm" version --short >/dev/null
	echo "built in $(($(date +%s) - start))s with $("$GO" env GOVERSION)" >"$tmp/.complete"
	rm -rf "$out"
	mv "$tmp" "$out"
	echo "helm.sh: helm $HELM_VERSION done in $(($(date +%s) - start))s" >&2
fi
echo "$out/helm"
