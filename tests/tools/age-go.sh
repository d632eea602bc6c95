#!/usr/bin/env bash
# Builds the Go age tools (age, age-keygen, age-inspect, ...), pinned (v1.3.2), from Go source
# through the Go module proxy, once, and prints the directory holding them (see go-install.sh;
# under a minute cold, instant cached).
#
# Why beside Debian's age (1.1): age v1.3 added the post-quantum hybrid keys (`age1pq1...`,
# `AGE-SECRET-KEY-PQ-1...`, `age-keygen -pq`) that sops 3.12+ accepts, and the interop tests of
# those keys need the reference implementation that defines them.
set -euo pipefail
# Upstream's release build strips symbols; `age --version` prints the module version from the
# build info, which `go install module@version` records.
age=$(bash "$(dirname "$0")/go-install.sh" age 'filippo.io/age/cmd/...' v1.3.2 \
	"-s -w" "--version" '^v1\.3\.2$')
dir=$(dirname "$age")
for tool in age-keygen age-inspect; do
	[[ -x $dir/$tool ]] || {
		echo "age-go.sh: $dir has age but no $tool" >&2
		exit 1
	}
done
echo "$dir"
