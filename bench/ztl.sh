#!/usr/bin/env bash
# ZTL performance targets of issue #5 on a generated data set (bench/ztl_gen.py): permit
# register import, transit check (wall time and peak memory, against the time to merely
# read and split the file), whitelist export. Release build, embedded SQLite.
# Usage: PERMITS=100000 TRANSITS=1000000 bench/ztl.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PERMITS="${PERMITS:-100000}"
TRANSITS="${TRANSITS:-1000000}"
cargo build --release -q -p sportello --bin sportello
BIN="$(realpath "${CARGO_TARGET_DIR:-target}/release/sportello")"
dir="$(mktemp -d /tmp/sportello-ztl-bench.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
python3 bench/ztl_gen.py "$dir" "$PERMITS" "$TRANSITS"
printf 'data_dir = "%s/data"\n[policy]\nfile = "%s"\n' "$dir" "$(realpath crates/domain/src/ztl/example_policy.toml)" >"$dir/sportello.toml"
run() { /usr/bin/time -f "%e s wall, %M KB peak" "$@"; }
echo "== permits import ($PERMITS rows)"
run "$BIN" --config "$dir/sportello.toml" permits import "$dir/permits.csv"
echo "== permits import again (idempotent)"
run "$BIN" --config "$dir/sportello.toml" permits import "$dir/permits.csv"
echo "== merely reading and splitting the transits ($TRANSITS rows)"
run awk -F, '{ n += NF } END { print n " fields" }' "$dir/transits.csv"
echo "== transits check"
run "$BIN" --config "$dir/sportello.toml" transits check "$dir/transits.csv" -o "$dir/violations.csv"
wc -l <"$dir/violations.csv" | sed 's/^/violation lines: /'
echo "== whitelist export"
run "$BIN" --config "$dir/sportello.toml" whitelist export --at 2026-01-01 -o "$dir/whitelist.csv"
wc -l <"$dir/whitelist.csv" | sed 's/^/whitelist lines: /'
