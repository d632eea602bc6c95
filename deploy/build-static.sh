#!/usr/bin/env bash
# Builds what the Dockerfile's image holds, without Docker: the static (musl) release binary
# and a root file system of just that binary and the CA roots, then runs it there as the
# image's user (65532) when this runs as root. For machines without a Docker engine, and to
# check the Dockerfile's build stage still gives a static binary.
#
#   bash deploy/build-static.sh                  # enseal-controller
#   BIN=enseal bash deploy/build-static.sh       # the CLI
#
# Needs the Rust musl target (rustup target add x86_64-unknown-linux-musl) and musl-gcc
# (Debian: musl-tools) for ring's C parts. About 13 minutes cold on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-enseal-controller}
TARGET=x86_64-unknown-linux-musl
target_dir=${CARGO_TARGET_DIR:-target}
root=${ROOTFS:-$target_dir/rootfs-$BIN}

rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
command -v musl-gcc >/dev/null || {
	echo "musl-gcc not found: apt-get install musl-tools" >&2
	exit 1
}
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --target "$TARGET" --bin "$BIN"
bin=$target_dir/$TARGET/release/$BIN

if ! file "$bin" | grep -q 'static'; then
	echo "$bin is not statically linked:" >&2
	file "$bin" >&2
	exit 1
fi
rm -rf "$root"
mkdir -p "$root/etc/ssl/certs"
install -m 0755 "$bin" "$root/app"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
echo "image root: $root ($(du -sh "$root" | cut -f1)); binary: $(du -h "$bin" | cut -f1)"
if [[ $(id -u) == 0 ]]; then
	# Nothing but the binary and the CA roots, as user 65532: what FROM scratch gives.
	chroot --userspec=65532:65532 "$root" /app --version
fi
