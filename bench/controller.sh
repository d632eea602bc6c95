#!/usr/bin/env bash
# Controller benchmark, run by hand (not in CI): enseal-controller against the
# real Sealed Secrets controller (v0.40.0, default flags) on one throw-away
# control plane, each in a namespace of its own, one after the other.
#
#   bash bench/controller.sh [N]     # N SealedSecrets (default 1000)
#   ENSEAL_ONLY=1 bash bench/controller.sh   # skip the (slow) Sealed Secrets run
#   REPLICAS="1 2 3" bash bench/controller.sh  # enseal with 1, 2 and 3 active-active replicas
#                                            # (--shard-replicas), each count in a namespace
#                                            # of its own; the first count is compared with
#                                            # Sealed Secrets
#   BACKLOG=1 REPLICAS="1 2 3" ENSEAL_ONLY=1 bash bench/controller.sh
#                                            # the objects created first, then the replicas
#                                            # started: time from their start to all Secrets,
#                                            # the unseal throughput without the creates
#
# For each controller: with the controller up and its key (RSA 4096, the same
# adopted key for both) loaded, N SealedSecrets of 3 values each are created
# at once (16 parallel clients); measured is the time from the first create
# until all N Secrets exist, then the controller's resident memory after 15 s
# at rest. Values are sealed cluster-wide so one set of objects (made once by
# the real kubeseal) serves both namespaces; the decryption cost is the same
# in every scope.
#
# Needs: root (the Sealed Secrets controller only knows in-cluster config, so
# it runs in a private mount namespace with service-account files on /run),
# openssl, curl, python3, unshare, and the Go toolchain for the first
# tests/cluster/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
N=${1:-1000}
log() { printf '==> %s\n' "$*" >&2; }

log "building enseal-controller (release) and the control plane"
cargo build --release -q -p enseal-controller
bash tests/cluster/build.sh >&2
# shellcheck source=../tests/cluster/lib.sh
source tests/cluster/lib.sh
SS_BIN=$SEALED_SECRETS_BIN_DIR/controller
KUBESEAL=$SEALED_SECRETS_BIN_DIR/kubeseal
ENSEAL_BIN=$root/target/release/enseal-controller

work=$(mktemp -d "${TMPDIR:-/tmp}/enseal-bench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[[ -n ${state:-} ]] && bash tests/cluster/stop.sh "$state" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

out=$(bash tests/cluster/start.sh --watch-pid $$)
state=$(sed -n 's/^STATE_DIR=//p' <<<"$out")
kubeconfig=$(sed -n 's/^KUBECONFIG=//p' <<<"$out")
# shellcheck source=/dev/null
source "$state/env"
server=https://127.0.0.1:$API_PORT
api() {
	curl -sS --fail-with-body --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" \
		--key "$state/pki/admin.key" "$@"
}
post_json() { api -X POST -H 'Content-Type: application/json' --data-binary "$2" "$server$1" >/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

api -X PATCH -H 'Content-Type: application/apply-patch+yaml' \
	--data-binary @deploy/crds/bitnami.com_sealedsecrets.yaml \
	"$server/apis/apiextensions.k8s.io/v1/customresourcedefinitions/sealedsecrets.bitnami.com?fieldManager=bench&force=true" >/dev/null
for _ in $(seq 100); do
	api "$server/apis/bitnami.com/v1alpha1/sealedsecrets" >/dev/null 2>&1 && break
	sleep 0.2
done

log "one RSA-4096 sealing key, $N SealedSecrets x 3 values sealed by kubeseal"
openssl genrsa -traditional -out "$work/tls.key" 4096 2>/dev/null
openssl req -x509 -new -key "$work/tls.key" -subj /O=sealed-secret -days 3650 -out "$work/tls.crt" 2>/dev/null
mkdir -p "$work/sealed"
seq 1 "$N" | xargs -P 2 -I{} sh -c '
	printf "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s{}\",\"namespace\":\"NS\"},\"stringData\":{\"username\":\"user-{}\",\"password\":\"pw-{}-%s\",\"config\":\"url=https://db-{}.example\"}}" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d " \n")" |
		"$0" --cert "$1/tls.crt" --scope cluster-wide -o json >"$1/sealed/{}.json"' "$KUBESEAL" "$work"

key_secret_json() {
	python3 - "$work" <<-'PY'
		import base64, json, sys
		d = sys.argv[1]
		b = lambda f: base64.b64encode(open(f"{d}/{f}", "rb").read()).decode()
		print(json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
		    "metadata": {"name": "sealed-secrets-keybench",
		                 "labels": {"sealedsecrets.bitnami.com/sealed-secrets-key": "active"}},
		    "data": {"tls.key": b("tls.key"), "tls.crt": b("tls.crt")}}))
	PY
}

new_namespace() {
	post_json /api/v1/namespaces "{\"metadata\":{\"name\":\"$1\"}}"
	post_json "/api/v1/namespaces/$1/secrets" "$(key_secret_json)"
}

count_secrets() {
	api -H 'Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1' \
		"$server/api/v1/namespaces/$1/secrets" |
		python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["items"] if any(r.get("kind")=="SealedSecret" for r in i["metadata"].get("ownerReferences",[]))))'
}

wait_http() {
	for _ in $(seq 600); do
		curl -sf "http://127.0.0.1:$1$2" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "controller on port $1 never answered $2" >&2
	return 1
}

# create_objects NAMESPACE: the N sealed objects, created at once (16 parallel clients).
create_objects() {
	local ns=$1
	mkdir -p "$work/$ns"
	for f in "$work"/sealed/*.json; do
		sed "s/\"namespace\": \"NS\"/\"namespace\": \"$ns\"/" "$f" >"$work/$ns/${f##*/}"
	done
	ls "$work/$ns"/*.json | xargs -P 16 -I{} curl -sS --fail-with-body -o /dev/null \
		--cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
		-X POST -H 'Content-Type: application/json' --data-binary @{} \
		"$server/apis/bitnami.com/v1alpha1/namespaces/$ns/sealedsecrets"
}

# wait_secrets NAMESPACE PID...: until the N Secrets exist (fails if a controller dies).
wait_secrets() {
	local ns=$1 n pid
	shift
	while :; do
		n=$(count_secrets "$ns")
		((n >= N)) && return 0
		for pid in "$@"; do
			kill -0 "$pid" 2>/dev/null || {
				echo "controller $pid died" >&2
				return 1
			}
		done
		sleep 0.25
	done
}

# rss_kib PID...: resident memory summed over the processes, after 15 s at rest.
rss_kib() {
	local rss=0 pid
	sleep 15
	for pid in "$@"; do
		rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")))
	done
	echo "$rss"
}

# measure NAMESPACE PID... -> prints "seconds creates_seconds rss_kib": the objects created
# with the controllers running, timed from the first create to the last Secret.
measure() {
	local ns=$1 t0 t1 created
	shift
	t0=$(now)
	create_objects "$ns"
	created=$(now)
	wait_secrets "$ns" "$@"
	t1=$(now)
	python3 -c "print(f'{$t1-$t0:.2f} {$created-$t0:.2f} $(rss_kib "$@")')"
}

# run_enseal R -> prints "seconds creates_seconds rss_kib" for R replicas; with more than one
# they share the objects (--shard-replicas), and the objects are created once every replica
# reports all R members in the view it acts on (enseal_controller_shard_members).
run_enseal() {
	local r=$1 ns=bench-enseal-$1 i hp mp ports=() procs=() t0 t1
	# Runs in a subshell (process substitution): its own trap stops its replicas on any exit.
	trap 'kill "${procs[@]}" 2>/dev/null' EXIT
	new_namespace "$ns"
	if [[ ${BACKLOG:-} == 1 ]]; then
		create_objects "$ns"
		t0=$(now)
	fi
	for i in $(seq "$r"); do
		hp=$(free_port)
		mp=$(free_port)
		local shard=()
		((r > 1)) && shard=(--shard-replicas)
		"$ENSEAL_BIN" --kubeconfig "$kubeconfig" --namespace "$ns" --watch-namespace "$ns" \
			--listen-addr "127.0.0.1:$hp" --metrics-addr "127.0.0.1:$mp" --identity "bench-$i" \
			"${shard[@]}" 2>"$work/enseal-$r-$i.log" &
		procs+=($!)
		ports+=("$mp")
		wait_http "$hp" /readyz
	done
	if [[ ${BACKLOG:-} == 1 ]]; then
		wait_secrets "$ns" "${procs[@]}"
		t1=$(now)
		python3 -c "print(f'{$t1-$t0:.2f} 0 $(rss_kib "${procs[@]}")')"
		kill "${procs[@]}"
		wait "${procs[@]}" 2>/dev/null || true
		return
	fi
	if ((r > 1)); then
		for mp in "${ports[@]}"; do
			for _ in $(seq 600); do
				curl -sf "http://127.0.0.1:$mp/metrics" | grep -qx "enseal_controller_shard_members $r" && break
				sleep 0.2
			done
		done
	fi
	measure "$ns" "${procs[@]}"
	kill "${procs[@]}"
	wait "${procs[@]}" 2>/dev/null || true
}

declare -A e_secs e_create e_rss
counts=(${REPLICAS:-1})
for r in "${counts[@]}"; do
	log "enseal-controller, $r replica(s): $N SealedSecrets"
	read -r "e_secs[$r]" "e_create[$r]" "e_rss[$r]" < <(run_enseal "$r")
done
report_enseal() {
	for r in "${counts[@]}"; do
		printf 'enseal-controller, %s replica(s), %s SealedSecrets: all Secrets after %s s (creates done after %s s), RSS at rest %s MiB (all replicas), %s\n' \
			"$r" "$N" "${e_secs[$r]}" "${e_create[$r]}" "$((e_rss[$r] / 1024))" \
			"$(python3 -c "print(f'{${e_secs[${counts[0]}]}/${e_secs[$r]}:.2f}x the first count')")"
	done
}
r1=${counts[0]}

if [[ ${ENSEAL_ONLY:-} == 1 ]]; then
	report_enseal
	exit 0
fi

log "Sealed Secrets controller v0.40.0 (default flags): $N SealedSecrets"
ns=bench-sealed-secrets
new_namespace $ns
post_json "/api/v1/namespaces/$ns/serviceaccounts" '{"metadata":{"name":"sealed-secrets"}}'
post_json /apis/rbac.authorization.k8s.io/v1/clusterrolebindings "{\"metadata\":{\"name\":\"bench-sealed-secrets\"},\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"cluster-admin\"},\"subjects\":[{\"kind\":\"ServiceAccount\",\"name\":\"sealed-secrets\",\"namespace\":\"$ns\"}]}"
mkdir -p "$work/sa"
api -X POST -H 'Content-Type: application/json' \
	--data-binary '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":7200}}' \
	"$server/api/v1/namespaces/$ns/serviceaccounts/sealed-secrets/token" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["token"], end="")' >"$work/sa/token"
cp "$state/pki/ca.crt" "$work/sa/ca.crt"
printf %s "$ns" >"$work/sa/namespace"
hp=$(free_port)
mp=$(free_port)
SA_DIR=$work/sa SS_BIN=$SS_BIN KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$API_PORT \
	POD_NAMESPACE=$ns unshare --mount --propagation private sh -c '
	mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount &&
	cp "$SA_DIR"/* /run/secrets/kubernetes.io/serviceaccount/ && exec "$SS_BIN" "$@"' sh \
	--all-namespaces=false --listen-addr="127.0.0.1:$hp" --listen-metrics-addr="127.0.0.1:$mp" \
	>"$work/ss.log" 2>&1 &
ss_pid=$!
pids+=("$ss_pid")
wait_http "$hp" /v1/cert.pem
read -r s_secs s_create s_rss < <(measure $ns "$ss_pid")
kill "$ss_pid"

echo
printf '%-34s %14s %16s %14s\n' "controller ($N SealedSecrets)" "all Secrets (s)" "creates done (s)" "RSS at rest"
printf '%-34s %14s %16s %11s MiB\n' "enseal-controller ($r1 replica(s))" "${e_secs[$r1]}" "${e_create[$r1]}" "$((e_rss[$r1] / 1024))"
printf '%-34s %14s %16s %11s MiB\n' "Sealed Secrets v0.40.0" "$s_secs" "$s_create" "$((s_rss / 1024))"
python3 -c "print(f'speed-up: {$s_secs/${e_secs[$r1]}:.1f}x faster; memory: {${e_rss[$r1]}/$s_rss:.2f}x of Sealed Secrets\' RSS')"
report_enseal
