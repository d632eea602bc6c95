#!/usr/bin/env bash
# The README's first command: encrypt a Secret-like YAML file with the DEMO key, decrypt it back,
# and show that nothing changed. The keys in keys-example/ are public on purpose: demo only.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building enseal (release)" >&2
cargo build --release --quiet -p enseal-cli --bin enseal
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
enseal=$target_dir/release/enseal

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plain=keys-example/secrets.example.yaml
recipient=$(cat keys-example/age.pub)

echo "==> enseal encrypt: only the values under data/stringData, to the demo recipient" >&2
"$enseal" encrypt --age "$recipient" --encrypted-regex '^(data|stringData)$' "$plain" \
	>"$work/secrets.enc.yaml"
cat "$work/secrets.enc.yaml"

echo >&2
echo "==> enseal decrypt with the demo identity (SOPS_AGE_KEY_FILE=keys-example/age.key)" >&2
SOPS_AGE_KEY_FILE=keys-example/age.key "$enseal" decrypt "$work/secrets.enc.yaml" \
	>"$work/secrets.dec.yaml"

echo "==> diff $plain <decrypted>" >&2
if diff -u "$plain" "$work/secrets.dec.yaml"; then
	echo "round trip OK: the decrypted file is byte-for-byte the original" >&2
else
	echo "round trip FAILED: see the diff above" >&2
	exit 1
fi
