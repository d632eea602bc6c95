#!/usr/bin/env bash
# Builds the real kustomize CLI, pinned, from Go source (through the Go module proxy), once,
# and prints its path (see go-install.sh; instant when cached).
#
# Why not kubectl's built-in kustomize (also v5.5.0): `kubectl kustomize` has no
# --enable-exec flag, and without it kustomize skips KRM exec functions silently (the
# generator's output is just missing). The `enseal kustomize` tests need both: the real CLI
# for exec functions, kubectl for legacy exec plugins.
# About 50 s cold on 2 cores.
set -euo pipefail
# Upstream's release stamps the version; without it `kustomize version` says (devel).
exec bash "$(dirname "$0")/go-install.sh" kustomize sigs.k8s.io/kustomize/kustomize/v5 v5.5.0 \
	"-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/v5.5.0" version '^v5\.5\.0$'
