#!/usr/bin/env bash
# Two release builds compared on one database, alternately (never at the same time): the
# case page (one client) and the API's read by reference (8 connections), three rounds.
# Usage: BEFORE=DIR AFTER=DIR [N=5000] bench/pair.sh   (each DIR holds sportello and
# sportello-load; the database is created by BEFORE, so both must share its migrations)
set -uo pipefail
B="${BEFORE:?a directory with the first build}"; A="${AFTER:?a directory with the second build}"
PORT="${PORT:-18193}"; N="${N:-5000}"
dir=$(mktemp -d /tmp/sportello-pair.XXXXXX)
printf 'data_dir = "%s/data"\nlisten = "127.0.0.1:%s"\n' "$dir" "$PORT" > $dir/sportello.toml
out=$($B/sportello --config $dir/sportello.toml user add op --role operator 2>/dev/null)
token=$(sed -n 's/^token: //p' <<<"$out"); password=$(sed -n 's/^password: //p' <<<"$out")
start() { $1/sportello --config $dir/sportello.toml serve > $dir/log 2>&1 & pid=$!; until curl -fs http://127.0.0.1:$PORT/healthz >/dev/null 2>&1; do sleep 0.01; done; }
start $B
$B/sportello-load --url http://127.0.0.1:$PORT --token $token --create $N --concurrency 8 --get-seconds 0 --list-seconds 0 >/dev/null
kill $pid; wait $pid 2>/dev/null
cd "$(dirname "$0")/.."
for i in 1 2 3; do for side in B A; do
  d=$B; [ $side = A ] && d=$A
  start $d
  jar=$dir/jar; rm -f $jar
  curl -s -c $jar http://127.0.0.1:$PORT/ufficio/login >/dev/null
  csrf=$(awk '$6 == "csrf_login" {print $7}' $jar)
  curl -s -b $jar -c $jar -d "login=op&password=$password&csrf=$csrf&next=/ufficio" http://127.0.0.1:$PORT/ufficio/login >/dev/null
  export COOKIE="sportello_session=$(awk '$6 == "sportello_session" {print $7}' $jar)" YEAR=$(date +%Y) MAX_SEQ=$(( N * 3 / 4 ))
  echo -n "$side $i case: "; PAGE=case wrk -t1 -c1 -d8s --latency -s bench/pages.lua http://127.0.0.1:$PORT | grep -E "   50%|Requests/sec" | tr '\n' ' '
  echo -n " api get: "; TOKEN=$token wrk -t2 -c8 -d8s --latency -s bench/get_case.lua http://127.0.0.1:$PORT | grep -E "   50%|Requests/sec" | tr '\n' ' '; echo
  kill $pid; wait $pid 2>/dev/null
done; done
rm -rf $dir
