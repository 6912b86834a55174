#!/usr/bin/env bash
# Builds the Containerfile's runtime stage and runs it against PostgreSQL and S3 the way
# compose.yaml wires them (SPORTELLO_DATABASE__URL, SPORTELLO_DOCUMENTS__URL/ENDPOINT,
# AWS_*): /healthz, the image's HEALTHCHECK command, the non-root user, the OCR and PDF
# tools, a case and a document that lands in the bucket, and a clean stop on SIGTERM.
#
# NOT run by .ci/run: it needs podman, and on a machine without a container registry the
# images cannot be pulled. There it builds what it can honestly build:
#  - the runtime base `docker.io/library/debian:bookworm-slim`, when absent, from Debian's
#    own archive with debootstrap (`podman import`), tagged with that name;
#  - the `build` stage (the Rust image) is replaced by the binary built here
#    (`cargo build --release -p sportello`) with `--build-context build=DIR`, which takes
#    the place of that stage; the runtime stage is the Containerfile's, unchanged.
# With a registry, `podman build --format docker -f Containerfile .` builds both stages.
#
# Needs the services of .ci/run: PostgreSQL at SPORTELLO_TEST_DATABASE_URL's server
# (default postgres://postgres@127.0.0.1:55432/postgres) and S3 at
# SPORTELLO_TEST_S3_ENDPOINT / SPORTELLO_TEST_S3_BUCKET with AWS_* credentials.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
fail() { echo "container.sh: FAIL: $*" >&2; exit 1; }

pg_url="${SPORTELLO_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:55432/postgres}"
s3_endpoint="${SPORTELLO_TEST_S3_ENDPOINT:-http://127.0.0.1:59000}"
s3_bucket="${SPORTELLO_TEST_S3_BUCKET:-sportello-ci}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-sportello-ci}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-sportello-ci-secret}" AWS_REGION="${AWS_REGION:-us-east-1}"
target="${CARGO_TARGET_DIR:-$root/target}"
# This sandbox's limits: podman's default RLIMIT_NOFILE is above the hard limit, and crun
# refuses hybrid cgroups (runc, Debian's package, does not).
runtime=()
command -v runc >/dev/null 2>&1 && runtime=(--runtime "$(command -v runc)")
limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)

work="$(mktemp -d /tmp/sportello-container.XXXXXX)"
name="sportello-test-$$"
db="sportello_container_$$"
psql_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql"
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  "$psql_bin" "$pg_url" -qAtc "drop database if exists $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! podman image exists docker.io/library/debian:bookworm-slim; then
  echo "container.sh: no debian:bookworm-slim image: building one with debootstrap"
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >/dev/null
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb
  tar -C "$work/rootfs" -c . | podman import - docker.io/library/debian:bookworm-slim >/dev/null
  rm -rf "$work/rootfs"
fi

cargo build --release -q -p sportello
install -D -s -m 0755 "$target/release/sportello" "$work/build/out/sportello"
podman build --isolation=chroot --format docker --build-context build="$work/build" \
  -t localhost/sportello:test -f Containerfile . >"$work/build.log" 2>&1 \
  || { tail -n 30 "$work/build.log" >&2; fail "podman build"; }
echo "image: $(podman image inspect localhost/sportello:test --format '{{.Size}}') bytes"
[ "$(podman image inspect localhost/sportello:test --format '{{.Config.User}}')" = sportello:sportello ] || fail "the image's user is not sportello"

"$psql_bin" "$pg_url" -qAtc "create database $db"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
prefix="container-test-$$"
podman "${runtime[@]}" run -d --name "$name" --network=host "${limits[@]}" \
  -e SPORTELLO_LISTEN="127.0.0.1:$port" \
  -e SPORTELLO_DATABASE__URL="${pg_url%/*}/$db" \
  -e SPORTELLO_DOCUMENTS__URL="s3://$s3_bucket/$prefix" \
  -e SPORTELLO_DOCUMENTS__ENDPOINT="$s3_endpoint" \
  -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_REGION \
  -e SPORTELLO_TRUSTED_PROXIES='["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]' \
  localhost/sportello:test >/dev/null 2>"$work/run.err" || { cat "$work/run.err" >&2; fail "podman run"; }
for _ in $(seq 1 120); do
  [ "$(curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null)" = ok ] && break
  sleep 0.5
done
[ "$(curl -fsS "http://127.0.0.1:$port/healthz")" = ok ] || { podman logs "$name" >&2; fail "/healthz"; }
echo "GET /healthz: ok"
podman healthcheck run "$name" >/dev/null 2>&1 || fail "the image's HEALTHCHECK command failed"
echo "HEALTHCHECK: healthy"
[ "$(podman exec "$name" id -u)" = 10001 ] || fail "not running as uid 10001"
podman exec "$name" sh -c 'tesseract --list-langs 2>&1 | grep -qx ita && command -v pdftoppm && command -v tiff2pdf && command -v pg_dump' >/dev/null \
  || fail "OCR, PDF or PostgreSQL tools missing in the image"
token="$(podman exec "$name" sportello user add anna --role admin 2>/dev/null | sed -n 's/^token: //p')"
[ -n "$token" ] || fail "user add printed no token"
ref="$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"case_type":"ztl_permit","subject":"Prova container","channel":"web","citizen":{"name":"Mario Rossi"}}' \
  "http://127.0.0.1:$port/api/v1/cases" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reference"])')"
printf 'documento di prova %s\n' "$$" >"$work/doc.txt"
curl -fsS -H "Authorization: Bearer $token" -F "file=@$work/doc.txt;type=text/plain" \
  "http://127.0.0.1:$port/api/v1/cases/$ref/documents" >/dev/null || fail "document upload"
sha="$(sha256sum "$work/doc.txt" | cut -d' ' -f1)"
python3 - "$s3_endpoint" "$s3_bucket" "$prefix/sha256/${sha:0:2}/$sha" <<'PY' || fail "the document is not in the bucket"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
s3.head_object(Bucket=sys.argv[2], Key=sys.argv[3])
print("document in S3:", sys.argv[3])
PY
podman stop -t 30 "$name" >/dev/null
[ "$(podman inspect "$name" --format '{{.State.ExitCode}}')" = 0 ] || fail "exit status after SIGTERM"
echo "stopped on SIGTERM, exit status 0"
echo "container: 1 passed, 0 failed"
