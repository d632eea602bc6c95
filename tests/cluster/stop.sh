#!/usr/bin/env bash
# Stops a control plane started by start.sh and removes its state dir.
#
# Usage: stop.sh [--keep] STATE_DIR
#   --keep  leave STATE_DIR (certificates, logs) in place
set -euo pipefail

keep=""
if [[ ${1:-} == --keep ]]; then
	keep=1
	shift
fi
state=${1:?usage: stop.sh [--keep] STATE_DIR}
[[ -d $state ]] || exit 0 # already stopped and cleaned up
[[ -f $state/.enseal-cluster ]] || {
	echo "stop.sh: $state was not created by start.sh" >&2
	exit 1
}
[[ -z $keep ]] || touch "$state/keep"

# The supervisor stops the components in order and removes the state dir.
sup=$(cat "$state/pids/supervisor.pid" 2>/dev/null || true)
if [[ -n $sup ]] && kill -TERM "$sup" 2>/dev/null; then
	for _ in $(seq 200); do
		kill -0 "$sup" 2>/dev/null || break
		sleep 0.1
	done
fi

# Fallback when the supervisor is gone or stuck: kill what the pid files
# still name. Only pids recorded by start.sh are touched, and only while their
# command line still points at this state dir (pids get reused).
for f in "$state"/pids/*.pid; do
	[[ -f $f ]] || continue
	pid=$(cat "$f")
	if grep -qF "$state" "/proc/$pid/cmdline" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
done
if [[ -z $keep && -d $state ]]; then
	rm -rf "$state"
fi
