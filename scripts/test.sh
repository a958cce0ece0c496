#!/usr/bin/env bash
# Lint (ruff, configured in pyproject.toml), then the whole test suite against PostgreSQL (as a
# non-superuser role) and Redis. Extra args go to pytest. A ruff finding fails the run before any
# service starts. The browser tests (tests/browser) need headless Chromium: bootstrap installs it when
# missing and stops here if it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test --browser
.venv/bin/ruff check .
# The Prometheus alert rules (docs/observability.md), when promtool is installed (apt-get install prometheus).
if command -v promtool >/dev/null; then promtool check rules docs/prometheus-alerts.yml >/dev/null; fi
scripts/services.sh
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://${APP_DB_ROLE:-csplatform}@127.0.0.1:5432/${APP_DB_ROLE:-csplatform}}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
exec .venv/bin/python -m pytest "$@"
