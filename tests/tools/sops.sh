#!/usr/bin/env bash
# Builds the current sops, pinned (3.13.3), from Go source through the Go module proxy, once,
# and prints its path (see go-install.sh; about 3 minutes cold on 2 cores, instant cached).
#
# Why a second sops beside the PyPI one (3.11.0): files written by 3.12/3.13 are in real
# repositories and Flux builds on 3.13, so the interop suite runs against both.
set -euo pipefail
# Upstream's release build strips symbols; the version is compiled in (version.Version).
exec bash "$(dirname "$0")/go-install.sh" sops github.com/getsops/sops/v3/cmd/sops v3.13.3 \
	"-s -w" "--version --disable-version-check" '^sops 3\.13\.3\b'
