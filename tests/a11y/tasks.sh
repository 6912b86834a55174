#!/usr/bin/env bash
# The clerk's day (issue 18): five back-office tasks played in headless Chromium on the demo
# office, counting clicks, typed fields and typed ids; every page reached is audited with
# axe-core at 1280 and 360 px; screenshots in ${CARGO_TARGET_DIR:-target}/screenshots/tasks/.
# Same needs as run.sh (node >= 20 with npm, Chromium; builds the server unless
# SPORTELLO_BIN names one). Exits non-zero when a task fails or a page has a violation.
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run.sh" tasks.mjs
