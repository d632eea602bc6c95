#!/usr/bin/env bash
# Prints the directory of Argo CD's built-in resource health checks (resource_customizations/)
# from the pinned Argo CD release, fetched once through the Go module proxy into the Go module
# cache (`go mod download` checks it against the Go checksum database; instant when cached).
# argocd_health runs resource_customizations/bitnami.com/SealedSecret/health.lua from there,
# so the script Argo CD really ships is what the tests hold enseal-controller's statuses to.
set -euo pipefail

ARGOCD_MODULE=github.com/argoproj/argo-cd/v3
ARGOCD_VERSION=v3.5.1

if [[ -z ${GO:-} ]]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi
# Outside any module: only this one module is downloaded, none of its dependencies.
cd "$(mktemp -d)"
trap 'rmdir "$PWD" 2>/dev/null || true' EXIT
dir=$(GOTOOLCHAIN=local GOFLAGS= "$GO" mod download -json "$ARGOCD_MODULE@$ARGOCD_VERSION" |
	python3 -c 'import json, sys; m = json.load(sys.stdin); print(m.get("Dir") or sys.exit(m.get("Error", "no Dir")))')
test -f "$dir/resource_customizations/bitnami.com/SealedSecret/health.lua"
echo "$dir/resource_customizations"
