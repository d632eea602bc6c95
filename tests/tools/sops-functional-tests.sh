#!/usr/bin/env bash
# Prepares sops' own functional-tests crate (github.com/getsops/sops/v3@v3.13.3, directory
# functional-tests/) to run against any `sops`-compatible binary, once, into
#   ${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools/sops-functional-tests-v3.13.3-<hash>/
# and prints that directory. It holds:
#   crate/        the crate, unchanged: its .sops.yaml names the PGP keys of sops' test key file,
#                 and its res/ files are encrypted to them
#   sops_functional_tests_key.asc
#                 that key file (pgp/ of the same module): secret keys FBC7B9E2... and
#                 D7229043..., public key B611A2F9... (the "missing decryption key" one); the
#                 tests import it into a throwaway GNUPGHOME, as sops' CI does
#   examples/     sops' example.{yaml,json,ini,txt}, encrypted by sops to FBC7B9E2... and
#                 D7229043... (tests/it/pgp_interop.rs decrypts them)
#   test-binary   a file naming the compiled test executable (libtest; run it with cwd=crate/)
#
# The crate's tests run `./sops` from their working directory, read `./.sops.yaml` and
# `./res/*`.
#
# Needs: Go (module download) and cargo.
set -euo pipefail
cd "$(dirname "$0")/../.."

module=github.com/getsops/sops/v3
version=v3.13.3
tools_cache=${ENSEAL_CACHE:-$HOME/.cache/enseal}/tools

if [[ -z ${GO:-} ]]; then
	if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

# A change to this script lands in a fresh directory.
hash=$(sha256sum <"$0" | cut -c1-12)
out=$tools_cache/sops-functional-tests-$version-$hash
if [[ -f $out/.complete && -f $out/test-binary && -x $(cat "$out/test-binary") ]]; then
	echo "$out"
	exit 0
fi

mkdir -p "$tools_cache"
exec 9>"$tools_cache/sops-functional-tests.lock"
flock 9
if [[ ! -f $out/.complete ]]; then
	start=$(date +%s)
	echo "sops-functional-tests.sh: preparing sops $version functional-tests into $out (once)" >&2
	# The module zip from the proxy, checked against the Go checksum database.
	src=$(GOTOOLCHAIN=local GOFLAGS= "$GO" mod download -json "$module@$version" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
	[[ -d $src/functional-tests ]] || {
		echo "sops-functional-tests.sh: $src has no functional-tests/" >&2
		exit 1
	}

	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	cp -r "$src/functional-tests" "$tmp/crate"
	chmod -R u+w "$tmp/crate"

	cp "$src/pgp/sops_functional_tests_key.asc" "$tmp/"
	mkdir "$tmp/examples"
	cp "$src"/example.{yaml,json,ini,txt} "$tmp/examples/"
	chmod -R u+w "$tmp/examples"

	# Build the tests once, with the crate's own Cargo.lock.
	target=$tools_cache/sops-functional-tests-target
	bin=$(cd "$tmp/crate" && CARGO_TARGET_DIR=$target cargo test --locked --no-run \
		--message-format=json 2>/dev/null |
		python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
')
	[[ -x $bin ]] || {
		echo "sops-functional-tests.sh: building the functional tests failed" >&2
		(cd "$tmp/crate" && CARGO_TARGET_DIR=$target cargo test --locked --no-run) >&2 || true
		exit 1
	}
	echo "$bin" >"$tmp/test-binary"
	echo "prepared in $(($(date +%s) - start))s" >"$tmp/.complete"
	rm -rf "$out"
	mv "$tmp" "$out"
	echo "sops-functional-tests.sh: done in $(($(date +%s) - start))s" >&2
fi
echo "$out"
