#!/usr/bin/env bash
# Re-generates tests/fixtures/sops/<name>.{plain,enc}.<ext> with the REAL sops, one pair per
# line of tests/fixtures/sops/cases.tsv. The outputs are committed: the interop tests check that
# enseal opens files sops wrote, so they must come from sops, not from enseal.
#
# Uses ENSEAL_SOPS_BIN, else .venv/bin/sops (created by scripts/test.sh). Test-only keys.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fixtures=$root/tests/fixtures/sops
keys=$root/tests/keys
sops=${ENSEAL_SOPS_BIN:-$root/.venv/bin/sops}
[[ -x $sops ]] || { echo "sops not found at $sops (run scripts/test.sh once, or set ENSEAL_SOPS_BIN)" >&2; exit 1; }
"$sops" --version --disable-version-check | grep -q '^sops 3\.11\.' || {
	echo "expected sops 3.11.x, got: $("$sops" --version --disable-version-check | head -1)" >&2
	exit 1
}

# sops looks for .sops.yaml upwards from the working directory and reads keys from $HOME: run it
# in an empty directory with a scratch HOME so nothing but the flags decides.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat "$keys"/a.txt "$keys"/b.txt "$keys"/c.txt >"$work/all-keys.txt"
run_sops() {
	(cd "$work" && env -i PATH="$PATH" HOME="$work" SOPS_AGE_KEY_FILE="$work/all-keys.txt" \
		"$sops" "$@")
}

ext_of() { case $1 in yaml) echo yaml ;; json) echo json ;; dotenv) echo env ;; ini) echo ini ;; binary) echo bin ;; esac; }

rm -f "$fixtures"/*.plain.* "$fixtures"/*.enc.*
count=0
while read -r -a fields; do
	[[ ${#fields[@]} -eq 0 || ${fields[0]} == \#* ]] && continue
	name=${fields[0]} format=${fields[1]} source=${fields[2]} recipients=${fields[3]}
	flags=("${fields[@]:4}")
	ext=$(ext_of "$format")
	plain=$fixtures/$name.plain.$ext
	enc=$fixtures/$name.enc.$ext
	cp "$fixtures/src/$source" "$plain"
	args=(--encrypt --input-type "$format" --output-type "$format")
	if [[ $recipients != groups ]]; then
		list=
		for k in ${recipients//,/ }; do list+=${list:+,}$(cat "$keys/$k.pub"); done
		args+=(--age "$list")
	fi
	for f in "${flags[@]}"; do
		# Paths in flags (the --config file) are relative to the fixture directory.
		[[ -e $fixtures/$f ]] && f=$fixtures/$f
		args+=("$f")
	done
	cp "$plain" "$work/input.$ext"
	run_sops "${args[@]}" "$work/input.$ext" >"$enc"
	# Sanity: sops opens what it just wrote.
	run_sops --decrypt --input-type "$format" --output-type "$format" "$enc" >/dev/null
	count=$((count + 1))
	echo "made $name.enc.$ext"
done <"$fixtures/cases.tsv"
echo "$count fixtures written with $("$sops" --version --disable-version-check | head -1)"
