#!/usr/bin/env bash
# CI smoke run of the fuzz targets: builds them (cargo-fuzz, nightly), then runs each one for a
# short bounded time over its committed corpus (fuzz/corpus/<target>) and its past crashes
# (fuzz/regressions/<target>). Any crash, panic, timeout or memory blow-up fails the run, with
# the input saved under fuzz/artifacts/<target>/ and the command to reproduce it printed.
#
#   bash fuzz/smoke.sh                 # every target, SECONDS_PER_TARGET (10) each
#   bash fuzz/smoke.sh sops_yaml ...   # only these targets
#
# Missing nightly fails (it is what cargo-fuzz needs, not an optional extra); a missing
# cargo-fuzz is installed from crates.io. The build lives in fuzz/target (or $CARGO_TARGET_DIR)
# and is reused by the next run on the same machine: cold it is the dominant cost, warm only
# the runs remain (timings in the commit that added this script).
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-10}
# A cap on executions as well as time, so that a fast machine does not turn a smoke run into a
# long one when the time limit is raised.
RUNS_PER_TARGET=${RUNS_PER_TARGET:-200000}
# What every run is held to: no input above 64 KiB (larger inputs only make the same parsers
# slower), 512 MB of memory, 10 s for one input.
LIMITS=(-max_len=65536 -rss_limit_mb=512 -timeout=10)

log() { printf '\n==> fuzz: %s\n' "$*" >&2; }
die() {
	printf '\nfuzz smoke FAILED: %s\n' "$*" >&2
	exit 1
}

if ! cargo +nightly --version >/dev/null 2>&1; then
	die "the nightly toolchain is missing (cargo-fuzz needs it): rustup toolchain install nightly"
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "^cargo-fuzz $CARGO_FUZZ_VERSION\b"; then
	log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
	cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" ||
		die "could not install cargo-fuzz $CARGO_FUZZ_VERSION"
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
	mapfile -t targets < <(cargo +nightly fuzz list)
fi
((${#targets[@]})) || die "no fuzz targets found"

start=$SECONDS
log "cargo +nightly fuzz build (${#targets[@]} targets)"
# One build for all targets (they share every dependency), with AddressSanitizer. The dev
# profile (debug assertions on; only the crypto crates optimised, see Cargo.toml): cold it
# builds in about 4 min on the 2-core machine against ~12.5 min for cargo-fuzz's optimised
# default (one codegen unit, every dependency instrumented), which a 10 s smoke run does not
# repay. Long runs by hand use
# `cargo +nightly fuzz run TARGET` (optimised).
cargo +nightly fuzz build --dev || die "cargo fuzz build"
log "built in $((SECONDS - start)) s"

triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir=${CARGO_TARGET_DIR:-$PWD/target}/$triple/debug

failed=()
for target in "${targets[@]}"; do
	[[ -d corpus/$target ]] || die "$target has no committed corpus (fuzz/corpus/$target)"
	# New inputs go to a scratch directory, the first one libFuzzer is given: the committed
	# corpus and regressions are only read, so a smoke run leaves the checkout clean.
	scratch=$(mktemp -d)
	dirs=("$scratch" "corpus/$target")
	[[ -d regressions/$target ]] && dirs+=("regressions/$target")
	mkdir -p "artifacts/$target"
	log "$target: ${SECONDS_PER_TARGET} s over ${dirs[*]:1}"
	if "$bin_dir/$target" "${dirs[@]}" "${LIMITS[@]}" \
		-max_total_time="$SECONDS_PER_TARGET" -runs="$RUNS_PER_TARGET" \
		-artifact_prefix="artifacts/$target/" -print_final_stats=1 \
		>"$scratch.log" 2>&1; then
		grep -E '^stat::number_of_executed_units' "$scratch.log" >&2 || true
	else
		# The end of libFuzzer's report: the panic or sanitizer message and the saved input.
		tail -n 40 "$scratch.log" >&2
		printf 'reproduce: cd fuzz && cargo +nightly fuzz run %s artifacts/%s/<file>\n' \
			"$target" "$target" >&2
		failed+=("$target")
	fi
	rm -rf "$scratch" "$scratch.log"
done

log "smoke run took $((SECONDS - start)) s in all"
if ((${#failed[@]})); then
	die "crashing targets: ${failed[*]} (inputs under fuzz/artifacts/)"
fi
