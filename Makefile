.PHONY: run test

# Start the platform on the embedded defaults (SQLite, no Redis) with the demo tenant loaded.
run:
	scripts/run.sh

# Run the whole test suite against PostgreSQL and Redis (started if installed but down).
test:
	scripts/test.sh
