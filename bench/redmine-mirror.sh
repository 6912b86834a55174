#!/usr/bin/env bash
# `sportello import redmine` when Redmine is not the limit (issue #17): what the importer
# itself does per second.
#  1. record, once, every answer the importer asks the real Redmine for (the URLs of
#     crates/app/src/import_redmine/client.rs): users/current.json, the project, the issue
#     statuses, the issue list pages (their exact query string), each issue with
#     include=journals,attachments, each user it names, each attachment's content_url;
#  2. serve that folder with nginx (a config of its own, a free loopback port): the same
#     bytes for the same URL and query, 404 where Redmine answered 404;
#  3. import from the mirror into an empty SQLite data folder at each concurrency of CS
#     (wall time, issues/s, the summary), then a second run (all unchanged); with
#     PG_URL set, once more into a fresh PostgreSQL database (created and dropped here);
#  4. check: the summary from the mirror is the one from the real Redmine (REAL=1 imports
#     from the real Redmine too, at the first concurrency) and one document's SHA-256 is
#     the one of the attachment Redmine serves.
# Usage: IDENT=bench-… BIN_DIR=DIR bench/redmine-mirror.sh
#        MIRROR=DIR keeps the recording there (recorded only if DIR/complete is missing).
#        CS="2 8" (default), REAL=1, PG_URL=postgres://postgres@127.0.0.1:55432/postgres,
#        PUMA_PIDS="…" (with REAL=1: Redmine's CPU seconds during its runs)
# Needs SPORTELLO_TEST_REDMINE_URL and SPORTELLO_TEST_REDMINE_KEY (eval "$(bash tests/redmine/start.sh)").
set -euo pipefail
cd "$(dirname "$0")/.."
: "${IDENT:?IDENT=the project seeded by bench/redmine.sh}"
: "${SPORTELLO_TEST_REDMINE_URL:?run: eval \"\$(bash tests/redmine/start.sh)\"}"
: "${SPORTELLO_TEST_REDMINE_KEY:?run: eval \"\$(bash tests/redmine/start.sh)\"}"
CS="${CS:-2 8}"
url="${SPORTELLO_TEST_REDMINE_URL%/}"
key="$SPORTELLO_TEST_REDMINE_KEY"
if [ -n "${BIN_DIR:-}" ]; then
  BIN="$BIN_DIR/sportello"
else
  cargo build --release -q -p sportello --bin sportello
  BIN="${CARGO_TARGET_DIR:-target}/release/sportello"
fi
work="$(mktemp -d /var/tmp/sportello-bench-mirror.XXXXXX)"
mirror="${MIRROR:-$work/mirror}"
pgdb=""
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  [ -n "${nginx_pid:-}" ] && wait "$nginx_pid" 2>/dev/null || true
  [ -n "$pgdb" ] && psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $pgdb" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- 1. record ------------------------------------------------------------------------
# get PATH?QUERY FILE: the body to FILE on 200; nothing on 404 (nginx answers 404 too).
get() {
  mkdir -p "$(dirname "$2")"
  local code
  code="$(curl -s -o "$2" -w '%{http_code}' -H "X-Redmine-API-Key: $key" -H 'Accept: application/json' "$url/$1")"
  case "$code" in
    200) ;;
    404) rm -f "$2"; echo "$1" >>"$mirror/404.txt" ;;
    *) echo "redmine: HTTP $code for /${1%%\?*}" >&2; return 1 ;;
  esac
}
export -f get
export url key
if [ ! -f "$mirror/complete" ]; then
  mkdir -p "$mirror"
  start=$(date +%s.%N)
  get users/current.json "$mirror/users/current.json"
  get "projects/$IDENT.json" "$mirror/projects/$IDENT.json"
  get issue_statuses.json "$mirror/issue_statuses.json"
  pid="$(jq -r .project.id "$mirror/projects/$IDENT.json")"
  : >"$mirror/list.map"
  offset=0
  while :; do
    q="project_id=$pid&status_id=*&sort=id&limit=100&offset=$offset&include=attachments"
    f="issues-list/offset-$offset.json"
    get "issues.json?$q" "$mirror/$f"
    printf '"%s" /%s;\n' "$q" "$f" >>"$mirror/list.map"
    got="$(jq '.issues | length' "$mirror/$f")"
    total="$(jq '.total_count // 0' "$mirror/$f")"
    offset=$((offset + got))
    { [ "$got" -eq 0 ] || [ "$offset" -ge "$total" ]; } && break
  done
  export mirror
  jq -r '.issues[].id' "$mirror"/issues-list/*.json | sort -un \
    | xargs -P 4 -I{} bash -c 'get "issues/{}.json?include=journals,attachments" "$mirror/issues/{}.json"'
  # Users the importer asks for: authors, assignees, journal and attachment authors, and
  # the assignees named in journal details.
  jq -r '.issue | (.author.id?, .assigned_to.id?, (.journals // [])[].user.id?,
           (.attachments // [])[].author.id?,
           ((.journals // [])[].details[]? | select(.property == "attr" and .name == "assigned_to_id")
              | .old_value, .new_value)) | select(. != null) | tostring' "$mirror"/issues/*.json \
    | grep -E '^[0-9]+$' | sort -un \
    | xargs -r -P 4 -I{} bash -c 'get "users/{}.json" "$mirror/users/{}.json"'
  # Attachments: the path of content_url (what the importer re-roots on its --url).
  jq -r '.issue.attachments[]?.content_url' "$mirror"/issues/*.json \
    | sed -E 's#^[a-z]+://[^/]+/##' \
    | xargs -r -P 4 -I{} bash -c 'p="{}"; get "$p" "$mirror/$(printf "%b" "${p//%/\\x}")"'
  echo "$url" >"$mirror/origin"
  chmod -R a+rX "$mirror"
  touch "$mirror/complete"
  echo "recorded in $(echo "$(date +%s.%N) - $start" | bc) s: $(find "$mirror" -type f | wc -l) files, $(du -sb "$mirror" | cut -f1) bytes"
fi

# --- 2. serve -------------------------------------------------------------------------
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
user $(id -un);
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  sendfile on;
  keepalive_requests 100000;
  map_hash_bucket_size 256;
  map \$args \$issue_list {
    default "";
    include $mirror/list.map;
  }
  server {
    listen 127.0.0.1:$port;
    root $mirror;
    if (\$http_x_redmine_api_key = "") { return 401; }
    location = /issues.json {
      if (\$issue_list = "") { return 404; }
      try_files \$issue_list =404;
    }
    location ~ ^/issues/[0-9]+\.json\$ {
      if (\$args != "include=journals,attachments") { return 404; }
    }
    location / { }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g "daemon off; pid $work/nginx.pid;" &
nginx_pid=$!
for _ in $(seq 1 50); do
  curl -fs -H "X-Redmine-API-Key: x" "http://127.0.0.1:$port/issue_statuses.json" -o /dev/null && break
  sleep 0.1
done
kill -0 "$nginx_pid" 2>/dev/null || { echo "nginx did not start" >&2; exit 1; }
mirror_url="http://127.0.0.1:$port"
echo "mirror: nginx $(nginx -v 2>&1 | sed 's#.*/##') on $mirror_url"
as_recorded() {
  if [ "$url" = "$(cat "$mirror/origin")" ]; then cat; else sed "s#${url//./\\.}/#$(cat "$mirror/origin")/#g"; fi
}
# Byte-identical: one issue and its list page, from both.
one="$(jq -r '.issues[0].id' "$mirror/issues-list/offset-0.json")"
att="$(jq -r '.issue.attachments[0].content_url' "$mirror/issues/$one.json")"
for path in "issues/$one.json?include=journals,attachments" "issues.json?$(sed -n '1s/^"\(.*\)" .*/\1/p' "$mirror/list.map")" \
    users/current.json "$(sed -E 's#^[a-z]+://[^/]+/##' <<<"$att")"; do
  # Redmine writes its own origin into content_url: another port of the same Redmine
  # answers with its own.
  cmp <(curl -fs -H "X-Redmine-API-Key: $key" "$url/$path" | as_recorded) \
      <(curl -fs -H "X-Redmine-API-Key: $key" "$mirror_url/$path") \
    || { echo "mirror differs from Redmine for /${path%%\?*}" >&2; exit 1; }
done

# --- 3. measure -----------------------------------------------------------------------
export SPORTELLO_REDMINE_KEY="$key"
n="$(jq '.total_count' "$mirror/issues-list/offset-0.json")"
measure() { # LABEL URL C DATA
  local start secs first second
  start=$(date +%s.%N)
  first="$(/usr/bin/time -o "$work/cpu" -f '%U %S' "$BIN" --data "$4" import redmine --url "$2" --project "$IDENT" --concurrency "$3" </dev/null | tail -1)"
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  cpu="$(awk '{print $1 + $2}' "$work/cpu")"
  start=$(date +%s.%N)
  second="$("$BIN" --data "$4" import redmine --url "$2" --project "$IDENT" --concurrency "$3" </dev/null | tail -1)"
  echo "$1 C=$3: first $first in $secs s: $(echo "scale=1; $n / $secs" | bc) issues/s, sportello CPU $cpu s;" \
    "second $second in $(echo "$(date +%s.%N) - $start" | bc) s"
  printf '%s\n' "$first" >"$4/first-summary"
}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); binary: $BIN"
for c in $CS; do
  mkdir -p "$work/data-$c"
  measure mirror "$mirror_url" "$c" "$work/data-$c"
done
if [ -n "${PG_URL:-}" ]; then
  c="${CS%% *}"
  pgdb="sportello_mirror_$$"
  psql -q "$PG_URL" -c "CREATE DATABASE $pgdb"
  mkdir -p "$work/data-pg"
  printf '[database]\nurl = "%s"\n' "${PG_URL%/*}/$pgdb" >"$work/data-pg/sportello.toml"
  measure "mirror PostgreSQL" "$mirror_url" "$c" "$work/data-pg"
fi

# --- 4. check -------------------------------------------------------------------------
first_c="${CS%% *}"
want='"failed":0'
grep -q "$want" "$work/data-$first_c/first-summary" || { echo "mirror import failed issues" >&2; exit 1; }
if [ -n "${REAL:-}" ]; then
  mkdir -p "$work/data-real"
  # PUMA_PIDS="…": Redmine's processes, whose CPU seconds are shown for both runs.
  puma_cpu() { [ -n "${PUMA_PIDS:-}" ] && ps -o times= -p "${PUMA_PIDS// /,}" | awk '{s += $1} END {print s}' || echo 0; }
  before="$(puma_cpu)"
  measure redmine "$url" "$first_c" "$work/data-real"
  [ -n "${PUMA_PIDS:-}" ] && echo "Redmine CPU for both runs: $(( $(puma_cpu) - before )) s"
  cmp "$work/data-real/first-summary" "$work/data-$first_c/first-summary" \
    && echo "same summary from Redmine and from the mirror: $(cat "$work/data-real/first-summary")"
fi
sha="$(curl -fs -H "X-Redmine-API-Key: $key" "$att" | sha256sum | cut -d' ' -f1)"
find "$work/data-$first_c/documents" -type f -exec sha256sum {} + >"$work/documents.sha256"
if grep -q "^$sha " "$work/documents.sha256"; then
  echo "document of issue #$one: SHA-256 $sha, as Redmine serves it"
else
  echo "document of issue #$one: no stored document has Redmine's SHA-256 $sha" >&2; exit 1
fi
echo "requests served by the mirror: $(wc -l <"$work/nginx/access.log")"
