#!/usr/bin/env bash
# Builds the real promtool (Prometheus v3.16.0; the Go module versions Prometheus 3.x as
# v0.3xx.y), pinned, from Go source through the Go module proxy, once, and prints its path
# (see go-install.sh; instant when cached). deploy_alerts checks the PrometheusRule with it:
# `promtool check rules` and `promtool test rules` with the unit tests beside the rules.
set -euo pipefail
exec bash "$(dirname "$0")/go-install.sh" promtool github.com/prometheus/prometheus/cmd/promtool v0.316.0 \
	"-s -w -X github.com/prometheus/common/version.Version=3.16.0" --version 'promtool, version 3\.16\.0'
