#!/usr/bin/env bash
# Re-pins the control plane to another Kubernetes release:
#   tests/cluster/go/kube/update.sh v1.37.2
# Rewrites go.mod from k8s.io/kubernetes' own go.mod at that version: every
# module it replaces with ./staging/... is replaced here with the same module
# at the matching release v0.MINOR.PATCH. Then `go mod tidy` refreshes go.sum.
set -euo pipefail
version=${1:?usage: update.sh v1.X.Y}
[[ $version =~ ^v1\.([0-9]+\.[0-9]+)$ ]] || { echo "not a release version: $version" >&2; exit 1; }
staging_version=v0.${BASH_REMATCH[1]}
cd "$(dirname "$0")"
GO=${GO:-go}

upstream=$("$GO" mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[[ -f $upstream ]] || { echo "could not download k8s.io/kubernetes@$version" >&2; exit 1; }

# Only modules the upstream go.mod requires; sample-* ones are replaced
# upstream but never required (and not all are published).
required=$(awk '/^require \(/{r=1; next} r && /^\)/{r=0} r && $1 ~ /^k8s\.io\// {print $1}' "$upstream")
{
	sed -n '1,/^replace (/p' go.mod | sed "s#^require k8s.io/kubernetes .*#require k8s.io/kubernetes $version#"
	grep -E '=> \./staging/' "$upstream" | awk '{print $1}' | while read -r m; do
		grep -qxF "$m" <<<"$required" && printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"
	done
	echo ')'
} >go.mod.new
mv go.mod.new go.mod
"$GO" mod tidy
echo "pinned k8s.io/kubernetes $version (staging $staging_version)"
