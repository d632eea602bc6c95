# shellcheck shell=bash
# Shared by build.sh and start.sh: where the Go toolchain is, which versions
# are pinned (read from the go.mod files, the single source of truth) and
# where their binaries live in the cache.

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER_GO_DIR=$CLUSTER_DIR/go
CLUSTER_CACHE=${ENSEAL_CACHE:-$HOME/.cache/enseal}/cluster

if [[ -z ${GO:-} ]]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

# pinned_version MODULE_DIR MODULE_PATH -> the version required in that go.mod
pinned_version() {
	awk -v m="$2" '$1 == "require" && $2 == m { print $3; exit } $1 == m { print $2; exit }' \
		"$CLUSTER_GO_DIR/$1/go.mod"
}

K8S_VERSION=$(pinned_version kube k8s.io/kubernetes)
ETCD_VERSION=$(pinned_version etcd go.etcd.io/etcd/server/v3)
SEALED_SECRETS_VERSION=$(pinned_version sealed-secrets github.com/bitnami/sealed-secrets)

# Kubernetes stamps its own version at link time (hack/lib/version.sh does it
# upstream); without this /version says v0.0.0-master, and clients that gate
# features on the server version (kubeseal, kube-rs users) misjudge the server.
kube_minor=${K8S_VERSION#v1.}
kube_minor=${kube_minor%%.*}
KUBE_LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	KUBE_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
	KUBE_LDFLAGS+=" -X $pkg.gitTreeState=clean"
done
unset kube_minor pkg

# component_dir MODULE_DIR NAME VERSION [EXTRA] -> cache directory for that build.
# The key holds the version (readable) plus a hash of everything that decides
# the output (go.mod minus comments, go.sum, sources, Go version, extra link
# flags), so changing a pin or the toolchain lands in a fresh directory
# instead of reusing stale binaries.
component_dir() {
	local mod=$1 name=$2 version=$3 extra=${4:-} hash
	hash=$(
		cd "$CLUSTER_GO_DIR/$mod" &&
			{ grep -v '^[[:space:]]*//' go.mod; cat go.sum ./*.go 2>/dev/null; "$GO" env GOVERSION; echo "$extra"; } |
				sha256sum | cut -c1-12
	)
	echo "$CLUSTER_CACHE/bin/$name-$version-$hash"
}

KUBE_BIN_DIR=$(component_dir kube kubernetes "$K8S_VERSION" "$KUBE_LDFLAGS")
ETCD_BIN_DIR=$(component_dir etcd etcd "$ETCD_VERSION")
SEALED_SECRETS_BIN_DIR=$(component_dir sealed-secrets sealed-secrets "$SEALED_SECRETS_VERSION")
