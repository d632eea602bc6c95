#!/usr/bin/env bash
# Starts a throw-away Kubernetes control plane on 127.0.0.1: etcd,
# kube-apiserver (RBAC on, generated certificates) and kube-controller-manager
# (garbage collector, service-account token controller, ...). No kubelet, so
# no pod ever runs: this is for API-level tests.
#
# Usage: start.sh [--kubeconfig PATH] [--state-dir DIR] [--watch-pid PID]
#
#   --kubeconfig PATH  where to write the admin kubeconfig
#                      (default: STATE_DIR/admin.kubeconfig)
#   --state-dir DIR    empty or missing directory for this run's certificates,
#                      etcd data, logs and pids (default: a fresh mktemp dir)
#   --watch-pid PID    tear everything down as soon as PID exits. The Rust
#                      test helper passes its own pid, so the control plane
#                      dies with the test process however that ends (panic,
#                      abort, Ctrl-C, SIGKILL).
#
# When the control plane is ready (/readyz ok and the controller manager has
# created the default ServiceAccount) it prints on stdout
#   STATE_DIR=...
#   KUBECONFIG=...
# and exits 0, leaving a supervisor process in the background. Stop it with
# `stop.sh STATE_DIR`. A component that exits is fatal (everything is torn
# down) unless STATE_DIR/hold/NAME exists: then the supervisor removes
# pids/NAME.pid and starts NAME again, with the same flags and data, once the
# hold file is gone (what the fault tests use to restart etcd or the apiserver). On any failure it prints the logs' tails, tears down what
# it started and exits non-zero. Ports are picked free at start, so runs
# in parallel do not collide. Set ENSEAL_CLUSTER_KEEP=1 to keep the state dir
# (logs) after teardown.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

log() { echo "start.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# -- supervisor ---------------------------------------------------------------
# Runs detached (setsid) in the background: owns the three processes, and tears
# them down when asked (SIGTERM from stop.sh), when the watched pid exits, or
# when one of them dies (a half-dead control plane only produces confusing
# test failures).

proc_start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }

supervise() {
	local state=$1 watch_pid=$2 watch_start=$3
	local pids=() names=() reason=""
	echo "$$" >"$state/pids/supervisor.pid"

	teardown() {
		trap - TERM INT HUP EXIT
		local pid i
		echo "${reason:-stopped}" >"$state/stopped"
		echo "tearing down: ${reason:-stopped}"
		# One at a time, controller manager first and etcd last: an apiserver
		# whose etcd is already gone keeps retrying instead of exiting. The
		# data is thrown away, so nobody waits long for a graceful exit.
		for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
			pid=${pids[i]}
			kill -TERM "$pid" 2>/dev/null || continue
			for _ in $(seq 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -0 "$pid" 2>/dev/null && echo "${names[i]} ignored TERM for 5s, killing it"
			kill -KILL "$pid" 2>/dev/null || true
		done
		wait 2>/dev/null || true
		rm -f "$state"/pids/*
		if [[ ${ENSEAL_CLUSTER_KEEP:-} != 1 && ! -f $state/keep && -f $state/.enseal-cluster ]]; then
			rm -rf "$state"
		fi
		exit 0
	}
	trap 'reason="signal"; teardown' TERM INT HUP
	# set -e or a bug must not leave the components running unsupervised.
	trap 'reason=${reason:-"supervisor failed"}; teardown' EXIT

	# Whether the test process we serve is still there (a pid alone could
	# have been reused, so its start time is compared too).
	watched_alive() {
		[[ -z $watch_pid || $(proc_start_time "$watch_pid") == "$watch_start" ]]
	}

	# Each component runs from a function (run_NAME, which execs it) so the
	# supervisor can start it again after a test stopped it (see `held` below).
	launch() {
		local name=$1
		"run_$name" >>"$state/logs/$name.log" 2>&1 &
		pids+=("$!")
		names+=("$name")
		echo "$!" >"$state/pids/$name.pid"
	}

	# shellcheck source=/dev/null
	source "$state/env"

	run_etcd() {
		exec "$ETCD_BIN_DIR/etcd" \
			--data-dir="$state/etcd" \
			--listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
			--listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
			--unsafe-no-fsync
	}
	launch etcd

	# The apiserver retries etcd on its own, but failing fast on a dead etcd
	# gives a clearer log; etcd is ready in well under a second.
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 && break
		kill -0 "${pids[0]}" 2>/dev/null && watched_alive || break
		sleep 0.1
	done

	# The endpoint reconciler refuses a loopback address (it would publish it
	# as the endpoint of the in-cluster `kubernetes` Service); nothing runs in
	# this cluster that could use that Service, so it is switched off.
	# The requestheader/proxy-client pair is what aggregated API servers and
	# the controller manager's delegated authentication read from
	# kube-system/extension-apiserver-authentication; without it the
	# controller manager logs an error for it every few seconds.
	run_kube-apiserver() {
		exec "$KUBE_BIN_DIR/kube-apiserver" \
			--bind-address=127.0.0.1 \
			--advertise-address=127.0.0.1 \
			--endpoint-reconciler-type=none \
			--secure-port="$API_PORT" \
			--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
			--tls-cert-file="$state/pki/apiserver.crt" \
			--tls-private-key-file="$state/pki/apiserver.key" \
			--client-ca-file="$state/pki/ca.crt" \
			--service-account-issuer=https://kubernetes.default.svc.cluster.local \
			--service-account-key-file="$state/pki/sa.pub" \
			--service-account-signing-key-file="$state/pki/sa.key" \
			--service-cluster-ip-range=10.0.0.0/24 \
			--requestheader-client-ca-file="$state/pki/ca.crt" \
			--requestheader-allowed-names=front-proxy-client \
			--requestheader-username-headers=X-Remote-User \
			--requestheader-group-headers=X-Remote-Group \
			--requestheader-extra-headers-prefix=X-Remote-Extra- \
			--proxy-client-cert-file="$state/pki/front-proxy-client.crt" \
			--proxy-client-key-file="$state/pki/front-proxy-client.key" \
			--authorization-mode=Node,RBAC \
			--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,DefaultTolerationSeconds,NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,ResourceQuota \
			--profiling=false
	}
	launch kube-apiserver

	# The controller manager exits at once if it cannot read its delegated
	# authentication config, which RBAC only allows after the bootstrap policy
	# is in place: start it once the apiserver reports ready.
	for _ in $(seq 1200); do
		curl -sf --max-time 2 --cacert "$state/pki/ca.crt" \
			--cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
			"https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
		kill -0 "${pids[1]}" 2>/dev/null && watched_alive || break
		sleep 0.1
	done

	# Its own client identity (not system:masters) so the bootstrap RBAC
	# policy for the controller manager is what it runs under, as in a real
	# cluster; with --use-service-account-credentials each controller then
	# uses its own service account.
	run_kube-controller-manager() {
		exec "$KUBE_BIN_DIR/kube-controller-manager" \
			--kubeconfig="$state/controller-manager.kubeconfig" \
			--authentication-kubeconfig="$state/controller-manager.kubeconfig" \
			--authorization-kubeconfig="$state/controller-manager.kubeconfig" \
			--bind-address=127.0.0.1 \
			--secure-port="$KCM_PORT" \
			--controllers='*' \
			--leader-elect=false \
			--use-service-account-credentials=true \
			--service-account-private-key-file="$state/pki/sa.key" \
			--root-ca-file="$state/pki/ca.crt" \
			--cluster-signing-cert-file="$state/pki/ca.crt" \
			--cluster-signing-key-file="$state/pki/ca.key" \
			--service-cluster-ip-range=10.0.0.0/24 \
			--profiling=false
	}
	launch kube-controller-manager

	local i
	while :; do
		if ! watched_alive; then
			reason="watched pid $watch_pid exited"
			teardown
		fi
		for i in "${!pids[@]}"; do
			kill -0 "${pids[i]}" 2>/dev/null && continue
			if [[ -f $state/hold/${names[i]} ]]; then
				# Stopped on purpose (a fault test, see PrivateControlPlane in
				# tests/src/cluster.rs): removing the pid file tells the test the
				# stop was seen; it stays down while the hold file is there. Its pid
				# is forgotten so that teardown never signals a reused one.
				rm -f "$state/pids/${names[i]}.pid"
				pids[i]=""
				continue
			fi
			if [[ ! -f $state/pids/${names[i]}.pid ]]; then
				# The hold was lifted: the same command again, on the same data,
				# ports and certificates.
				echo "restarting ${names[i]}"
				"run_${names[i]}" >>"$state/logs/${names[i]}.log" 2>&1 &
				pids[i]=$!
				echo "$!" >"$state/pids/${names[i]}.pid"
				continue
			fi
			reason="${names[i]} exited"
			echo "$reason" >"$state/died"
			# Its log says why; keep it for whoever debugs the failures.
			touch "$state/keep"
			teardown
		done
		# sleep in the background so a TERM is handled at once, not after it.
		sleep 0.5 &
		wait $! || true
	done
}

if [[ ${1:-} == __supervise ]]; then
	shift
	supervise "$@"
	exit 0
fi

# -- argument parsing -----------------------------------------------------------

kubeconfig="" state="" watch_pid=""
while (($#)); do
	case $1 in
	--kubeconfig)
		kubeconfig=$2
		shift 2
		;;
	--state-dir)
		state=$2
		shift 2
		;;
	--watch-pid)
		watch_pid=$2
		shift 2
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

for f in "$ETCD_BIN_DIR/etcd" "$KUBE_BIN_DIR/kube-apiserver" "$KUBE_BIN_DIR/kube-controller-manager"; do
	[[ -x $f ]] || die "$f is missing: run tests/cluster/build.sh first"
done
for tool in openssl curl python3 setsid; do
	command -v "$tool" >/dev/null || die "$tool is required"
done

t0=$(date +%s%N)
if [[ -z $state ]]; then
	state=$(mktemp -d "${TMPDIR:-/tmp}/enseal-cluster.XXXXXX")
else
	mkdir -p "$state"
	[[ -z $(ls -A "$state") ]] || die "state dir $state is not empty"
fi
state=$(cd "$state" && pwd)
# Marks the directory as ours: teardown only ever deletes a directory with it.
touch "$state/.enseal-cluster"
kubeconfig=${kubeconfig:-$state/admin.kubeconfig}
mkdir -p "$state/pki" "$state/logs" "$state/pids" "$state/etcd"
chmod 700 "$state" "$state/etcd"

supervisor_pid="" interrupted=""
fail() {
	log "$*"
	local f
	for f in "$state"/logs/*.log; do
		[[ -f $f && -z $interrupted ]] || continue
		echo "----- last lines of $f -----" >&2
		tail -n 25 "$f" >&2
	done
	if [[ -n $supervisor_pid && -n $interrupted ]]; then
		"$CLUSTER_DIR/stop.sh" "$state" >&2 || true
	elif [[ -n $supervisor_pid ]]; then
		# Keep the logs of a failed start for whoever reads the message above.
		"$CLUSTER_DIR/stop.sh" --keep "$state" >&2 || true
		log "state kept in $state"
	fi
	exit 1
}

# -- ports --------------------------------------------------------------------
# Bind port 0 for all four at once (so they are distinct), then release them.
# Another process could take one in the gap; that shows up as a bind error in
# the logs and a failed start, never as two clusters sharing a port.
read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT < <(
	python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))
'
)

# -- certificates ---------------------------------------------------------------
# P-256 keys: generated in milliseconds, accepted by every component
# (including as the service-account signing key, ES256).
pki=$state/pki
(
	cd "$pki"
	umask 077
	newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
	newkey ca.key
	openssl req -x509 -new -key ca.key -subj /CN=enseal-test-ca -days 7 -out ca.crt \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	# sign NAME SUBJECT EXTENSIONS
	sign() {
		newkey "$1.key"
		openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
		printf '%s\n' "$3" >"$1.ext"
		openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
			-extfile "$1.ext" -out "$1.crt" 2>/dev/null
		rm -f "$1.csr" "$1.ext"
	}
	sign apiserver /CN=kube-apiserver "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
	# system:masters: the admin the tests act as (RBAC does not apply to it).
	sign admin "/O=system:masters/CN=enseal-test-admin" "$client_ext"
	sign controller-manager /CN=system:kube-controller-manager "$client_ext"
	sign front-proxy-client /CN=front-proxy-client "$client_ext"
	newkey sa.key
	openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
) || fail "certificate generation failed"

# write_kubeconfig PATH CERT_NAME USER
# Certificates are embedded so the file stays valid wherever it is copied.
write_kubeconfig() {
	local b64="base64 -w0"
	(
		umask 077
		cat >"$1" <<-EOF
			apiVersion: v1
			kind: Config
			clusters:
			- name: enseal-test
			  cluster:
			    server: https://127.0.0.1:$API_PORT
			    certificate-authority-data: $($b64 <"$pki/ca.crt")
			users:
			- name: $3
			  user:
			    client-certificate-data: $($b64 <"$pki/$2.crt")
			    client-key-data: $($b64 <"$pki/$2.key")
			contexts:
			- name: enseal-test
			  context:
			    cluster: enseal-test
			    user: $3
			current-context: enseal-test
		EOF
	)
}
write_kubeconfig "$state/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
mkdir -p "$(dirname "$kubeconfig")"
write_kubeconfig "$kubeconfig" admin enseal-test-admin
[[ $kubeconfig == "$state/admin.kubeconfig" ]] || cp "$kubeconfig" "$state/admin.kubeconfig"

cat >"$state/env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
API_PORT=$API_PORT
KCM_PORT=$KCM_PORT
EOF

# -- launch -----------------------------------------------------------------------
watch_start=""
if [[ -n $watch_pid ]]; then
	watch_start=$(proc_start_time "$watch_pid")
	[[ -n $watch_start ]] || fail "--watch-pid $watch_pid: no such process"
fi
# setsid + own log file: the supervisor must not hold the caller's stdout or
# stderr open (a caller reading them to EOF would hang) nor share its
# process group (a Ctrl-C meant for the caller reaches it via --watch-pid).
setsid bash "$0" __supervise "$state" "$watch_pid" "$watch_start" \
	</dev/null >"$state/logs/supervisor.log" 2>&1 &
supervisor_pid=$!
# Interrupted while waiting: take the half-started control plane down too.
trap 'interrupted=1; fail "interrupted"' INT TERM HUP

# -- wait until ready ---------------------------------------------------------------
api() {
	curl -sf --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
		"https://127.0.0.1:$API_PORT$1"
}
deadline=$((SECONDS + ${ENSEAL_CLUSTER_START_TIMEOUT:-120}))
ready=""
while ((SECONDS < deadline)); do
	[[ -f $state/died ]] && fail "$(cat "$state/died") during start"
	kill -0 "$supervisor_pid" 2>/dev/null || fail "supervisor exited during start"
	if [[ -z $ready ]]; then
		[[ $(api /readyz 2>/dev/null) == ok ]] && ready=1 &&
			log "apiserver ready after $((($(date +%s%N) - t0) / 1000000)) ms"
	fi
	# The default ServiceAccount appears once the controller manager runs
	# its controllers with working credentials, the last piece the tests need.
	if [[ -n $ready ]] && api /api/v1/namespaces/default/serviceaccounts/default >/dev/null 2>&1; then
		log "control plane ready after $((($(date +%s%N) - t0) / 1000000)) ms (state: $state)"
		echo "STATE_DIR=$state"
		echo "KUBECONFIG=$kubeconfig"
		exit 0
	fi
	sleep 0.2
done
fail "not ready after ${ENSEAL_CLUSTER_START_TIMEOUT:-120}s"
