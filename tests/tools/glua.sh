#!/usr/bin/env bash
# Builds glua, the command-line interpreter of gopher-lua (the Lua 5.1 VM Argo CD runs its
# resource health checks in; v1.1.2 is what Argo CD v3.5.1's go.mod pins), from Go source
# through the Go module proxy, once, and prints its path (see go-install.sh; instant when
# cached). argocd_health runs Argo CD's own health.lua for SealedSecrets with it.
set -euo pipefail
exec bash "$(dirname "$0")/go-install.sh" glua github.com/yuin/gopher-lua/cmd/glua v1.1.2 \
	"-s -w" -v '^GopherLua '
