#!/usr/bin/env bash
# Runs schemathesis with all its checks against the demo office's /api/openapi.json, signed
# in as an administrator: every answer must be documented (status, media type, schema) and
# every request the document allows must be accepted. On PostgreSQL when
# SPORTELLO_TEST_DATABASE_URL names a server. Exit status: schemathesis's.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${SPORTELLO_BIN:-${CARGO_TARGET_DIR:-target}/debug/sportello}"
examples="${SCHEMATHESIS_EXAMPLES:-30}"
work="$(mktemp -d /tmp/sportello-st.XXXXXX)"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
{
  echo "data_dir = \"$work/data\""
  echo "listen = \"127.0.0.1:$port\""
  echo "public_url = \"http://127.0.0.1:$port\""
  # schemathesis sends a few bad tokens to every operation (its ignored_auth check): the
  # per-address throttle (tested on its own) must not answer them 429 here.
  printf '[limits]\nauth_failures_per_minute = 1000000\n'
} >"$work/sportello.toml"
if [[ "${SPORTELLO_TEST_DATABASE_URL:-}" == postgres* ]]; then
  name="sportello_st_$RANDOM$RANDOM"
  psql "$SPORTELLO_TEST_DATABASE_URL" -qc "CREATE DATABASE $name" >/dev/null
  printf '[database]\nurl = "%s/%s"\n' "${SPORTELLO_TEST_DATABASE_URL%/*}" "$name" >>"$work/sportello.toml"
fi
token="$("$bin" --config "$work/sportello.toml" user add st-admin --role admin --name "Schemathesis" | sed -n 's/^token: //p')"
"$bin" --config "$work/sportello.toml" serve --demo >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$work/serve.log"; exit 1; }

st --no-color --config-file tests/api/schemathesis.toml run "http://127.0.0.1:$port/api/openapi.json" \
  --checks all \
  --max-examples "$examples" \
  --header "Authorization: Bearer $token" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --generation-database none \
  "$@"
