#!/usr/bin/env bash
# Accessibility tests of the web pages: axe-core (WCAG 2.0/2.1 A and AA) on every portal
# and back-office page in headless Chromium, keyboard-only use of the application form,
# reflow at 320 px, full-page screenshots in ${CARGO_TARGET_DIR:-target}/screenshots/.
# Needs node >= 20 with npm, and Chromium (/usr/bin/chromium, or the path in $CHROMIUM).
# Builds the server first unless SPORTELLO_BIN names one. Exits non-zero on any violation.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

browser="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$browser" ]; then
  echo "a11y: no Chromium at $browser (apt-get install chromium, or set CHROMIUM)" >&2
  exit 2
fi
if [ -z "${SPORTELLO_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet -p sportello)
fi
cd "$here"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
# tasks.sh runs tasks.mjs the same way.
exec node "${1:-run.mjs}"
