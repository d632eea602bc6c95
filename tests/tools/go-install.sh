#!/usr/bin/env bash
# Builds a Go command, pinned, from source through the Go module proxy, once, into
#   ${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools/<name>-<version>-<hash>/<name>
# and prints that path; on a warm cache it only checks the binary is there (instant).
# Shared by the tests/tools/<peer>.sh scripts:
#
#   bash tests/tools/go-install.sh NAME MODULE VERSION LDFLAGS VERSION_ARGS EXPECTED
#
# VERSION_ARGS is what makes the binary print its version (word-split), EXPECTED a grep -E
# pattern that output must match. `go install MODULE@VERSION` builds with that release's own
# go.mod/go.sum, checked against the Go checksum database, so no go.sum of ours is needed.
set -euo pipefail

name=$1 module=$2 version=$3 ldflags=$4 version_args=$5 expected=$6
tools_cache=${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools

if [[ -z ${GO:-} ]]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

# A new pin, Go version or link flags lands in a fresh directory instead of a stale binary.
hash=$({ echo "$module@$version"; "$GO" env GOVERSION; echo "$ldflags"; } | sha256sum | cut -c1-12)
out=$tools_cache/$name-$version-$hash

if [[ -f $out/.complete && -x $out/$name ]]; then
	echo "$out/$name"
	exit 0
fi

mkdir -p "$tools_cache"
# Two test binaries (or a developer and CI) at once: one builds, the other waits and then
# finds the cache filled.
exec 9>"$tools_cache/$name.lock"
flock 9
if [[ ! -f $out/.complete ]]; then
	# GOTOOLCHAIN=local: never download a toolchain behind our back. CGO off: a static
	# binary, as upstream ships. GOFLAGS from the caller's go.mod settings do not apply here.
	export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
	echo "go-install.sh: building $name $version into $out (once)" >&2
	start=$(date +%s)
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(cd "$tmp" && GOBIN="$tmp" "$GO" install -ldflags="$ldflags" "$module@$version")
	# shellcheck disable=SC2086 # VERSION_ARGS is a word list on purpose
	said=$("$tmp/$name" $version_args 2>&1 | head -1)
	grep -Eq "$expected" <<<"$said" || {
		echo "go-install.sh: the built $name says '$said', not $version" >&2
		exit 1
	}
	echo "built in $(($(date +%s) - start))s with $("$GO" env GOVERSION)" >"$tmp/.complete"
	rm -rf "$out"
	mv "$tmp" "$out"
	echo "go-install.sh: $name $version done in $(($(date +%s) - start))s" >&2
fi
echo "$out/$name"
