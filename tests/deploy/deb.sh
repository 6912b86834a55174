#!/usr/bin/env bash
# The Debian package, installed like any server (issue #17 §2), step by step as
# docs/DEPLOY.md says: build it with cargo-deb, `dpkg -i`, `systemd-analyze verify` the
# installed unit, start the server the way the unit does (its ExecStart, as its User=, with
# its EnvironmentFile, inside the unit's seccomp filter and MemoryDenyWriteExecute when
# python3-seccomp is there), check /healthz and /readyz, stop it with SIGTERM, then
# `dpkg -r` (configuration, data and user stay) and `dpkg --purge` (all gone).
# PID 1 is not systemd here, so systemctl cannot start the unit: the script does what
# systemd would. Run as root. Exits non-zero at the first failure; can be run again.
#
# Environment: CARGO_TARGET_DIR (where cargo builds), SPORTELLO_DEB (use this .deb instead
# of building one), SPORTELLO_DEB_PROFILE (cargo profile, default release), CI=true or SPORTELLO_DEB_TEST_REPLACE=1 (purge an installed sportello
# package first; otherwise the script refuses to touch it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

fail() { echo "deb.sh: FAIL: $*" >&2; exit 1; }
step() { printf '\n-- %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

[ "$(id -u)" = 0 ] || fail "run as root (dpkg -i, adduser)"
for tool in cargo-deb dpkg systemd-analyze setpriv curl python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing"
done

if dpkg -s sportello >/dev/null 2>&1 || [ -e /var/lib/sportello ] || [ -e /var/backups/sportello ] || getent passwd sportello >/dev/null; then
  if [ "${CI:-}" = true ] || [ "${SPORTELLO_DEB_TEST_REPLACE:-}" = 1 ]; then
    echo "deb.sh: purging a sportello left installed by an earlier run"
    dpkg --purge sportello >/dev/null 2>&1 || true
    rm -rf /var/lib/sportello /etc/sportello /var/backups/sportello
    getent passwd sportello >/dev/null && userdel sportello
    getent group sportello >/dev/null && groupdel sportello
  else
    fail "a sportello package, user or /var/lib/sportello is already here; set SPORTELLO_DEB_TEST_REPLACE=1 to let this test purge it"
  fi
fi

work="$(mktemp -d /tmp/sportello-deb.XXXXXX)"
server=""
nginx_running=""
cleanup() {
  if [ -n "$nginx_running" ]; then
    nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -s stop 2>/dev/null || true
  fi
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -KILL "$server" 2>/dev/null || true
  fi
  if dpkg -s sportello >/dev/null 2>&1 || dpkg -l sportello 2>/dev/null | grep -q '^rc'; then
    dpkg --purge sportello >/dev/null 2>&1 || true
  fi
  rm -rf "$work" /var/backups/sportello
}
trap cleanup EXIT

# 1. Build (docs/DEPLOY.md "Building the package"): cargo deb prints the package's path.
if [ -n "${SPORTELLO_DEB:-}" ]; then
  deb="$SPORTELLO_DEB"
else
  # SPORTELLO_DEB_PROFILE=dev packages the test build CI already has (a minute or two
  # instead of a release build from scratch); the default is the documented command.
  profile_args=()
  [ "${SPORTELLO_DEB_PROFILE:-release}" = release ] || profile_args=(--profile "$SPORTELLO_DEB_PROFILE")
  step "cargo deb -p sportello ${profile_args[*]}"
  start=$(date +%s)
  deb="$(cargo deb -p sportello "${profile_args[@]}" | tail -n 1)"
  echo "deb.sh: package built in $(( $(date +%s) - start )) s: $deb"
fi
[ -f "$deb" ] || fail "no package at $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"

# 2. Install (docs/DEPLOY.md "Installing").
step "apt-get install (the recommended OCR and PDF tools), dpkg -i $(basename "$deb")"
apt-get install -y -qq tesseract-ocr tesseract-ocr-ita tesseract-ocr-eng poppler-utils libtiff-tools >/dev/null
dpkg -i "$deb"
command -v sportello >/dev/null || fail "sportello is not on the PATH"
[ "$(command -v sportello)" = /usr/bin/sportello ] || fail "sportello is not /usr/bin/sportello"
getent passwd sportello >/dev/null || fail "no sportello user"
[ "$(getent passwd sportello | cut -d: -f7)" = /usr/sbin/nologin ] || fail "the sportello user has a login shell"
[ "$(stat -c '%U:%G %a' /etc/sportello/sportello.toml)" = "root:sportello 640" ] \
  || fail "/etc/sportello/sportello.toml is $(stat -c '%U:%G %a' /etc/sportello/sportello.toml), not root:sportello 640"
[ "$(stat -c '%U:%G %a' /var/lib/sportello)" = "sportello:sportello 750" ] \
  || fail "/var/lib/sportello is $(stat -c '%U:%G %a' /var/lib/sportello), not sportello:sportello 750"
grep -qx 'data_dir = "/var/lib/sportello"' /etc/sportello/sportello.toml || fail "data_dir is not /var/lib/sportello"
# Secrets are left empty: no uncommented secret key carries a value.
if grep -E '^[[:space:]]*(token|access_token|bot_token|app_secret|verify_token|secret_token|client_secret|subscription_key)[[:space:]]*=' /etc/sportello/sportello.toml; then
  fail "the installed configuration carries a secret"
fi
dpkg-query -W -f='${Conffiles}\n' sportello | grep -q '/etc/default/sportello' || fail "/etc/default/sportello is not a conffile"
# Enabled at install (started too where systemd runs): multi-user.target wants it.
[ -L /etc/systemd/system/multi-user.target.wants/sportello.service ] || fail "the unit was not enabled"

# 3. The unit as installed.
unit="$(dpkg -L sportello | grep -E '/systemd/system/sportello\.service$')" || fail "no sportello.service in the package"
step "systemd-analyze verify $unit"
# verify exits non-zero on errors; warnings it prints are failures here too.
systemd-analyze verify "$unit" 2>&1 | tee "$work/verify.log"
if [ -s "$work/verify.log" ]; then
  fail "systemd-analyze verify reported something for $unit"
fi
step "systemd-analyze security (exposure of the unit, informational)"
systemd-analyze security --offline=true "$unit" 2>/dev/null | tail -n 1 || true

# What systemd would run: the unit's ExecStart, User=, Group=, EnvironmentFile=.
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
exec_start="$(unit_value ExecStart)"
user="$(unit_value User)"
group="$(unit_value Group)"
env_file="$(unit_value EnvironmentFile)"
[ -n "$exec_start" ] && [ "$user" = sportello ] && [ "$group" = sportello ] || fail "unexpected unit: ExecStart=$exec_start User=$user Group=$group"
read -r -a command <<<"$exec_start"
[ -x "${command[0]}" ] || fail "ExecStart names ${command[0]}, not an executable"

# The same configuration check an administrator runs after editing it.
step "runuser -u sportello -- sportello --config /etc/sportello/sportello.toml config check"
runuser -u sportello -- sportello --config /etc/sportello/sportello.toml config check >"$work/config-check.txt" \
  || fail "config check refused the installed configuration"

# 4. Start it as the unit would, on a free loopback port, behind nginx on loopback (the two
# overrides, by environment: `listen` and `trusted_proxies`).
port="$(free_port)"
env_args=()
if [ -f "${env_file#-}" ]; then
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    env_args+=("$line")
  done <"${env_file#-}"
fi
sandbox=()
if /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
  # The unit's SystemCallFilter= and MemoryDenyWriteExecute=, applied as systemd does.
  sandbox=(/usr/bin/python3 "$here/unit_sandbox.py" "$unit" --)
  # Controls: inside it, a call of @resources and W+X memory are refused.
  if setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs -- "${sandbox[@]}" \
      /usr/bin/python3 -c 'import os; os.nice(1)' 2>/dev/null; then
    fail "the sandbox let setpriority (@resources) through"
  fi
  if setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs -- "${sandbox[@]}" \
      /usr/bin/python3 -c 'import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)' 2>/dev/null; then
    fail "the sandbox let a writable and executable mapping through"
  fi
  echo "sandbox controls: setpriority and W+X memory refused"
else
  echo "deb.sh: python3-seccomp is absent: the server runs without the unit's seccomp filter"
fi
step "start: ${sandbox[*]} $exec_start (as $user, listen 127.0.0.1:$port)"
cd /
env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "${env_args[@]}" \
  SPORTELLO_LISTEN="127.0.0.1:$port" SPORTELLO_TRUSTED_PROXIES='["127.0.0.1/32"]' \
  setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- \
  "${sandbox[@]}" "${command[@]}" >"$work/serve.log" 2>&1 &
server=$!
cd "$root"
healthy=""
for _ in $(seq 1 120); do
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$work/serve.log" >&2
    fail "the server exited at start"
  fi
  if [ "$(curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null)" = ok ]; then
    healthy=yes
    break
  fi
  sleep 0.5
done
[ -n "$healthy" ] || { cat "$work/serve.log" >&2; fail "/healthz did not answer ok within 60 s"; }
grep '^unit_sandbox:' "$work/serve.log" || true
echo "GET /healthz: ok"
ready="$(curl -fsS "http://127.0.0.1:$port/readyz")" || fail "/readyz did not answer 200"
[ "$ready" = ready ] || fail "/readyz answered '$ready'"
echo "GET /readyz: ready"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")"
[ "$code" = 200 ] || fail "the portal answered $code"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics")"
[ "$code" = 401 ] || fail "/metrics without a token answered $code, not 401"
# Running as the service user, its database in the data folder, private.
[ "$(ps -o user= -p "$server" | tr -d ' ')" = "$user" ] || fail "the server does not run as $user"
[ -f /var/lib/sportello/sportello.db ] || fail "no database in /var/lib/sportello"
[ "$(stat -c %U /var/lib/sportello/sportello.db)" = "$user" ] || fail "the database is not owned by $user"
# Commands beside the running server, as docs/DEPLOY.md runs them.
step "runuser -u sportello -- sportello --config /etc/sportello/sportello.toml user add anna --role admin"
runuser -u sportello -- sportello --config /etc/sportello/sportello.toml user add anna --role admin --name "Anna Blu" >"$work/user.txt" \
  || fail "user add failed"
token="$(sed -n 's/^token: //p' "$work/user.txt")"
[ -n "$token" ] || fail "user add printed no token"
code="$(curl -s -o "$work/metrics.txt" -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics")"
[ "$code" = 200 ] || fail "/metrics with an admin's token answered $code"
grep -q '^# TYPE' "$work/metrics.txt" || fail "/metrics is not Prometheus text"
echo "GET /metrics (admin token): 200"
# A scanned page (a PDF without text): read by pdftoppm and tesseract, inside the sandbox.
if command -v convert >/dev/null 2>&1 && command -v tiff2pdf >/dev/null 2>&1; then
  step "a scanned document is read (pdftoppm, tesseract) by the sandboxed server"
  convert -size 1600x500 xc:white -font DejaVu-Sans -pointsize 96 -fill black \
    -annotate +60+280 'PERMESSO ZTL 4821' -monochrome -compress Group4 "$work/scan.tif"
  tiff2pdf -o "$work/scan.pdf" "$work/scan.tif"
  ref="$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"case_type":"ztl_permit","subject":"Domanda scansionata","channel":"web","citizen":{"name":"Mario Rossi"}}' \
    "http://127.0.0.1:$port/api/v1/cases" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reference"])')" \
    || fail "creating a case"
  doc="$(curl -fsS -H "Authorization: Bearer $token" -F "file=@$work/scan.pdf;type=application/pdf" \
    "http://127.0.0.1:$port/api/v1/cases/$ref/documents" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')" \
    || fail "uploading a document"
  status=""
  for _ in $(seq 1 120); do
    curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/documents/$doc/text" >"$work/text.json"
    status="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$work/text.json")"
    case "$status" in done|failed|none) break ;; esac
    sleep 0.5
  done
  python3 - "$work/text.json" <<'PY' || { cat "$work/text.json" >&2; fail "the scanned page was not read by OCR"; }
import json, sys
t = json.load(open(sys.argv[1]))
assert t["status"] == "done", t["status"]
text = " ".join(p["text"] for p in t["pages"] if p["method"] == "ocr")
assert "PERMESSO" in text and "4821" in text, text
print(f"OCR read: {text.strip()!r}")
PY
  runuser -u sportello -- sportello --config /etc/sportello/sportello.toml documents verify >/dev/null \
    || fail "documents verify failed"
fi

if command -v nginx >/dev/null 2>&1; then
  # docs/DEPLOY.md "Reverse proxy and TLS": its nginx server blocks, on free loopback ports
  # with a throw-away certificate. The client's address must reach the security log.
  step "nginx with TLS in front (the documentation's configuration)"
  mkdir -p "$work/nginx"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=permessi.comune.example.it \
    -keyout "$work/nginx/key.pem" -out "$work/nginx/cert.pem" 2>/dev/null
  http_port="$(free_port)"
  https_port="$(free_port)"
  python3 - "$root/docs/DEPLOY.md" "$work/nginx" "$port" "$http_port" "$https_port" <<'PY'
import re, sys
doc, folder, port, http_port, https_port = sys.argv[1:]
block = re.search(r"```nginx\n(.*?)```", open(doc, encoding="utf-8").read(), re.S).group(1)
for old, new in [
    ("/etc/letsencrypt/live/permessi.comune.example.it/fullchain.pem", f"{folder}/cert.pem"),
    ("/etc/letsencrypt/live/permessi.comune.example.it/privkey.pem", f"{folder}/key.pem"),
    ("http://127.0.0.1:8080", f"http://127.0.0.1:{port}"),
    ("listen 80;", f"listen 127.0.0.1:{http_port};"),
    ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
]:
    assert old in block, old
    block = block.replace(old, new)
with open(f"{folder}/nginx.conf", "w") as f:
    f.write(f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\nevents {{}}\n"
            f"http {{\naccess_log off;\nclient_body_temp_path {folder}/body;\n"
            f"proxy_temp_path {folder}/proxy;\n{block}}}\n")
PY
  nginx -t -q -c "$work/nginx/nginx.conf" -p "$work/nginx" || fail "nginx refuses the documented configuration"
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" || fail "nginx did not start"
  nginx_running=yes
  [ "$(curl -fsSk --resolve "permessi.comune.example.it:$https_port:127.0.0.1" "https://permessi.comune.example.it:$https_port/healthz")" = ok ] \
    || fail "/healthz through nginx with TLS"
  echo "GET https://…/healthz through nginx: ok"
  code="$(curl -sk -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 203.0.113.7' -H 'Authorization: Bearer not-a-token' \
    "https://127.0.0.1:$https_port/api/v1/cases")"
  [ "$code" = 401 ] || fail "a wrong token through nginx answered $code"
  found=""
  for _ in $(seq 1 20); do
    curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/audit/security" >"$work/security.json" \
      || fail "GET /api/v1/audit/security"
    if python3 - "$work/security.json" <<'PY'
import json, sys
items = json.load(open(sys.argv[1]))["items"]
sys.exit(0 if any(i.get("address") == "203.0.113.7" for i in items) else 1)
PY
    then found=yes; break; fi
    sleep 0.5
  done
  [ -n "$found" ] || { cat "$work/security.json" >&2; fail "the security log does not name the client behind the proxy (trusted_proxies)"; }
  echo "security log: the wrong token came from 203.0.113.7 (X-Forwarded-For through nginx)"
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -s quit
  nginx_running=""
fi

step "backup before an upgrade"
install -d -o sportello -g sportello -m 0700 /var/backups/sportello
runuser -u sportello -- sportello --config /etc/sportello/sportello.toml backup /var/backups/sportello/before-upgrade \
  || fail "backup failed"
[ -f /var/backups/sportello/before-upgrade/MANIFEST.sha256 ] || fail "the backup has no manifest"
(cd /var/backups/sportello/before-upgrade && sha256sum --quiet -c MANIFEST.sha256) || fail "the backup does not match its manifest"
runuser -u sportello -- sportello --config /etc/sportello/sportello.toml register verify || fail "register verify failed"

# 5. Stop it as systemd does (KillSignal=SIGTERM): it must exit 0 within TimeoutStopSec.
step "SIGTERM"
kill -TERM "$server"
for _ in $(seq 1 60); do
  kill -0 "$server" 2>/dev/null || break
  sleep 0.5
done
if kill -0 "$server" 2>/dev/null; then
  fail "the server did not stop within 30 s of SIGTERM"
fi
status=0
wait "$server" || status=$?
server=""
[ "$status" = 0 ] || { cat "$work/serve.log" >&2; fail "the server exited $status after SIGTERM"; }
echo "stopped, exit status 0"

# 6. Upgrade in place (the same package again): the configuration and data are kept.
step "dpkg -i $(basename "$deb") (upgrade)"
conf_sum="$(sha256sum /etc/sportello/sportello.toml)"
dpkg -i "$deb"
[ "$(sha256sum /etc/sportello/sportello.toml)" = "$conf_sum" ] || fail "an upgrade rewrote /etc/sportello/sportello.toml"
runuser -u sportello -- sportello --config /etc/sportello/sportello.toml user list >"$work/users.txt" \
  || fail "user list failed after the upgrade"
grep -q '^anna ' "$work/users.txt" || fail "the user added before the upgrade is gone"
runuser -u sportello -- sportello --config /etc/sportello/sportello.toml register verify || fail "register verify failed after the upgrade"

# 7. Remove: the program goes; configuration, data and user stay.
step "dpkg -r sportello"
dpkg -r sportello
[ ! -e /usr/bin/sportello ] || fail "/usr/bin/sportello is still there after dpkg -r"
[ -f /etc/sportello/sportello.toml ] || fail "dpkg -r removed the configuration"
[ -f /var/lib/sportello/sportello.db ] || fail "dpkg -r removed the data"
getent passwd sportello >/dev/null || fail "dpkg -r removed the user"

# 8. Purge: configuration, data, user and group are gone (backups elsewhere are not touched).
step "dpkg --purge sportello"
dpkg --purge sportello
for path in /etc/sportello /etc/default/sportello /var/lib/sportello "$unit" \
  /etc/systemd/system/multi-user.target.wants/sportello.service; do
  [ ! -e "$path" ] || fail "$path is still there after dpkg --purge"
done
! getent passwd sportello >/dev/null || fail "the sportello user is still there after dpkg --purge"
! getent group sportello >/dev/null || fail "the sportello group is still there after dpkg --purge"
! dpkg -l sportello 2>/dev/null | grep -q '^[ri]' || fail "dpkg still lists sportello"
[ -f /var/backups/sportello/before-upgrade/MANIFEST.sha256 ] || fail "purge removed the backup"
rm -rf /var/backups/sportello
echo
echo "deb: 1 passed, 0 failed"
