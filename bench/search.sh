#!/usr/bin/env bash
# Search and document-text indexing of issue #4: builds CASES cases and DOCS documents with
# OCR-like text through the store's API, times finish_text_job, then runs a mix of searches
# for SEARCH_SECS seconds (crates/store/benches/search.rs has every knob).
#
#   bench/search.sh                         # SQLite, 100,000 cases, 300,000 documents
#   CASES=10000 DOCS=30000 bench/search.sh  # a quicker look
#   PG=postgres://postgres@127.0.0.1:55433/postgres bench/search.sh   # PostgreSQL too
#
# SEARCH_DB_URL=sqlite:///tmp/x.db keeps the database: a second run only searches it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CASES="${CASES:-100000}" DOCS="${DOCS:-300000}"
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -srm); $(uptime)"
run() {
    cargo bench -q -p sportello-store --features testing --bench search
}
echo "== SQLite"
SPORTELLO_TEST_DATABASE_URL= run
if [[ -n "${PG:-}" ]]; then
    echo "== PostgreSQL ($PG)"
    SPORTELLO_TEST_DATABASE_URL="$PG" run
fi
echo "load after: $(uptime)"
