"""PostgreSQL row-level security: the database enforces tenant isolation a second time.

Every table of a ``TenantOwnedModel`` gets (after each ``migrate``, idempotently, so a new
tenant-owned table cannot be forgotten) ``ENABLE`` + ``FORCE ROW LEVEL SECURITY`` and a
RESTRICTIVE policy (seed 004) keyed on settings of the database session:

* ``app.tenant_ids``: comma-separated tenant ids the code may see (one for API requests and tasks);
* ``app.bypass_rls``: ``on`` only inside ``tenancy.system_context`` (the audited bypass);
* ``app.user_id``: the signed-in user, which also sees its own memberships (``accounts_membership``);
* ``app.rls_sig``: their HMAC, bound to the backend pid (``csplatform.rls_key``). Unsigned or
  mis-signed settings count as "nothing visible", so the application role cannot widen its scope
  from SQL: only code holding the key can, and the key is in the settings, not in the database
  session (the database keeps it in ``csplatform_rls_key``, which only the migrating role reads).

The settings follow the tenancy context variables without any view or task doing it by hand
(``csplatform.tenancy``): an execute wrapper on every PostgreSQL connection compares the wanted
scope with the one last applied on that connection and, when they differ, runs one ``set_config``
before the query. Entering or leaving a tenancy context forgets the applied state, because a
rolled-back transaction also rolls back ``set_config``.

Roles (docs/security.md): ``migrate`` runs as the owner of the tables; the web and worker processes
should connect as ``DATABASE_APP_ROLE``, which gets DML rights after each migrate and no right to
read the key or to alter a table (an owner could switch row-level security off). Neither may be a
SUPERUSER or have BYPASSRLS. SQLite (embedded mode) has no RLS: application-level scoping only.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connections

from .rls_key import pads, signing_key
from .tenancy import TenantOwnedModel

log = logging.getLogger("csplatform.rls")

POLICY = "tenant_isolation"
ALLOW = "tenant_rows"
KEY_TABLE = "csplatform_rls_key"
# Tables that are not tenant-owned models but carry a tenant column, with the extra rows they show.
MEMBERSHIP_TABLE = "accounts_membership"

# The functions are read in scalar sub-selects so PostgreSQL evaluates them once per query (an
# InitPlan), not once per row: on a 300,000-row scan that is 80 ms instead of 210 ms. (The cast
# outside the sub-select keeps ``ANY`` reading an array, not the sub-select's rows.)
SCOPE_SQL = "(SELECT app_rls_bypass()) OR tenant_id = ANY((SELECT app_rls_tenants())::uuid[])"
MEMBERSHIP_SCOPE_SQL = f"{SCOPE_SQL} OR user_id = (SELECT app_rls_user())"

# ``app_rls_signed`` is SECURITY DEFINER (it reads the key table as its owner; anyone may call it, it
# only answers yes or no) with a fixed search path; policies store the functions' oids, so a
# same-named function created later cannot stand in. They are PL/pgSQL, not SQL: a SQL function with a
# SET clause or SECURITY DEFINER is never inlined and PostgreSQL (before 18) plans its body again on
# every query, four plannings per statement here; PL/pgSQL keeps its plans for the session
# (bench/rls_bench.py: about +150 us per point query as SQL, +20 us as PL/pgSQL).
FUNCTIONS_SQL = """
CREATE OR REPLACE FUNCTION {schema}.app_rls_signed() RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN (SELECT coalesce(current_setting('app.rls_sig', true), '') = encode(sha256(k.outer_pad || sha256(
    k.inner_pad || convert_to(pg_backend_pid()::text
      || '|' || coalesce(current_setting('app.tenant_ids', true), '')
      || '|' || coalesce(current_setting('app.bypass_rls', true), '')
      || '|' || coalesce(current_setting('app.user_id', true), ''), 'UTF8'))), 'hex')
    FROM {schema}.{key_table} k WHERE k.id = 1);
END
$$;
CREATE OR REPLACE FUNCTION {schema}.app_rls_bypass() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN current_setting('app.bypass_rls', true) = 'on' AND coalesce({schema}.app_rls_signed(), false);
END
$$;
CREATE OR REPLACE FUNCTION {schema}.app_rls_tenants() RETURNS uuid[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN CASE WHEN coalesce({schema}.app_rls_signed(), false)
    THEN string_to_array(NULLIF(current_setting('app.tenant_ids', true), ''), ',')::uuid[]
    ELSE '{{}}'::uuid[] END;
END
$$;
CREATE OR REPLACE FUNCTION {schema}.app_rls_user() RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN CASE WHEN coalesce({schema}.app_rls_signed(), false)
    THEN NULLIF(current_setting('app.user_id', true), '')::bigint END;
END
$$;
"""


def tenant_owned_tables() -> list[str]:
    from django.apps import apps  # the app registry: every model, once Django is ready

    tables = set()
    for model in apps.get_models():
        if issubclass(model, TenantOwnedModel) and not model._meta.proxy and model._meta.managed:
            tables.add(model._meta.db_table)
    return sorted(tables)


def install_scope_functions(connection) -> None:
    """The key table (only the migrating role may read it), its current key, and the functions."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = connection.ops.quote_name(cursor.fetchone()[0])
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.{KEY_TABLE} (id integer PRIMARY KEY CHECK (id = 1), "
            "inner_pad bytea NOT NULL, outer_pad bytea NOT NULL)"
        )
        cursor.execute(f"REVOKE ALL ON {schema}.{KEY_TABLE} FROM PUBLIC")
        inner, outer = pads(signing_key())
        cursor.execute(
            f"INSERT INTO {schema}.{KEY_TABLE} (id, inner_pad, outer_pad) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET inner_pad = EXCLUDED.inner_pad, outer_pad = EXCLUDED.outer_pad",
            [inner, outer],
        )
        cursor.execute(FUNCTIONS_SQL.format(schema=schema, key_table=KEY_TABLE))


def _protect(cursor, quoted: str, scope_sql: str) -> None:
    cursor.execute(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY")
    cursor.execute(f"ALTER TABLE {quoted} FORCE ROW LEVEL SECURITY")
    cursor.execute(f"DROP POLICY IF EXISTS {ALLOW} ON {quoted}")
    cursor.execute(f"DROP POLICY IF EXISTS {POLICY} ON {quoted}")
    # A restrictive policy only narrows what permissive ones allow, so one permissive "all rows"
    # policy is needed; any permissive policy added later can still not cross tenants.
    cursor.execute(f"CREATE POLICY {ALLOW} ON {quoted} AS PERMISSIVE FOR ALL USING (true)")
    cursor.execute(
        f"CREATE POLICY {POLICY} ON {quoted} AS RESTRICTIVE FOR ALL USING ({scope_sql}) WITH CHECK ({scope_sql})"
    )


def enable_policies(connection) -> list[str]:
    """(Re)create the scope functions and the policies on every tenant-owned table that exists;
    returns the tables done."""
    if connection.vendor != "postgresql":
        return []
    install_scope_functions(connection)
    existing = set(connection.introspection.table_names())
    wanted = {table: SCOPE_SQL for table in tenant_owned_tables()}
    wanted[MEMBERSHIP_TABLE] = MEMBERSHIP_SCOPE_SQL
    done = []
    with connection.cursor() as cursor:
        for table, scope_sql in sorted(wanted.items()):
            if table in existing:
                _protect(cursor, connection.ops.quote_name(table), scope_sql)
                done.append(table)
    grant_app_role(connection)
    return done


def grant_app_role(connection) -> None:
    """Give the runtime role (``DATABASE_APP_ROLE``) what the web and workers need and nothing more:
    DML on the tables and sequences, not the key table, not ownership (an owner can disable RLS)."""
    role = getattr(settings, "DATABASE_APP_ROLE", "")
    if not role:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
        row = cursor.fetchone()
        if row is None:
            log.warning("DATABASE_APP_ROLE %r does not exist: no rights granted (scripts/services.sh creates it)", role)
            return
        if row[0]:
            log.error("DATABASE_APP_ROLE %r is a superuser or bypasses RLS: rights not granted", role)
            return
        cursor.execute("SELECT current_schema()")
        schema = connection.ops.quote_name(cursor.fetchone()[0])
        quoted = connection.ops.quote_name(role)
        cursor.execute(f"GRANT USAGE ON SCHEMA {schema} TO {quoted}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {quoted}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}")
        cursor.execute(f"REVOKE ALL ON {schema}.{KEY_TABLE} FROM {quoted}")


def on_post_migrate(sender, using="default", **kwargs) -> None:
    # post_migrate is sent once per app after all migrations ran; one pass over all tables is enough.
    if sender.name == "csplatform":
        enable_policies(connections[using])
