.PHONY: run test lint requirements screenshots prod-smoke audit

# Start the platform on the embedded defaults (SQLite, no Redis) with the demo tenant loaded.
run:
	scripts/run.sh

# Lint with ruff, then run the whole test suite against PostgreSQL and Redis (started if installed but down).
test:
	scripts/test.sh

# docs/screenshots/home.png and account-360.png: the demo data on a throwaway SQLite database, a development
# server and headless Chromium (installed by bootstrap.sh --browser when missing), as in the browser tests.
screenshots:
	scripts/bootstrap.sh --test --browser
	.venv/bin/python scripts/screenshots.py

# The production topology as processes on this machine (gunicorn, a worker on events/delivery/default, one on
# bulk, beat) on a fresh database: one account change through the API to a signed webhook, then SIGTERM and
# "nothing lost or left in flight" (scripts/prod_smoke.py). RabbitMQ as the broker:
#   CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// make prod-smoke
prod-smoke:
	scripts/bootstrap.sh
	scripts/services.sh
	.venv/bin/python scripts/prod_smoke.py

# Lint only (ruff, configured in pyproject.toml).
lint:
	scripts/bootstrap.sh --test
	.venv/bin/ruff check .

# Re-pin requirements.txt / requirements-test.txt after editing requirements.in / requirements-test.in.
# pip-compile keeps the existing pins of packages still needed; to move one: PIP_COMPILE_ARGS="-P django".
PIP_TOOLS_VENV ?= $(or $(TMPDIR),/tmp)/csplatform-pip-tools
requirements:
	test -x $(PIP_TOOLS_VENV)/bin/pip-compile || \
	  { python3 -m venv $(PIP_TOOLS_VENV) && $(PIP_TOOLS_VENV)/bin/pip install -q pip-tools; }
	CUSTOM_COMPILE_COMMAND="make requirements" $(PIP_TOOLS_VENV)/bin/pip-compile --quiet --strip-extras \
	  --no-emit-find-links --no-emit-index-url $(PIP_COMPILE_ARGS) requirements.in
	CUSTOM_COMPILE_COMMAND="make requirements" $(PIP_TOOLS_VENV)/bin/pip-compile --quiet --strip-extras \
	  --no-emit-find-links --no-emit-index-url $(PIP_COMPILE_ARGS) requirements-test.in

# Known vulnerabilities in the runtime pins (pip-audit against PyPI, own venv under $TMPDIR): fails only when
# one has a fixed version; unfixed ones and network errors are warnings (docs/operations.md "Dependencies").
audit:
	scripts/audit.sh
