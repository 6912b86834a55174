#!/usr/bin/env bash
# The clerk's day (issue 18): five back-office tasks played in headless Chromium on the demo
# office, counting clicks, typed fields and typed ids; every page reached is audited with
# axe-core at 1280 and 360 px; screenshots in ${CARGO_TARGET_DIR:-target}/screenshots/tasks/.
# Needs node >= 20 with npm, and Chromium (/usr/bin/chromium, or the path in $CHROMIUM).
# Builds the server first unless SPORTELLO_BIN names one. Exits non-zero when a task fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

browser="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$browser" ]; then
  echo "tasks: no Chromium at $browser (apt-get install chromium, or set CHROMIUM)" >&2
  exit 2
fi
if [ -z "${SPORTELLO_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet -p sportello)
fi
cd "$here"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
exec node tasks.mjs
