"""The database as the last line: the runtime role cannot widen its own row-level-security scope.

The probe (issue 15) ran ``SET app.bypass_rls = 'on'`` and ``SET app.tenant_ids = <another tenant>``
over the application's connection and saw every tenant. These tests connect as the runtime role
(``DATABASE_APP_ROLE``, created by scripts/services.sh, granted DML by ``migrate``) and try the same.
"""

from types import SimpleNamespace

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from accounts.models import Role, Tenant
from csplatform import rls, rls_key
from csplatform.tenancy import system_context
from tests.factories import AccountFactory, MembershipFactory, TenantFactory

pytestmark = [
    pytest.mark.django_db,  # (so the test database is set up; the probe reads the module's committed rows)
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is a PostgreSQL feature"),
]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Committed rows (the probe's own connection cannot see a test's open transaction), made once
    for the module and deleted after it."""
    with django_db_blocker.unblock(), system_context("rls probe set-up"):
        tenant, other_tenant = TenantFactory(), TenantFactory()
        AccountFactory(tenant=tenant, name="Mine")
        AccountFactory(tenant=other_tenant, name="Theirs")
        mine = MembershipFactory(tenant=tenant, role=Role.VIEWER)
        MembershipFactory(tenant=other_tenant, user=mine.user, role=Role.VIEWER)
        MembershipFactory(tenant=other_tenant, role=Role.VIEWER)  # someone else's, in another tenant
        yield SimpleNamespace(tenant=tenant, other_tenant=other_tenant, user_id=mine.user_id)
        Tenant.objects.filter(pk__in=[tenant.pk, other_tenant.pk]).delete()


@pytest.fixture
def tenant(world):
    return world.tenant


@pytest.fixture
def other_tenant(world):
    return world.other_tenant


@pytest.fixture
def rows(world):
    return world


@pytest.fixture
def probe(world):
    """A psycopg connection to the test database as the runtime role, in autocommit."""
    role = settings.DATABASE_APP_ROLE
    assert role, "DATABASE_APP_ROLE must name the runtime role (csplatform/settings_test.py)"
    params = connection.settings_dict
    try:
        conn = psycopg.connect(host=params["HOST"] or "127.0.0.1", port=params["PORT"] or 5432,
                               dbname=params["NAME"], user=role, autocommit=True)
    except psycopg.OperationalError as exc:  # pragma: no cover - a set-up problem, said plainly
        pytest.fail(f"cannot connect as the runtime role {role!r} (run scripts/services.sh): {exc}")
    yield conn
    conn.close()


def names(conn, sql="SELECT name FROM accounts_account ORDER BY name"):
    return [row[0] for row in conn.execute(sql).fetchall()]


def sign_scope(conn, *, pid=None, tenant_ids="", bypass="off", user_id=""):
    pid = pid if pid is not None else conn.info.backend_pid
    conn.execute(
        "SELECT set_config('app.tenant_ids', %s, false), set_config('app.bypass_rls', %s, false),"
        " set_config('app.user_id', %s, false), set_config('app.rls_sig', %s, false)",
        [tenant_ids, bypass, user_id, rls_key.sign(pid, tenant_ids, bypass, user_id)],
    )


def test_the_runtime_role_is_neither_superuser_nor_bypasser_nor_owner(probe):
    assert probe.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone() == (
        False, False)
    owned = probe.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    ).fetchone()[0]
    assert owned == 0


def test_the_runtime_role_sees_nothing_without_a_scope(probe, rows):
    assert names(probe) == []


def test_setting_the_bypass_by_hand_shows_nothing(probe, rows):
    probe.execute("SET app.bypass_rls = 'on'")
    assert names(probe) == []


def test_setting_another_tenants_id_by_hand_shows_nothing(probe, rows, other_tenant):
    probe.execute("SELECT set_config('app.tenant_ids', %s, false)", [str(other_tenant.pk)])
    assert names(probe) == []
    probe.execute("SET app.rls_sig = 'forged'")
    assert names(probe) == []


def test_a_signed_scope_shows_its_tenant_and_only_on_the_backend_it_was_signed_for(probe, rows, tenant):
    sign_scope(probe, tenant_ids=str(tenant.pk))
    assert names(probe) == ["Mine"]
    # The same values signed for another session (a replay of a signature read elsewhere) show nothing.
    sign_scope(probe, pid=probe.info.backend_pid + 1, tenant_ids=str(tenant.pk))
    assert names(probe) == []


def test_a_signed_bypass_shows_every_tenant(probe, rows):
    sign_scope(probe, bypass="on")
    assert names(probe) == ["Mine", "Theirs"]


def test_writing_into_another_tenant_is_refused_even_with_a_hand_set_id(probe, rows, tenant, other_tenant):
    sign_scope(probe, tenant_ids=str(tenant.pk))
    probe.execute("SELECT set_config('app.tenant_ids', %s, false)", [str(other_tenant.pk)])  # signature now stale
    updated = probe.execute("UPDATE accounts_account SET name = 'Hijacked' WHERE tenant_id = %s RETURNING id",
                            [other_tenant.pk]).fetchall()
    assert updated == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # "new row violates row-level security policy"
        probe.execute(
            "INSERT INTO accounts_account (id, tenant_id, name) SELECT gen_random_uuid(), %s, 'Smuggled'",
            [other_tenant.pk])


def test_the_key_is_out_of_the_runtime_roles_reach(probe):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        probe.execute(f"SELECT * FROM {rls.KEY_TABLE}")


def test_the_runtime_role_cannot_switch_row_level_security_off(probe, rows):
    for statement in ("ALTER TABLE accounts_account NO FORCE ROW LEVEL SECURITY",
                      "ALTER TABLE accounts_account DISABLE ROW LEVEL SECURITY",
                      f"DROP POLICY {rls.POLICY} ON accounts_account"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            probe.execute(statement)
    assert names(probe) == []


def test_memberships_show_the_current_tenants_rows_and_the_users_own(probe, world, tenant, other_tenant):
    user_id = world.user_id
    sql = "SELECT tenant_id::text, user_id FROM accounts_membership"
    assert probe.execute(sql).fetchall() == []  # the probe found no policy on this table
    sign_scope(probe, user_id=str(user_id))
    assert sorted(probe.execute(sql).fetchall()) == sorted([(str(tenant.pk), user_id), (str(other_tenant.pk), user_id)])
    sign_scope(probe, tenant_ids=str(other_tenant.pk))
    assert len(probe.execute(sql).fetchall()) == 2  # the other tenant's two members
    probe.execute("SET app.bypass_rls = 'on'")
    assert probe.execute(sql).fetchall() == []
