#!/usr/bin/env bash
# Stops the Redmine that tests/redmine/start.sh started with the same LOGDIR.
# Usage: bash tests/redmine/stop.sh LOGDIR
set -euo pipefail
logdir="${1:-/var/tmp/redmine}"
pidfile="$logdir/puma.pid"
[ -f "$pidfile" ] || exit 0
pid="$(cat "$pidfile")"
kill -TERM "$pid" 2>/dev/null || exit 0
for _ in $(seq 1 50); do
  kill -0 "$pid" 2>/dev/null || exit 0
  sleep 0.2
done
kill -KILL "$pid" 2>/dev/null || true
