#!/usr/bin/env bash
# The outbound scenario of issue #7: N e-mails queued through the API (100 cases, one
# citizen e-mail each), then drained by `sportello outbound send` into a local aiosmtpd
# writing a Maildir; the sender is SIGKILLed when the Maildir holds KILL_AT messages and
# run again (after the lease) to the end. Reports the sending time (without the pause for
# the lease), messages/s, and from the Maildir: messages, distinct Message-IDs, lost and
# duplicated; and the database's status counts. Exit 1 if a message is lost.
# Release build, embedded SQLite unless DATABASE_URL is set (a fresh database!).
# Usage: bench/outbound.sh                 (N=10000, KILL_AT=N/2, C=8 messages in flight)
#        N=2000 KILL_AT=700 C=4 DATABASE_URL=postgres://… bench/outbound.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-10000}"
KILL_AT="${KILL_AT:-$(( N / 2 ))}"
PORT="${PORT:-18187}"
LEASE="${LEASE:-5}"
C="${C:-8}"
CASES=100

cargo build --release -q -p sportello --bin sportello
TARGET="${CARGO_TARGET_DIR:-target}/release"
BIN="$TARGET/sportello"
python3 -c 'import aiosmtpd' 2>/dev/null || { echo "aiosmtpd is missing: pip install aiosmtpd" >&2; exit 2; }

dir="$(mktemp -d /tmp/sportello-outbound-bench.XXXXXX)"
trap 'for p in "${pid:-}" "${sender:-}" "${sink:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"' EXIT
maildir="$dir/maildir"
smtp_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$maildir" >"$dir/aiosmtpd.log" 2>&1 &
sink=$!
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $smtp_port), 1)" 2>/dev/null; do sleep 0.05; done

cat >"$dir/sportello.toml" <<TOML
data_dir = "$dir/data"
listen = "127.0.0.1:$PORT"
[outbound]
sender = false
lease_seconds = $LEASE
concurrency = $C
[outbound.email]
smtp_url = "smtp://127.0.0.1:$smtp_port"
from = "Ufficio Permessi <permessi@comune.example.it>"
TOML
if [ -n "${DATABASE_URL:-}" ]; then printf '[database]\nurl = "%s"\n' "$DATABASE_URL" >>"$dir/sportello.toml"; fi
CFG=(--config "$dir/sportello.toml")
token="$("$BIN" "${CFG[@]}" user add bench --role operator 2>/dev/null | sed -n 's/^token: //p')"
"$BIN" "${CFG[@]}" serve >"$dir/serve.log" 2>&1 &
pid=$!
until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.05; done
api="http://127.0.0.1:$PORT/api/v1"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -srm)"
database="SQLite (WAL) on $(df -T "$dir" | awk 'NR==2 {print $2}')"
[ -n "${DATABASE_URL:-}" ] && database="PostgreSQL $(psql -At "$DATABASE_URL" -c 'SHOW server_version' 2>/dev/null || true)"
echo "scenario: N=$N e-mails to $CASES citizens, kill at $KILL_AT, $C in flight, lease $LEASE s, database: $database"

# The cases, one citizen e-mail each.
refs=()
for i in $(seq 1 "$CASES"); do
  ref="$(curl -fs -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"case_type\":\"ztl_permit\",\"subject\":\"Permesso residenti\",\"channel\":\"email\",\"citizen\":{\"name\":\"Cittadino $i\",\"email\":\"cittadino$i@example.it\"}}" \
    "$api/cases" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reference"])')"
  refs+=("$ref")
done

# N messages queued through the API, 8 requests in flight (one curl, one operation per
# message in a config file: each operation has its own headers and write-out).
body='Gentile cittadino,\\nla sua pratica è stata esaminata: il permesso è pronto per il ritiro.\\n\\nUfficio Permessi'
for i in $(seq 1 "$N"); do
  ref="${refs[$(( (i - 1) % CASES ))]}"
  printf 'url = "%s/cases/%s/messages"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\nheader = "Idempotency-Key: bench-%s"\ndata = "{\\"channel\\":\\"email\\",\\"subject\\":\\"Esito della pratica (%s)\\",\\"body\\":\\"%s\\"}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
    "$api" "$ref" "$token" "$i" "$i" "$body"
  [ "$i" -lt "$N" ] && echo next
done >"$dir/queue.curl"
t0=$(date +%s.%N)
curl -s --no-progress-meter --parallel --parallel-max 8 -K "$dir/queue.curl" | sort | uniq -c | sed 's/^/  HTTP /' >"$dir/codes"
t1=$(date +%s.%N)
echo "queued through the API in $(printf '%.1f' "$(echo "$t1 - $t0" | bc)") s:"; cat "$dir/codes"
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
pid=

in_maildir() { find "$maildir/new" "$maildir/cur" -type f 2>/dev/null | wc -l; }

# First sender: SIGKILLed once the Maildir holds KILL_AT messages.
t0=$(date +%s.%N)
"$BIN" "${CFG[@]}" outbound send >"$dir/send1.log" 2>&1 &
sender=$!
# Counting a big folder costs CPU the sender and the sink need: look rarely while far away.
while kill -0 "$sender" 2>/dev/null; do
  n="$(ls -U "$maildir/new" 2>/dev/null | wc -l)"
  [ "$n" -ge "$KILL_AT" ] && break
  sleep "$(awk -v r=$(( KILL_AT - n )) 'BEGIN { s = r / 5000; if (s < 0.005) s = 0.005; if (s > 0.5) s = 0.5; print s }')"
done
kill -KILL "$sender" 2>/dev/null || true
wait "$sender" 2>/dev/null || true
sender=
t1=$(date +%s.%N)
at_kill="$(in_maildir)"
first=$(echo "$t1 - $t0" | bc)
echo "first sender SIGKILLed after $(printf '%.2f' "$first") s with $at_kill messages in the Maildir"

# The lease of what the killed sender had taken runs out (not counted as sending time).
sleep "$(( LEASE + 1 ))"

t0=$(date +%s.%N)
"$BIN" "${CFG[@]}" outbound send >"$dir/send2.log" 2>&1
t1=$(date +%s.%N)
second=$(echo "$t1 - $t0" | bc)
echo "second sender: $(grep -E '^sent ' "$dir/send2.log")"
sleep 1   # the sink's last files

messages="$(in_maildir)"
distinct="$(find "$maildir/new" "$maildir/cur" -type f -exec grep -h -m1 -i '^Message-ID:' {} + | tr -d ' \r' | sort -u | wc -l)"
total=$(echo "$first + $second" | bc)
lost=$(( N - distinct ))
duplicated=$(( messages - distinct ))
echo "sending time: $(printf '%.2f' "$total") s (without the ${LEASE}+1 s pause for the lease), $(echo "$N / $total" | bc) messages/s"
echo "Maildir: $messages messages, $distinct distinct Message-IDs; lost $lost, duplicated $duplicated"
if [ -n "${DATABASE_URL:-}" ]; then
  counts="$(psql -At "$DATABASE_URL" -c "SELECT status || ' ' || count(*) FROM outbound_messages GROUP BY status ORDER BY status")"
else
  counts="$(sqlite3 "$dir/data/sportello.db" "SELECT status || ' ' || count(*) FROM outbound_messages GROUP BY status ORDER BY status")"
fi
echo "database: $(echo "$counts" | paste -sd, | sed 's/,/, /g')"
if [ "$lost" -gt 0 ]; then
  echo "FAIL: $lost messages lost" >&2
  exit 1
fi
