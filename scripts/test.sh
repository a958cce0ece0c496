#!/usr/bin/env bash
# Lint (ruff, configured in pyproject.toml), then the whole test suite against PostgreSQL (as a
# non-superuser role) and Redis. Extra args go to pytest. A ruff finding fails the run before any
# service starts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
.venv/bin/ruff check .
scripts/services.sh
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://${APP_DB_ROLE:-csplatform}@127.0.0.1:5432/${APP_DB_ROLE:-csplatform}}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
exec .venv/bin/python -m pytest "$@"
