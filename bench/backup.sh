#!/usr/bin/env bash
# Backup and restore at scale (issue #16), SQLite and documents on the local disk.
#  1. seed: N cases through the API (wrk, bench/create_case.lua, in rounds until N exist),
#     then D documents of S random bytes: written straight into the store's layout with
#     their rows (bench/backup_seed_docs.py, server stopped; DOCS=api uploads them through
#     the API instead, bench/backup_docs.py);
#  2. measure: requests/s of GET /api/v1/cases/{ref} (wrk -t2 -c8, bench/get_case.lua)
#     without a backup, then in 10 s rounds while `sportello backup` runs; the backup's time
#     and size; with RESTORE=1, a restore into an empty data folder and `documents verify`.
# Everything generated is deleted at the end unless KEEP=1.
# Usage: bench/backup.sh                             (N=100000 D=20000 S=500000: 10 GB)
#        N=20000 D=2000 bench/backup.sh              (a quick run)
#        STEP=seed KEEP=1 bench/backup.sh            (seed only; prints the folder)
#        STEP=measure DIR=/var/tmp/… bench/backup.sh (measure a seeded folder)
#        BIN_DIR=DIR runs the sportello binary in DIR instead of building this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
D="${D:-20000}"
S="${S:-500000}"
PORT="${PORT:-18282}"
STEP="${STEP:-all}"

if [ -n "${BIN_DIR:-}" ]; then
  TARGET="$BIN_DIR"
else
  cargo build --release -q -p sportello --bin sportello
  TARGET="${CARGO_TARGET_DIR:-target}/release"
fi
BIN="$TARGET/sportello"

if [ -n "${DIR:-}" ]; then
  dir="$DIR"
else
  dir="$(mktemp -d "${BENCH_DIR:-/var/tmp}/sportello-backup-bench.XXXXXX")"
  cat >"$dir/sportello.toml" <<TOML
data_dir = "$dir/data"
listen = "127.0.0.1:$PORT"
TOML
fi
cleanup() {
  kill "${pid:-0}" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$dir"; else echo "kept $dir"; fi
}
trap cleanup EXIT
cli() { "$BIN" --config "$dir/sportello.toml" "$@"; }
start_server() {
  # The binary itself in the background (not the function `cli`): $! must be its pid.
  "$BIN" --config "$dir/sportello.toml" serve >>"$dir/serve.log" 2>&1 &
  pid=$!
  until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.05; done
}
stop_server() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; }
total_cases() {
  curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/cases?per_page=1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'
}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -srm), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%RZ)"

if [ "$STEP" != measure ]; then
  TOKEN="$(cli user add bench --role operator | sed -n 's/^token: //p')"
  echo "$TOKEN" >"$dir/token"
  export TOKEN
  start_server
  t0=$(date +%s)
  while [ "$(total_cases)" -lt "$N" ]; do
    wrk -t2 -c8 -d10s -s bench/create_case.lua "http://127.0.0.1:$PORT/api/v1/cases" >/dev/null
  done
  echo "seeded $(total_cases) cases through the API in $(( $(date +%s) - t0 )) s"
  if [ "${DOCS:-direct}" = api ]; then
    python3 bench/backup_docs.py "http://127.0.0.1:$PORT" "$TOKEN" "$(date +%Y)" "$N" "$D" "$S" 4
    stop_server
  else
    stop_server
    python3 bench/backup_seed_docs.py "$dir/data" "$D" "$S"
  fi
  echo "data folder: $(du -sb "$dir/data" | cut -f1) bytes ($(du -sh "$dir/data" | cut -f1))"
  [ "$STEP" = seed ] && exit 0
fi

TOKEN="$(cat "$dir/token")"
export TOKEN YEAR="$(date +%Y)" MAX_SEQ="$N"
echo "scenario: $(du -sh "$dir/data" | cut -f1) data folder, SQLite (WAL) and documents on $(df -T "$dir" | awk 'NR==2 {print $2}')"
start_server
MAX_SEQ="$(total_cases)"
rps() { sed -n 's/^Requests\/sec: *//p'; }
echo "without a backup (wrk -t2 -c8 -d20s, GET a random case of $MAX_SEQ; again after the backup):"
base=$(wrk -t2 -c8 -d20s -s bench/get_case.lua "http://127.0.0.1:$PORT" | tee "$dir/wrk-base.txt" | rps)
grep -E "Latency|non-2xx" "$dir/wrk-base.txt" | sed 's/^/  /'
echo "  $base requests/s"

echo "during a backup (wrk in 10 s rounds while it runs):"
rm -rf "$dir/backup"
t0=$(date +%s.%N)
"$BIN" --config "$dir/sportello.toml" backup "$dir/backup" >"$dir/backup.out" 2>&1 &
bpid=$!
rounds=()
: >"$dir/wrk-during.txt"
while kill -0 "$bpid" 2>/dev/null; do
  r=$(wrk -t2 -c8 -d10s -s bench/get_case.lua "http://127.0.0.1:$PORT" | tee -a "$dir/wrk-during.txt" | rps)
  if kill -0 "$bpid" 2>/dev/null; then rounds+=("$r"); else rounds+=("($r: the backup ended in this round)"); fi
done
wait "$bpid"
t1=$(date +%s.%N)
grep -E "Latency|non-2xx" "$dir/wrk-during.txt" | sed 's/^/  /'
echo "  rounds: ${rounds[*]} requests/s"
cat "$dir/backup.out"
echo "backup: $(echo "$t1 - $t0" | bc) s wall, $(du -sb "$dir/backup" | cut -f1) bytes ($(du -sh "$dir/backup" | cut -f1))"
after=$(wrk -t2 -c8 -d20s -s bench/get_case.lua "http://127.0.0.1:$PORT" | rps)
echo "without a backup again: $after requests/s"
stop_server

if [ -n "${RESTORE:-}" ]; then
  cat >"$dir/restored.toml" <<TOML
data_dir = "$dir/restored"
TOML
  t0=$(date +%s.%N)
  "$BIN" --config "$dir/restored.toml" restore "$dir/backup"
  echo "restore: $(echo "$(date +%s.%N) - $t0" | bc) s"
  t0=$(date +%s.%N)
  "$BIN" --config "$dir/restored.toml" documents verify | tail -1
  echo "documents verify of the restored copy: $(echo "$(date +%s.%N) - $t0" | bc) s"
fi
