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
exec .venv/bin/python manage.py runserver "0.0.0.0:${PORT:-8000}"
