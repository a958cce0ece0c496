#!/usr/bin/env bash
# Embedded mode: SQLite, no Redis, demo data, the web app and the background work in one command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export DJANGO_DEBUG=${DJANGO_DEBUG:-true}
export OUTBOUND_ALLOW_LOOPBACK=${OUTBOUND_ALLOW_LOOPBACK:-true}
unset DATABASE_URL REDIS_URL
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo
echo
echo "Customer Success Platform: http://127.0.0.1:${PORT:-8000}/admin/  (admin@acme.com / password123)"
echo "API: http://127.0.0.1:${PORT:-8000}/api/   docs: http://127.0.0.1:${PORT:-8000}/api/docs/"
# The background work: a tick every 30 s (event sweeper, scheduled and time-based rules, and what the
# other apps registered); celery is eager here, so the tick process runs the tasks itself. Both processes
# run in the background while the script waits, so Ctrl-C or a TERM reaches the traps at once and stops
# them together.
.venv/bin/python manage.py tick --loop --interval "${TICK_INTERVAL:-30}" &
TICK_PID=$!
.venv/bin/python manage.py runserver "0.0.0.0:${PORT:-8000}" &
WEB_PID=$!
trap 'kill "$TICK_PID" "$WEB_PID" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
wait "$WEB_PID"
