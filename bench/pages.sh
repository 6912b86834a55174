#!/usr/bin/env bash
# The back-office pages of issue #6 on a full office: N cases created through the API,
# then the queues page, a filtered list and random case pages, each for 15 s by one
# client at a time with wrk (so the latency is the server's time plus the loopback), and
# the size of each page. Release build, embedded SQLite unless DATABASE_URL is set.
# Usage: N=100000 bench/pages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
PORT="${PORT:-18184}"
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
dir="$(mktemp -d /tmp/sportello-pages-bench.XXXXXX)"
trap 'kill "${pid:-0}" 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"' EXIT
printf 'data_dir = "%s/data"\nlisten = "127.0.0.1:%s"\n' "$dir" "$PORT" >"$dir/sportello.toml"
if [ -n "${DATABASE_URL:-}" ]; then printf '[database]\nurl = "%s"\n' "$DATABASE_URL" >>"$dir/sportello.toml"; fi
out="$("$BIN" --config "$dir/sportello.toml" user add op --role operator)"
token="$(sed -n 's/^token: //p' <<<"$out")"
password="$(sed -n 's/^password: //p' <<<"$out")"
"$BIN" --config "$dir/sportello.toml" serve >"$dir/serve.log" 2>&1 &
pid=$!
until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.05; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $N cases"
"$TARGET/sportello-load" --url "http://127.0.0.1:$PORT" --token "$token" --create "$N" --concurrency 8 \
  --get-seconds 0 --list-seconds 0 | tail -2
# PostgreSQL plans from statistics that autovacuum gathers a while after a bulk load; a
# running office has them, so they are gathered here before measuring.
if [ -n "${DATABASE_URL:-}" ] && command -v psql >/dev/null; then psql -q "$DATABASE_URL" -c ANALYZE; fi
jar="$dir/jar"
curl -s -c "$jar" "http://127.0.0.1:$PORT/ufficio/login" >/dev/null
csrf="$(awk '$6 == "csrf_login" {print $7}' "$jar")"
curl -s -b "$jar" -c "$jar" -d "login=op&password=$password&csrf=$csrf&next=/ufficio" "http://127.0.0.1:$PORT/ufficio/login" >/dev/null
session="$(awk '$6 == "sportello_session" {print $7}' "$jar")"
export COOKIE="sportello_session=$session" YEAR="$(date +%Y)" MAX_SEQ=$(( N * 3 / 4 ))
for page in home list case; do
  case "$page" in
    home) path="/ufficio" ;;
    list) path="/ufficio/pratiche?overdue=true" ;;
    case) path="/ufficio/pratiche/ZTL-$YEAR-000042" ;;
  esac
  size="$(curl -s -H "Cookie: $COOKIE" "http://127.0.0.1:$PORT$path" | wc -c)"
  echo "== $page ($path): $size bytes"
  PAGE="$page" wrk -t1 -c1 -d15s --latency -s bench/pages.lua "http://127.0.0.1:$PORT" | grep -E "Latency|50%|75%|90%|99%|Requests/sec|non-2xx"
done
