#!/usr/bin/env bash
# `sportello import redmine` at scale (issue #17): issues imported per second, with
# attachments, from the real Redmine of tests/redmine/start.sh.
#  1. seed: a project of its own with N issues (one rails runner call: fast), each with
#     a PDF-like attachment of S bytes (different bytes each), two journals (a note and a
#     private note) and a status change; a third of them closed;
#  2. measure: `sportello import redmine` into an empty SQLite data folder (wall time,
#     issues/s, the summary), then a second run (all unchanged);
#  3. with C set, the import's concurrency (default 8).
# Usage: bench/redmine.sh                      (N=1000 S=20000)
#        N=200 bench/redmine.sh                (a quick run)
#        STEP=seed bench/redmine.sh            (seed only; prints the project)
#        IDENT=bench-… bench/redmine.sh        (measure a project seeded before)
#        BIN_DIR=DIR runs the sportello binary in DIR instead of building this tree.
# Needs SPORTELLO_TEST_REDMINE_URL and SPORTELLO_TEST_REDMINE_KEY (eval "$(bash tests/redmine/start.sh)").
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-1000}"
S="${S:-20000}"
C="${C:-8}"
: "${SPORTELLO_TEST_REDMINE_URL:?run: eval \"\$(bash tests/redmine/start.sh)\"}"
: "${SPORTELLO_TEST_REDMINE_KEY:?run: eval \"\$(bash tests/redmine/start.sh)\"}"

STEP="${STEP:-all}"
if [ "$STEP" = seed ]; then
  :
elif [ -n "${BIN_DIR:-}" ]; then
  TARGET="$BIN_DIR"
else
  cargo build --release -q -p sportello --bin sportello
  TARGET="${CARGO_TARGET_DIR:-target}/release"
fi
BIN="${TARGET:-}/sportello"
work="$(mktemp -d /var/tmp/sportello-bench-redmine.XXXXXX)"
trap 'rm -rf "$work"' EXIT

if [ -z "${IDENT:-}" ]; then
  ident="bench-$(date +%s)-$$"
echo "seeding $N issues with an attachment of $S bytes each into project $ident…"
script="$work/seed.rb"
cat >"$script" <<RUBY
admin = User.find_by_login("admin")
tracker = Tracker.find_by(name: "Permesso ZTL") || Tracker.first
p = Project.create!(name: "$ident", identifier: "$ident", tracker_ids: Tracker.pluck(:id))
closed = IssueStatus.where(is_closed: true).first
working = IssueStatus.where(is_closed: false).second || IssueStatus.first
cf = IssueCustomField.find_by(name: "Codice fiscale")
ActiveRecord::Base.transaction do
  $N.times do |i|
    t = Time.utc(2019, 1, 1) + i * 3600
    issue = Issue.new(project: p, tracker: tracker, author: admin, subject: "Richiesta #{i}",
                      description: "Permesso numero #{i}", status: IssueStatus.first)
    issue.custom_field_values = { cf.id.to_s => "RSSMRA80A01H501U" } if cf
    issue.save!
    a = Attachment.new
    a.file = "%PDF-1.4\n#{i}-$ident\n" + Random.new(i).bytes($S)
    a.filename = "allegato-#{i}.pdf"
    a.content_type = "application/pdf"
    a.author = admin
    a.container = issue
    a.save!
    issue.reload
    issue.init_journal(admin, "Documenti verificati #{i}.")
    issue.status = (i % 3 == 0) ? closed : working
    issue.save!
    j = Journal.create!(journalized: issue, user: admin, notes: "Nota riservata #{i}", private_notes: true)
    issue.update_columns(created_on: t, updated_on: t + 86400)
  end
end
puts "seeded #{p.issues.count}"
RUBY
chmod 644 "$script"
chmod 755 "$work"
start=$(date +%s.%N)
su www-data -s /bin/sh -c "cd /usr/share/redmine && RAILS_ENV=production bin/rails runner $script"
echo "seeded in $(echo "$(date +%s.%N) - $start" | bc) s: project $ident"
else
  ident="$IDENT"
fi
[ "$STEP" = seed ] && exit 0

data="$work/data"
mkdir -p "$data"
run() {
  "$BIN" --data "$data" import redmine --url "$SPORTELLO_TEST_REDMINE_URL" --project "$ident" --concurrency "$C" </dev/null
}
export SPORTELLO_REDMINE_KEY="$SPORTELLO_TEST_REDMINE_KEY"
echo "import (concurrency $C)…"
start=$(date +%s.%N)
first="$(run | tail -1)"
secs=$(echo "$(date +%s.%N) - $start" | bc)
echo "first run: $first in $secs s: $(echo "scale=1; $N / $secs" | bc) issues/s"
start=$(date +%s.%N)
second="$(run | tail -1)"
secs2=$(echo "$(date +%s.%N) - $start" | bc)
echo "second run: $second in $secs2 s"
echo "documents: $(du -sb "$data/documents" | cut -f1) bytes; database: $(du -sb "$data/sportello.db" | cut -f1) bytes"
