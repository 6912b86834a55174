#!/usr/bin/env bash
# The performance scenario of issue #2, re-runnable by anyone:
#   release build, embedded SQLite, N cases created through the API by C concurrent
#   clients, then reads by reference and filtered lists, resident memory after the load,
#   and the cold start of a server whose database already holds the N cases.
# Usage: bench/run.sh            (N=100000 C=8 by default)
#        N=20000 C=8 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
C="${C:-8}"
PORT="${PORT:-18181}"

# BIN_DIR=DIR runs the binaries already in DIR (sportello, sportello-load), e.g. to compare
# two builds on the same machine; otherwise this tree is built in release mode.
if [ -n "${BIN_DIR:-}" ]; then
  TARGET="$BIN_DIR"
else
  cargo build --release -q -p sportello --bin sportello
  cargo build --release -q -p sportello-loadtest --bin sportello-load
  TARGET="${CARGO_TARGET_DIR:-target}/release"
fi
BIN="$TARGET/sportello"

dir="$(mktemp -d /tmp/sportello-bench.XXXXXX)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$dir"' EXIT
cat >"$dir/sportello.toml" <<TOML
data_dir = "$dir/data"
listen = "127.0.0.1:$PORT"
TOML
token="$("$BIN" --config "$dir/sportello.toml" user add bench --role operator | sed -n 's/^token: //p')"

# Starts the server; sets $pid and $startup (seconds until /healthz answered).
start_server() {
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" --config "$dir/sportello.toml" serve >"$dir/serve.log" 2>&1 &
  pid=$!
  until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.005; done
  t1=$(date +%s.%N)
  startup=$(echo "$t1 - $t0" | bc)
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -srm)"
echo "scenario: N=$N cases, $C concurrent clients, SQLite (WAL) on $(df -T "$dir" | awk 'NR==2 {print $2}')"
start_server
echo "cold start (empty database): ${startup} s"
"$TARGET/sportello-load" --url "http://127.0.0.1:$PORT" --token "$token" --create "$N" --concurrency "$C" \
  --get-seconds 20 --list-seconds 10
if command -v wrk >/dev/null 2>&1; then
  echo "wrk (a lighter client than sportello-load), 8 connections, 2 threads, 20 s:"
  export MAX_SEQ=$(( N * 3 / 4 )) TOKEN="$token" YEAR="$(date +%Y)"
  wrk -t2 -c8 -d20s --latency -s bench/get_case.lua "http://127.0.0.1:$PORT" | sed 's/^/  /'
  wrk -t1 -c1 -d10s --latency -s bench/list_cases.lua "http://127.0.0.1:$PORT" | sed 's/^/  /'
fi
echo "resident memory after the load: $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$pid/status)"
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
start_server
echo "cold start ($N cases in the database): ${startup} s"
echo "database size: $(du -sh "$dir/data" | cut -f1)"
