#!/usr/bin/env bash
# Several instances (issue #17 §3): requests/s through nginx (round robin) to one and to two
# `sportello serve` on one PostgreSQL database, for a read endpoint with a token (the case
# list) and for the public status page (/stato, anonymous, rate limited per client).
# Usage: PG_URL=postgres://postgres@127.0.0.1:55432/postgres bench/scale.sh
#        N=2000 C=16 SECONDS_EACH=20 bench/scale.sh
# Needs PostgreSQL (PG_URL: a server where it may create and drop a database), nginx, wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:55432/postgres}"
N="${N:-2000}"
C="${C:-16}"
SECONDS_EACH="${SECONDS_EACH:-20}"

# BIN_DIR=DIR runs the binaries already in DIR; otherwise this tree is built in release mode.
if [ -n "${BIN_DIR:-}" ]; then
  TARGET="$BIN_DIR"
else
  cargo build --release -q -p sportello --bin sportello
  TARGET="${CARGO_TARGET_DIR:-target}/release"
fi
BIN="$TARGET/sportello"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

dir="$(mktemp -d /tmp/sportello-scale.XXXXXX)"
db="sportello_scale_$$"
pids=()
cleanup() {
  [ -f "$dir/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
DB_URL="${PG_URL%/*}/$db"

cat >"$dir/sportello.toml" <<TOML
data_dir = "$dir/data"
trusted_proxies = ["127.0.0.1"]
[database]
url = "$DB_URL"
[limits]
# /stato counts wrong pairs per client: the benchmark's client asks for a right pair.
auth_failures_per_minute = 1000000
TOML
token="$("$BIN" --config "$dir/sportello.toml" user add bench --role supervisor 2>/dev/null | sed -n 's/^token: //p')"

# Starts instance $1 on a free port; appends its pid to pids and its port to ports.
ports=()
start_instance() {
  local port
  port="$(free_port)"
  SPORTELLO_DATA_DIR="$dir/data-$1" "$BIN" --config "$dir/sportello.toml" serve --listen "127.0.0.1:$port" \
    >"$dir/serve-$1.log" 2>&1 &
  pids+=($!)
  ports+=("$port")
  until curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.05; done
}

# (Re)starts nginx in front of the given ports (keep-alive to the upstreams, as deployed).
NGINX_PORT="$(free_port)"
start_nginx() {
  [ -f "$dir/nginx.pid" ] && { kill -QUIT "$(cat "$dir/nginx.pid")"; while [ -f "$dir/nginx.pid" ]; do sleep 0.05; done; }
  local servers="" user=""
  for p in "$@"; do servers="$servers    server 127.0.0.1:$p max_fails=1 fail_timeout=5s;"$'\n'; done
  [ "$(id -u)" = 0 ] && user="user root;"
  mkdir -p "$dir/nginx"
  cat >"$dir/nginx.conf" <<NGINX
$user
worker_processes auto;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/body; proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi; uwsgi_temp_path $dir/nginx/uwsgi; scgi_temp_path $dir/nginx/scgi;
  upstream sportello {
$servers    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://sportello;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_next_upstream error timeout http_502 http_503;
    }
  }
}
NGINX
  "$NGINX" -p "$dir/nginx" -e "$dir/nginx/error.log" -c "$dir/nginx.conf" -g "pid $dir/nginx.pid;"
  until curl -fs "http://127.0.0.1:$NGINX_PORT/healthz" >/dev/null 2>&1; do sleep 0.05; done
}

measure() {
  local label="$1"
  echo "$label (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
  export TOKEN="$token"
  wrk -t2 -c"$C" -d"${SECONDS_EACH}s" --latency -s bench/list_cases.lua "http://127.0.0.1:$NGINX_PORT" \
    | grep -E "Requests/sec|^ +Latency +[0-9]|99%|Non-2xx|Socket errors" | sed 's/^/  list  /'
  wrk -t2 -c"$C" -d"${SECONDS_EACH}s" --latency "http://127.0.0.1:$NGINX_PORT/stato" \
    | grep -E "Requests/sec|^ +Latency +[0-9]|99%|Non-2xx|Socket errors" | sed 's/^/  stato /'
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -srm)"
echo "PostgreSQL: $(psql "$PG_URL" -Atc 'show server_version'), same machine; nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///')"
start_instance a
body='{"case_type":"ztl_permit","subject":"Permesso residenti","channel":"web","citizen":{"fiscal_code":"RSSMRA80A01H501U","name":"Mario Rossi","email":"mario.rossi@example.it"}}'
seq "$N" | xargs -P 8 -I{} curl -fs -o /dev/null -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:${ports[0]}/api/v1/cases"
echo "scenario: $N cases, wrk $C connections for ${SECONDS_EACH} s each, through nginx"
start_nginx "${ports[0]}"
measure "one instance behind nginx:"
start_instance b
start_nginx "${ports[0]}" "${ports[1]}"
measure "two instances behind nginx (round robin):"
echo "direct to one instance, no proxy (the proxy's own cost):"
wrk -t2 -c"$C" -d"${SECONDS_EACH}s" -s bench/list_cases.lua "http://127.0.0.1:${ports[0]}" \
  | grep -E "Requests/sec|Non-2xx|Socket errors" | sed 's/^/  list  /'
