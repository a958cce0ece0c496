"""What row-level security adds to one query: the signed scope check (csplatform/rls.py) on a point query.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform .venv/bin/python bench/rls_bench.py

It creates a scratch database next to DATABASE_URL's (``bench_rls_<pid>``, dropped at the end) with the key table,
the platform's scope functions as ``migrate`` installs them (``FUNCTIONS_SQL``) and, for comparison, the same
functions written in SQL (how they were first written), then times a primary-key SELECT on a 10-row table with and
without the policy's expression, each the best of 5 rounds of 4,000 queries over one connection.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings_test")

import django  # noqa: E402

django.setup()

from bench.calibration import calibrate, connect  # noqa: E402
from csplatform.rls import FUNCTIONS_SQL, KEY_TABLE, SCOPE_SQL  # noqa: E402

# The SQL-language version the functions had before: same logic, planned again on every query.
SQL_FUNCTIONS = """
CREATE OR REPLACE FUNCTION {schema}.app_rls_signed() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(current_setting('app.rls_sig', true), '') = encode(sha256(k.outer_pad || sha256(
    k.inner_pad || convert_to(pg_backend_pid()::text
      || '|' || coalesce(current_setting('app.tenant_ids', true), '')
      || '|' || coalesce(current_setting('app.bypass_rls', true), '')
      || '|' || coalesce(current_setting('app.user_id', true), ''), 'UTF8'))), 'hex')
  FROM {schema}.{key_table} k WHERE k.id = 1
$$;
CREATE OR REPLACE FUNCTION {schema}.app_rls_bypass() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT current_setting('app.bypass_rls', true) = 'on' AND coalesce({schema}.app_rls_signed(), false)
$$;
CREATE OR REPLACE FUNCTION {schema}.app_rls_tenants() RETURNS uuid[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN coalesce({schema}.app_rls_signed(), false)
    THEN string_to_array(NULLIF(current_setting('app.tenant_ids', true), ''), ',')::uuid[]
    ELSE '{{}}'::uuid[] END
$$;
"""
TENANT = "11111111-1111-1111-1111-111111111111"


def best_microseconds(conn, sql: str, rounds: int = 5, queries: int = 4000) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(queries):
            conn.execute(sql).fetchall()
        best = min(best, (time.perf_counter() - started) / queries * 1e6)
    return best


def main() -> None:
    calibrate()
    name = f"bench_rls_{os.getpid()}"
    with connect("postgres") as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with connect(name) as conn:
            conn.execute(f"CREATE TABLE {KEY_TABLE} (id integer PRIMARY KEY, inner_pad bytea, outer_pad bytea)")
            conn.execute(f"INSERT INTO {KEY_TABLE} VALUES (1, decode(repeat('36', 64), 'hex'), decode(repeat('5c', 64), 'hex'))")
            conn.execute("CREATE TABLE t (id serial PRIMARY KEY, tenant_id uuid)")
            conn.execute(f"INSERT INTO t (tenant_id) SELECT '{TENANT}' FROM generate_series(1, 10)")
            conn.execute(f"SELECT set_config('app.tenant_ids', '{TENANT}', false), set_config('app.rls_sig', 'x', false)")
            plain = "SELECT id FROM t WHERE id = 3"
            scoped = f"{plain} AND ({SCOPE_SQL})"
            for label, functions in (("SQL functions (before)", SQL_FUNCTIONS), ("PL/pgSQL (csplatform/rls.py)", FUNCTIONS_SQL)):
                conn.execute(functions.format(schema="public", key_table=KEY_TABLE))
                base, with_scope = best_microseconds(conn, plain), best_microseconds(conn, scoped)
                print(f"{label}: point query {base:.0f} us, with the signed scope check {with_scope:.0f} us "
                      f"(+{with_scope - base:.0f} us per query)", flush=True)
    finally:
        with connect("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
