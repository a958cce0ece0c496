"""PostgreSQL row-level security: isolation holds even where the application forgets to filter."""

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from accounts.models import Account, Contact, HealthScore
from csplatform import rls
from csplatform.tenancy import system_context, tenant_context, tenants_context
from tests.factories import AccountFactory, ContactFactory, health_score

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is a PostgreSQL feature"),
]


@pytest.fixture
def two_tenants(tenant, other_tenant):
    mine = AccountFactory(tenant=tenant, name="Mine")
    theirs = AccountFactory(tenant=other_tenant, name="Theirs")
    ContactFactory(account=mine)
    ContactFactory(account=theirs)
    health_score(theirs)
    return mine, theirs


def test_it_connects_as_a_role_that_policies_bind():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)


def test_it_has_a_forced_restrictive_policy_on_every_tenant_owned_table():
    tables = rls.tenant_owned_tables()
    assert "accounts_account" in tables and "accounts_healthscore" in tables
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity AND relname = ANY(%s)", [tables]
        )
        protected = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT tablename FROM pg_policies WHERE policyname = %s AND permissive = 'RESTRICTIVE'", [rls.POLICY]
        )
        with_policy = {row[0] for row in cursor.fetchall()}
    assert set(tables) - protected == set()
    assert set(tables) - with_policy == set()


def test_it_shows_a_raw_queryset_only_the_current_tenants_rows(tenant, two_tenants):
    with tenant_context(tenant):
        assert list(Account.objects.values_list("name", flat=True)) == ["Mine"]
        assert Contact.objects.count() == 1
        assert HealthScore.objects.count() == 0


def test_it_shows_raw_sql_only_the_current_tenants_rows(other_tenant, two_tenants):
    with tenant_context(other_tenant), connection.cursor() as cursor:
        cursor.execute("SELECT name FROM accounts_account")
        assert [row[0] for row in cursor.fetchall()] == ["Theirs"]


def test_it_shows_nothing_without_a_tenant(two_tenants):
    with tenant_context(None):
        assert Account.objects.count() == 0


def test_it_refuses_to_write_a_row_into_another_tenant(tenant, other_tenant, two_tenants):
    with tenant_context(tenant):
        with pytest.raises(DatabaseError), transaction.atomic():
            Account.objects.create(tenant=other_tenant, name="Smuggled")
    with system_context("check"):
        assert not Account.objects.filter(name="Smuggled").exists()


def test_it_cannot_update_another_tenants_rows_even_by_primary_key(tenant, two_tenants):
    _, theirs = two_tenants
    with tenant_context(tenant):
        assert Account.objects.filter(pk=theirs.pk).update(name="Hijacked") == 0
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


def test_it_shows_a_multi_tenant_admin_both_tenants_and_the_system_everything(tenant, other_tenant, two_tenants):
    with tenants_context([tenant.pk, other_tenant.pk]):
        assert Account.objects.count() == 2
    with system_context("test"):
        assert Account.objects.count() == 2


def test_it_restores_the_outer_scope_after_a_nested_one(tenant, other_tenant, two_tenants):
    with tenant_context(tenant):
        with tenant_context(other_tenant):
            assert list(Account.objects.values_list("name", flat=True)) == ["Theirs"]
        assert list(Account.objects.values_list("name", flat=True)) == ["Mine"]


@pytest.mark.urls("tests.csplatform.forgetful_urls")
def test_it_keeps_a_view_that_forgets_the_tenant_filter_inside_its_tenant(member_client, other_tenant, two_tenants):
    response = member_client(other_tenant).get("/forgetful/")
    assert response.status_code == 200
    assert response.json() == ["Theirs"]
