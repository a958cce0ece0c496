.PHONY: run test lint requirements

# Start the platform on the embedded defaults (SQLite, no Redis) with the demo tenant loaded.
run:
	scripts/run.sh

# Lint with ruff, then run the whole test suite against PostgreSQL and Redis (started if installed but down).
test:
	scripts/test.sh

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
