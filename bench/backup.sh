#!/usr/bin/env bash
# Backup and restore at scale (issue #16): seeds a data folder through the API (N cases with
# sportello-load, D documents of S bytes with bench/backup_docs.py), measures the requests/s
# of GET /api/v1/cases/{ref} (wrk, bench/get_case.lua) without a backup, then during
# `sportello backup`, and times the backup (and, with RESTORE=1, a restore into a new data
# folder followed by `documents verify`). Everything generated is deleted at the end
# (KEEP=1 keeps it).
# Usage: bench/backup.sh                          (N=100000 D=20000 S=500000: 10 GB)
#        N=20000 D=2000 S=500000 bench/backup.sh  (a quick run)
#        BENCH_DIR=/var/tmp/x ...                  (where the data goes; needs ~2.2 × D × S free)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
D="${D:-20000}"
S="${S:-500000}"
PORT="${PORT:-18282}"

if [ -n "${BIN_DIR:-}" ]; then
  TARGET="$BIN_DIR"
else
  cargo build --release -q -p sportello --bin sportello
  cargo build --release -q -p sportello-loadtest --bin sportello-load
  TARGET="${CARGO_TARGET_DIR:-target}/release"
fi
BIN="$TARGET/sportello"

dir="$(mktemp -d "${BENCH_DIR:-/var/tmp}/sportello-backup-bench.XXXXXX")"
cleanup() {
  kill "${pid:-0}" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$dir"; else echo "kept $dir"; fi
}
trap cleanup EXIT
cat >"$dir/sportello.toml" <<TOML
data_dir = "$dir/data"
listen = "127.0.0.1:$PORT"
TOML
cli() { "$BIN" --config "$dir/sportello.toml" "$@"; }
token="$(cli user add bench --role operator | sed -n 's/^token: //p')"
cli serve >"$dir/serve.log" 2>&1 &
pid=$!
until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.05; done

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -srm), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "scenario: N=$N cases, D=$D documents of S=$S bytes, SQLite (WAL) and documents on $(df -T "$dir" | awk 'NR==2 {print $2}')"
t0=$(date +%s)
"$TARGET/sportello-load" --url "http://127.0.0.1:$PORT" --token "$token" --create "$N" --concurrency 8 \
  --get-seconds 1 --list-seconds 1 | grep -i creat | head -3
echo "seeded $N cases in $(( $(date +%s) - t0 )) s"
YEAR="$(date +%Y)"
ztl=$(( N * 3 / 4 ))   # sportello-load makes every fourth case a CUDE
python3 bench/backup_docs.py "http://127.0.0.1:$PORT" "$token" "$YEAR" "$ztl" "$D" "$S" 4
echo "data folder: $(du -sb "$dir/data" | cut -f1) bytes"

export MAX_SEQ="$ztl" TOKEN="$token" YEAR
rps() { sed -n 's/^Requests\/sec: *//p'; }
echo "without a backup (wrk -t2 -c8 -d20s, GET a random case):"
base=$(wrk -t2 -c8 -d20s -s bench/get_case.lua "http://127.0.0.1:$PORT" | tee "$dir/wrk-base.txt" | rps)
grep -E "Latency|non-2xx" "$dir/wrk-base.txt" | sed 's/^/  /'
echo "  $base requests/s"

echo "during a backup (wrk in 10 s rounds while it runs):"
t0=$(date +%s.%N)
cli backup "$dir/backup" >"$dir/backup.out" 2>&1 &
bpid=$!
rounds=()
while kill -0 "$bpid" 2>/dev/null; do
  r=$(wrk -t2 -c8 -d10s -s bench/get_case.lua "http://127.0.0.1:$PORT" | tee -a "$dir/wrk-during.txt" | rps)
  if kill -0 "$bpid" 2>/dev/null; then rounds+=("$r"); else rounds+=("($r, the backup ended in this round)"); fi
done
wait "$bpid"
t1=$(date +%s.%N)
grep -E "Latency|non-2xx" "$dir/wrk-during.txt" | sed 's/^/  /'
echo "  rounds: ${rounds[*]} requests/s"
cat "$dir/backup.out"
echo "backup: $(echo "$t1 - $t0" | bc) s wall, $(du -sb "$dir/backup" | cut -f1) bytes ($(du -sh "$dir/backup" | cut -f1))"
(cd "$dir/backup" && sha256sum --quiet -c MANIFEST.sha256 >/dev/null && echo "sha256sum -c MANIFEST.sha256: OK")

if [ -n "${RESTORE:-}" ]; then
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir/data"
  t0=$(date +%s.%N)
  cli restore "$dir/backup"
  echo "restore: $(echo "$(date +%s.%N) - $t0" | bc) s"
  t0=$(date +%s.%N)
  cli documents verify | tail -1
  echo "documents verify: $(echo "$(date +%s.%N) - $t0" | bc) s"
fi
