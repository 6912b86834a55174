#!/usr/bin/env bash
# IMAP intake throughput of issue #3: `sportello serve` polling one `[[mailbox]]` on a local
# throw-away Dovecot (plain IMAP on 127.0.0.1), SQLite, OCR off (no fax in the mix). The mail
# is the mix of bench/intake.sh (30 % new requests with a 100 KB PDF, replies by reference and
# by In-Reply-To). It is delivered before the server starts by writing the files straight into
# the user's ~/Maildir/new (file names carry increasing timestamps, so Dovecot gives UIDs in
# generation order), then indexed by `doveadm` as a delivery agent would have done; neither
# step is timed. Timed: from starting the server until the mailbox cursor
# (mailbox_state.last_uid) has reached the last UID, i.e. every message is committed, marked
# \Seen and recorded. Needs /usr/sbin/dovecot (apt-get install dovecot-imapd) and python3.
# The server logs at info level (one line per message) unless RUST_LOG says otherwise.
# Usage: N=10000 bench/imap.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-10000}"
TIMEOUT="${TIMEOUT:-1800}"
DOVECOT=/usr/sbin/dovecot
[ -x "$DOVECOT" ] || { echo "Dovecot is missing (apt-get install dovecot-imapd)" >&2; exit 1; }
cargo build --release -q -p sportello --bin sportello
BIN="$(realpath "${CARGO_TARGET_DIR:-target}/release/sportello")"
dir="$(mktemp -d /tmp/sportello-imap-bench.XXXXXX)"
srv="" dov=""
cleanup() {
    set +e
    [ -n "$srv" ] && kill -TERM "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
    [ -n "$dov" ] && kill -TERM "$dov" 2>/dev/null && wait "$dov" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
# Dovecot's unprivileged processes must reach the folder. As root it runs its parts as its
# own users (as in crates/sportello/tests/e2e/dovecot.rs); otherwise as the current one.
chmod 755 "$dir"
mkdir -p "$dir/run" "$dir/state" "$dir/home/protocollo" "$dir/data"
if [ "$(id -u)" = 0 ]; then
    internal=dovecot login=dovenull uid="$(id -u dovecot)" gid="$(id -g dovecot)"
else
    internal="$(id -un)" login="$(id -un)" uid="$(id -u)" gid="$(id -g)"
fi
read -r imap_port http_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

python3 bench/mail_mix.py "$dir/home/protocollo/Maildir" "$N" new
chown -R "$uid:$gid" "$dir/home"
printf 'protocollo:{PLAIN}secret::::::\n' >"$dir/passwd"
cat >"$dir/dovecot.conf" <<EOF
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = $internal
default_login_user = $login
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$dir/home/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
}
service anvil {
  chroot =
}
EOF
echo "machine: $(nproc) cores, $(uname -srm); $N messages, $(du -sh "$dir/home/protocollo/Maildir" | cut -f1)"
# In the foreground as our child (a daemon would inherit this script's output).
"$DOVECOT" -F -c "$dir/dovecot.conf" </dev/null >"$dir/dovecot.out" 2>&1 &
dov=$!
python3 - "$imap_port" <<'PY'
import imaplib, sys, time
deadline = time.time() + 20
while True:
    try:
        c = imaplib.IMAP4("127.0.0.1", int(sys.argv[1])); c.login("protocollo", "secret"); c.logout(); break
    except OSError:
        if time.time() > deadline: sys.exit("Dovecot did not start")
        time.sleep(0.1)
PY
t0=$(date +%s.%N)
doveadm -c "$dir/dovecot.conf" mailbox status -u protocollo 'messages uidnext' INBOX
t1=$(date +%s.%N)
echo "Dovecot indexed the delivery in $(echo "$t1 - $t0" | bc) s (not counted)"

cat >"$dir/sportello.toml" <<EOF
data_dir = "$dir/data"
listen = "127.0.0.1:$http_port"

[[mailbox]]
name = "protocollo"
channel = "email"
imap_url = "imap://protocollo:secret@127.0.0.1:$imap_port/INBOX"
poll_seconds = 1
EOF
echo "server log level: ${RUST_LOG:-default (info, one line per message)}"
t0=$(date +%s.%N)
"$BIN" --config "$dir/sportello.toml" serve </dev/null >"$dir/server.log" 2>&1 &
srv=$!
# One reader polling the database every 0.1 s (read-only: it must not create the file).
python3 - "$dir/data/sportello.db" "$N" "$srv" "$TIMEOUT" <<'PY' || { tail -20 "$dir/server.log" >&2; exit 1; }
import os, sqlite3, sys, time
db, n, pid, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
deadline = time.time() + timeout
while True:
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        row = c.execute("SELECT last_uid FROM mailbox_state WHERE mailbox = 'protocollo'").fetchone()
        c.close()
        if row and row[0] >= n:
            break
    except sqlite3.OperationalError:
        pass  # not created or not migrated yet
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the server stopped")
    if time.time() > deadline:
        sys.exit(f"timed out after {timeout} s")
    time.sleep(0.1)
PY
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc)
ticks=$(getconf CLK_TCK)
cpu=$(awk -v t="$ticks" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$srv/stat")
dcpu=0
for p in $dov $(pgrep -P "$dov" || true); do
    dcpu=$(awk -v t="$ticks" -v s="$dcpu" '{ printf "%.1f", s + ($14 + $15) / t }' "/proc/$p/stat" 2>/dev/null || echo "$dcpu")
done
python3 - "$dir/data/sportello.db" "$N" "$secs" <<'PY'
import sqlite3, sys
db, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
rows = c.execute("SELECT COUNT(*) FROM inbound_messages").fetchone()[0]
print(f"ingested {rows} messages through IMAP in {secs:.2f} s = {n / secs:.0f} messages/s")
for outcome, count in c.execute("SELECT outcome, COUNT(*) FROM inbound_messages GROUP BY outcome ORDER BY outcome"):
    print(f"{count:7} {outcome}")
if rows != n:
    print(f"warning: {n - rows} messages without a row (skipped?)")
PY
echo "CPU time: server ${cpu} s, Dovecot ${dcpu} s (user + system)"
