#!/usr/bin/env bash
# Starts a real Redmine (Debian's packages `redmine`, `redmine-sqlite`, `puma`) on loopback for the
# import tests, and prints the shell lines that point the tests at it:
#   SPORTELLO_TEST_REDMINE_URL, SPORTELLO_TEST_REDMINE_KEY (the admin's API key)
# Usage: eval "$(bash tests/redmine/start.sh PORT LOGDIR)"
# The server it starts writes its pid to LOGDIR/puma.pid (tests/redmine/stop.sh LOGDIR stops it).
# Idempotent: the default data, the REST switch and the custom fields are set once.
set -euo pipefail
port="${1:-3300}"
logdir="${2:-/var/tmp/redmine}"
mkdir -p "$logdir" && chown www-data "$logdir"
# Redmine runs as www-data: it must reach its log folder (CI's work folder is private).
su www-data -s /bin/sh -c "test -w '$logdir'" || chmod o+x "$(dirname "$logdir")"

# Tests seed Redmine while it serves the import: SQLite waits for its lock instead of
# answering 500 "database is locked".
conf=/etc/redmine/default/database.yml
if [ -f "$conf" ] && grep -q 'adapter: sqlite3' "$conf" && ! grep -q '^  timeout:' "$conf"; then
  sed -i 's/^  adapter: sqlite3$/&\n  timeout: 15000/' "$conf"
fi

runner() {
  su www-data -s /bin/sh -c "cd /usr/share/redmine && RAILS_ENV=production bin/rails runner '$1'"
}

# Trackers, statuses, roles and workflows (Debian's package may have loaded them already).
su www-data -s /bin/sh -c 'cd /usr/share/redmine && RAILS_ENV=production REDMINE_LANG=it bin/rake redmine:load_default_data' \
  >"$logdir/setup.log" 2>&1 || grep -q "already" "$logdir/setup.log" || { cat "$logdir/setup.log" >&2; exit 1; }

# REST API on, and the custom fields a permit office keeps (for every project and tracker).
key="$(runner '
Setting.rest_api_enabled = 1
unless Tracker.find_by(name: "Permesso ZTL")
  t = Tracker.new(name: "Permesso ZTL", default_status: IssueStatus.first)
  t.save!
  t.copy_workflow_rules(Tracker.first)
end
[["Codice fiscale", "string"], ["Targa", "string"], ["Categoria", "list"], ["Protocollo", "string"]].each do |name, format|
  f = IssueCustomField.find_by(name: name) || IssueCustomField.new(name: name, field_format: format, is_for_all: true, visible: true)
  f.possible_values = ["residenti", "disabili", "merci", "sanitari"] if format == "list"
  f.trackers = Tracker.all
  f.save!
end
u = User.find_by_login("admin")
u.update_columns(must_change_passwd: false)
puts "KEY=" + u.api_key
' | sed -n 's/^KEY=//p')"
[ -n "$key" ] || { echo "redmine: no admin API key" >&2; exit 1; }

if ! curl -fs "http://127.0.0.1:$port/" -o /dev/null; then
  su www-data -s /bin/sh -c "cd /usr/share/redmine && RAILS_ENV=production nohup puma -e production -b tcp://127.0.0.1:$port -t 4:16 --pidfile $logdir/puma.pid >$logdir/puma.log 2>&1 &"
  for _ in $(seq 1 120); do
    curl -fs "http://127.0.0.1:$port/" -o /dev/null && break
    sleep 0.5
  done
fi
curl -fs -H "X-Redmine-API-Key: $key" "http://127.0.0.1:$port/trackers.json" >/dev/null \
  || { echo "redmine: not answering on port $port" >&2; tail -20 "$logdir/puma.log" >&2; exit 1; }
echo "export SPORTELLO_TEST_REDMINE_URL=http://127.0.0.1:$port"
echo "export SPORTELLO_TEST_REDMINE_KEY=$key"
