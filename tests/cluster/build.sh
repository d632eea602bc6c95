#!/usr/bin/env bash
# Builds the test control plane from Go source, once, into
# ${ENSEAL_CACHE:-$HOME/.cache/enseal}/cluster/bin (outside git):
#   kube-apiserver, kube-controller-manager  (k8s.io/kubernetes, go/kube)
#   etcd                                      (go.etcd.io/etcd/server/v3 embedded, go/etcd)
#   kubeseal, controller                      (Sealed Secrets, go/sealed-secrets)
# When the binaries for the pinned versions are already cached this only
# checks that they exist, so CI and the Rust test helper can call it every run.
#
# Usage: build.sh [--print-dirs]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# The go.sum files are committed; readonly makes a missing or changed sum an
# error instead of a silent re-resolution. GOTOOLCHAIN=local: never download a
# toolchain behind our back. CGO off gives static binaries, as upstream ships.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly -trimpath"
export GOTOOLCHAIN=local CGO_ENABLED=0

mkdir -p "$CLUSTER_CACHE/bin"
# Two test processes (or a developer and CI) may start at once; one builds,
# the other waits and then finds the cache filled.
exec 9>"$CLUSTER_CACHE/build.lock"
flock 9

# build MODULE_DIR OUT_DIR EXTRA_LDFLAGS PACKAGE...
build() {
	local mod=$1 out=$2 ldflags="-s -w $3" start
	shift 3
	local names=() p
	for p in "$@"; do names+=("$(basename "$p")"); done
	if [[ -f $out/.complete ]]; then
		return 0
	fi
	echo "build.sh: building ${names[*]} into $out" >&2
	start=$(date +%s)
	local tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(cd "$CLUSTER_GO_DIR/$mod" && "$GO" build -ldflags="$ldflags" -o "$tmp/" "$@")
	echo "built in $(($(date +%s) - start))s with $("$GO" env GOVERSION)" >"$tmp/.complete"
	rm -rf "$out"
	mv "$tmp" "$out"
	echo "build.sh: ${names[*]} done in $(($(date +%s) - start))s" >&2
}

# etcd first: smallest, and start.sh can be tried while the rest builds.
build etcd "$ETCD_BIN_DIR" "" .
build kube "$KUBE_BIN_DIR" "$KUBE_LDFLAGS" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
build sealed-secrets "$SEALED_SECRETS_BIN_DIR" "" \
	github.com/bitnami/sealed-secrets/cmd/kubeseal github.com/bitnami/sealed-secrets/cmd/controller

if [[ ${1:-} == --print-dirs ]]; then
	echo "ETCD_BIN_DIR=$ETCD_BIN_DIR"
	echo "KUBE_BIN_DIR=$KUBE_BIN_DIR"
	echo "SEALED_SECRETS_BIN_DIR=$SEALED_SECRETS_BIN_DIR"
fi
