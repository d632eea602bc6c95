#!/usr/bin/env bash
# The Dockerfile's image for real, without Docker: its final stage (FROM scratch: the CA roots,
# the static binary as /app, user 65532) built with buildah from the natively built static
# binary, then run with podman against a test API server the way deploy/base runs it.
#
#   bash deploy/image.sh           # build: deploy/build-static.sh, then the image; prints sizes
#   bash deploy/image.sh run       # run it as uid 65532 with a read-only root, no capabilities and
#                                  # no new privileges against a fresh tests/cluster control plane,
#                                  # with deploy/base's ServiceAccount, RBAC and args; it must unseal
#                                  # SealedSecrets (sealed by the real kubeseal and by `enseal seal`)
#                                  # and decrypt a SopsSecret (encrypted by enseal for an age key in
#                                  # its key Secret). Exits 1 unless every Secret has its value.
#
# How the image is built: `buildah bud` on the Dockerfile's own final stage, cut out of the
# Dockerfile at build time (not a copy kept beside it, which could drift), with `--build-context
# build=DIR` standing in for the build stage: DIR holds what the final stage copies, at the
# paths it copies them from (/etc/ssl/certs/ca-certificates.crt, /out/app). The build stage
# itself cannot run here (its rust:alpine base cannot be pulled), so DIR is filled by
# deploy/build-static.sh: the same static musl binary, and Debian's CA roots instead of
# Alpine's (the same Mozilla set).
#
# Not run in CI, on purpose: it costs a release (LTO) musl build of the controller beside the
# debug build the tests use (measured on 2 cores shared with other builds: 15 minutes cold,
# 7 minutes when only enseal-sops, enseal-sops-secret and the controller changed: LTO),
# plus installing buildah, podman and runc (35 MB of Debian packages, 34 of them), for a check
# that only changes when the Dockerfile, deploy/build-static.sh or deploy/base do (the run
# itself takes 17 s). What the controller does is tested in CI with the
# native binary on the same API server (tests/it/controller_*.rs, tests/it/deploy_rbac.rs).
# Rerun this by hand after changing one of those files.
#
# Needs: the Rust musl target and musl-gcc (build-static.sh), buildah, podman and runc
# (Debian: apt-get install buildah podman runc); for `run` also kubectl, curl, python3, the
# tests/cluster binaries (built by tests/cluster/ensure.sh on first use) and the enseal CLI.
#
# Environment:
#   IMAGE             image name (default localhost/enseal-controller:dev)
#   CARGO_TARGET_DIR  where build-static.sh builds (default target/)
#   ENSEAL            the enseal CLI for `run` (default: target/debug/enseal, else enseal on PATH)
#   STORAGE_FLAGS     global storage flags of buildah and podman (default --storage-driver vfs:
#                     no overlay mounts in a container without privileges)
#   PODMAN_FLAGS      global podman flags (default --runtime runc --cgroup-manager cgroupfs:
#                     no systemd and no crun here)
#   CONTAINERS_CONF   podman's config; default a file with `default_ulimits = []`, since the
#                     default nofile ulimit cannot be set in an unprivileged container
#   KEEP=1            (`run`) leave the control plane and the container running for a look
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/enseal-controller:dev}
read -r -a storage_flags <<<"${STORAGE_FLAGS---storage-driver vfs}"
read -r -a podman_flags <<<"${PODMAN_FLAGS---runtime runc --cgroup-manager cgroupfs}"
work=$(mktemp -d /tmp/enseal-image.XXXXXX)
cleanup_steps=("rm -rf '$work'")
# Runs in reverse order of registration (the container before the control plane it talks to).
cleanup() {
	local i
	for ((i = ${#cleanup_steps[@]} - 1; i >= 0; i--)); do
		eval "${cleanup_steps[i]}" || true
	done
}
trap cleanup EXIT

if [[ -z ${CONTAINERS_CONF:-} ]]; then
	printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
	export CONTAINERS_CONF=$work/containers.conf
fi
buildah_() { buildah "${storage_flags[@]}" "$@"; }
podman_() { podman "${podman_flags[@]}" "${storage_flags[@]}" "$@"; }

build() {
	local t0=$SECONDS ctx=$work/context
	# The build stage's file system as far as the final stage reads it.
	ROOTFS=$ctx/build bash deploy/build-static.sh
	mkdir -p "$ctx/build/out" "$ctx/empty"
	mv "$ctx/build/app" "$ctx/build/out/app"
	local t_bin=$((SECONDS - t0))

	# The Dockerfile's last stage, verbatim: from its `FROM scratch` to the end.
	sed -n '/^FROM scratch/,$p' Dockerfile >"$work/Containerfile"
	if [[ $(grep -c '^FROM ' "$work/Containerfile") != 1 ]]; then
		echo "Dockerfile: no single final 'FROM scratch' stage found" >&2
		exit 1
	fi
	echo "--- the Dockerfile's final stage, built with --build-context build=$ctx/build"
	cat "$work/Containerfile"
	local t1=$SECONDS
	# The context proper is empty: the final stage copies only from the build stage.
	buildah_ bud --build-context "build=$ctx/build" -f "$work/Containerfile" -t "$IMAGE" "$ctx/empty"
	local t_img=$((SECONDS - t1))

	local cid size
	cid=$(podman_ create "$IMAGE")
	echo "--- files in $IMAGE"
	podman_ export "$cid" | tar -tvf -
	podman_ rm "$cid" >/dev/null
	podman_ image inspect "$IMAGE" \
		--format 'user {{.Config.User}}, entrypoint {{.Config.Entrypoint}}, ports {{.Config.ExposedPorts}}'
	buildah_ images "$IMAGE"
	size=$(podman_ image inspect "$IMAGE" --format '{{.Size}}')
	echo "image $IMAGE: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') MB);" \
		"binary $(stat -c %s "$ctx/build/out/app") bytes;" \
		"static build ${t_bin} s, image build ${t_img} s"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every half second until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS > deadline)); then
			echo "timed out waiting for $what" >&2
			return 1
		fi
		sleep 0.5
	done
}

secret_value() { # NAMESPACE NAME KEY
	kubectl -n "$1" get secret "$2" -o "jsonpath={.data.$3}" 2>/dev/null | base64 -d
}

secret_has() { # NAMESPACE NAME KEY VALUE
	[[ $(secret_value "$1" "$2" "$3") == "$4" ]]
}

run() {
	local enseal=${ENSEAL:-}
	if [[ -z $enseal ]]; then
		if [[ -x target/debug/enseal ]]; then enseal=$PWD/target/debug/enseal; else enseal=$(command -v enseal); fi
	fi
	podman_ image exists "$IMAGE" || {
		echo "$IMAGE not found: bash deploy/image.sh first" >&2
		exit 1
	}

	bash tests/cluster/ensure.sh >/dev/null
	local out state watch=(--watch-pid $$)
	# KEEP=1: no --watch-pid, which would tear the control plane down when this script exits.
	[[ ${KEEP:-} != 1 ]] || watch=()
	out=$(bash tests/cluster/start.sh --state-dir "$work/cluster" "${watch[@]}")
	state=$(sed -n 's/^STATE_DIR=//p' <<<"$out")
	KUBECONFIG=$(sed -n 's/^KUBECONFIG=//p' <<<"$out")
	export KUBECONFIG
	if [[ ${KEEP:-} == 1 ]]; then
		echo "KEEP=1: control plane left running: KUBECONFIG=$KUBECONFIG; stop with bash tests/cluster/stop.sh $state"
		cleanup_steps=()
	else
		cleanup_steps+=("bash tests/cluster/stop.sh '$state' >/dev/null")
	fi
	echo "--- control plane: $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"

	# What `kubectl apply -k deploy/base` installs, but the Deployment: there is no kubelet;
	# the container below plays its pod.
	kubectl apply -k deploy/crds
	kubectl apply -f deploy/base/namespace.yaml -f deploy/base/serviceaccount.yaml -f deploy/base/rbac.yaml
	kubectl wait --for condition=established --timeout=60s \
		crd/sealedsecrets.bitnami.com crd/sopssecrets.enseal.dev
	local sys=enseal-system demo=image-demo
	kubectl create namespace "$demo"

	# The age identity the controller decrypts SopsSecrets with, in the key Secret the
	# Deployment names (--sops-age-key-secret=enseal-age-keys).
	local recipient
	recipient=$("$enseal" keygen -o "$work/age.key" 2>&1 | sed -n 's/^Public key: //p')
	kubectl -n "$sys" create secret generic enseal-age-keys --from-file=image.agekey="$work/age.key"

	# The pod's service account files: a token of deploy/base's ServiceAccount (so only its RBAC
	# applies), the API server's CA and the namespace, where kubelet mounts them; the API
	# server's address as kubelet puts it in the environment.
	local sa=$work/serviceaccount server host port
	mkdir -p "$sa"
	kubectl -n "$sys" create token enseal-controller --duration=1h >"$sa/token"
	kubectl config view --raw -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$sa/ca.crt"
	printf %s "$sys" >"$sa/namespace"
	chmod 0755 "$sa" && chmod 0644 "$sa"/*
	server=$(kubectl config view --raw -o 'jsonpath={.clusters[0].cluster.server}')
	host=${server#https://}
	port=${host##*:}
	host=${host%:*}

	# The Deployment's args, with the ports moved to free loopback ones (host network).
	local http metrics args=() a
	http=$(free_port)
	metrics=$(free_port)
	while IFS= read -r a; do
		case $a in
		--listen-addr=*) a=--listen-addr=127.0.0.1:$http ;;
		--metrics-addr=*) a=--metrics-addr=127.0.0.1:$metrics ;;
		esac
		args+=("$a")
	done < <(kubectl create --dry-run=client -f deploy/base/deployment.yaml \
		-o 'jsonpath={range .spec.template.spec.containers[0].args[*]}{@}{"\n"}{end}')

	local name=enseal-image-demo
	podman_ rm -f "$name" >/dev/null 2>&1 || true
	[[ ${KEEP:-} == 1 ]] || cleanup_steps+=("podman_ rm -f '$name' >/dev/null")
	echo "--- podman run $IMAGE ${args[*]}"
	# As deploy/base's securityContext: uid/gid 65532, read-only root with only /tmp writable
	# (a small tmpfs, the Deployment's emptyDir), all capabilities dropped, no privilege
	# escalation (podman's default seccomp profile is the RuntimeDefault one).
	podman_ run -d --name "$name" \
		--user 65532:65532 --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,size=16m,mode=1777 \
		--cap-drop=ALL --security-opt no-new-privileges --network host \
		-v "$sa:/var/run/secrets/kubernetes.io/serviceaccount:ro" \
		-e KUBERNETES_SERVICE_HOST="$host" -e KUBERNETES_SERVICE_PORT="$port" \
		-e POD_NAMESPACE="$sys" -e POD_NAME="$name" \
		"$IMAGE" "${args[@]}"
	if ! wait_for 120 "/readyz of the container" curl -sf "http://127.0.0.1:$http/readyz"; then
		podman_ logs "$name" >&2
		exit 1
	fi
	local pid
	pid=$(podman_ inspect "$name" --format '{{.State.Pid}}')
	echo "--- the container's process ($pid):"
	grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$pid/status"
	awk '$5 == "/" { print "root mount options:", $6 }' "/proc/$pid/mountinfo"

	# A SealedSecret sealed by the real kubeseal with the certificate the container serves, and
	# one sealed by `enseal seal` fetching it from the same URL.
	local ss_value sops_value seal_value kubeseal
	ss_value="kubeseal-$(openssl rand -hex 8)"
	seal_value="enseal-seal-$(openssl rand -hex 8)"
	sops_value="sops-$(openssl rand -hex 8)"
	kubeseal=$(bash tests/cluster/build.sh --print-dirs | sed -n 's/^SEALED_SECRETS_BIN_DIR=//p')/kubeseal
	# The leader makes the first sealing key after it is ready: wait for the certificate.
	wait_for 120 "the sealing certificate" curl -sf -o "$work/cert.pem" "http://127.0.0.1:$http/v1/cert.pem"
	kubectl -n "$demo" create secret generic db --from-literal=password="$ss_value" --dry-run=client -o json |
		"$kubeseal" --cert "$work/cert.pem" -o yaml | kubectl apply -f -
	kubectl -n "$demo" create secret generic api --from-literal=token="$seal_value" --dry-run=client -o json |
		"$enseal" seal --cert "http://127.0.0.1:$http/v1/cert.pem" -o yaml | kubectl apply -f -

	# A SopsSecret: a Secret manifest naming the namespace (the default tenancy binds the
	# controller's keys to it), encrypted by enseal for the age key above.
	mkdir -p "$work/sops"
	cat >"$work/sops/app.yaml" <<-EOF
		apiVersion: v1
		kind: Secret
		metadata:
		  name: app
		  namespace: $demo
		stringData:
		  token: $sops_value
	EOF
	"$enseal" encrypt --age "$recipient" "$work/sops/app.yaml" >"$work/app.yaml"
	"$enseal" sops-secret "$work/app.yaml" --namespace "$demo" | kubectl apply -f -

	local failed=0
	check() { # NAME KEY VALUE WHAT
		if wait_for 60 "Secret $1" secret_has "$demo" "$1" "$2" "$3"; then
			echo "ok: Secret $demo/$1 has $2 = the value $4 held"
		else
			echo "FAILED: Secret $demo/$1 never got the value $4 held (now: $(kubectl -n "$demo" get secret "$1" -o name 2>&1))"
			failed=1
		fi
	}
	echo "--- waiting for the Secrets"
	check db password "$ss_value" "the kubeseal SealedSecret"
	check api token "$seal_value" "the enseal seal SealedSecret"
	check app token "$sops_value" "the SopsSecret"
	kubectl -n "$demo" get sealedsecrets.bitnami.com,sopssecrets.enseal.dev,secrets
	kubectl -n "$demo" get sealedsecrets.bitnami.com,sopssecrets.enseal.dev \
		-o 'jsonpath={range .items[*]}{.kind}/{.metadata.name}: {range .status.conditions[*]}{.type}={.status} {.reason}{end}{"\n"}{end}'

	grep -E '^VmRSS:' "/proc/$pid/status" || true
	echo "--- container log"
	podman_ logs "$name" 2>&1 | tee "$work/container.log"
	local v
	for v in "$ss_value" "$seal_value" "$sops_value" AGE-SECRET-KEY; do
		if grep -qF "$v" "$work/container.log"; then
			echo "FAILED: the container log holds a secret value"
			failed=1
		fi
	done
	if [[ $(podman_ inspect "$name" --format '{{.State.Running}}') != true ]]; then
		echo "FAILED: the container is no longer running"
		failed=1
	fi
	return "$failed"
}

case ${1:-build} in
build) build ;;
run) run ;;
*)
	echo "usage: bash deploy/image.sh [build|run]" >&2
	exit 2
	;;
esac
