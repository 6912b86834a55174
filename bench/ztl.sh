#!/usr/bin/env bash
# ZTL performance targets of issue #5 on a generated data set (bench/ztl_gen.py): permit
# register import, transit check (wall time and peak memory, against the time to merely
# read and split the file), whitelist export, and the patrols' plate check through the HTTP
# API with wrk (bench/verify.lua). Release build, embedded SQLite unless DATABASE_URL is set.
# Usage: PERMITS=100000 TRANSITS=1000000 bench/ztl.sh
#        DATABASE_URL=postgres://… bench/ztl.sh   (a fresh database)
set -euo pipefail
cd "$(dirname "$0")/.."
PERMITS="${PERMITS:-100000}"
TRANSITS="${TRANSITS:-1000000}"
cargo build --release -q -p sportello --bin sportello
BIN="$(realpath "${CARGO_TARGET_DIR:-target}/release/sportello")"
dir="$(mktemp -d /tmp/sportello-ztl-bench.XXXXXX)"
PORT="${PORT:-18182}"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$dir"' EXIT
python3 bench/ztl_gen.py "$dir" "$PERMITS" "$TRANSITS"
printf 'data_dir = "%s/data"\nlisten = "127.0.0.1:%s"\n[policy]\nfile = "%s"\n' "$dir" "$PORT" "$(realpath crates/domain/src/ztl/example_policy.toml)" >"$dir/sportello.toml"
if [ -n "${DATABASE_URL:-}" ]; then printf '[database]\nurl = "%s"\n' "$DATABASE_URL" >>"$dir/sportello.toml"; fi
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
echo "== verify over HTTP (wrk, 1 thread, 32 connections, 20 s)"
if command -v wrk >/dev/null; then
  token="$("$BIN" --config "$dir/sportello.toml" user add vigile --role police | sed -n 's/^token: //p')"
  tail -n +2 "$dir/permits.csv" | cut -d, -f5 | tr -d ' ' | tr a-z A-Z | sort -u >"$dir/plates.txt"
  "$BIN" --config "$dir/sportello.toml" serve >"$dir/serve.log" 2>&1 &
  pid=$!
  until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.05; done
  TOKEN="$token" PLATES="$dir/plates.txt" wrk -t1 -c32 -d20s --latency -s bench/verify.lua "http://127.0.0.1:$PORT"
else
  echo "wrk not installed (apt-get install wrk): skipped"
fi
