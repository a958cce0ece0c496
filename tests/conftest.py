import pytest
from rest_framework.test import APIClient

from accounts.models import Role

from .factories import MembershipFactory, TenantFactory, token_for


@pytest.fixture
def tenant(db):
    return TenantFactory()


@pytest.fixture
def other_tenant(db):
    return TenantFactory()


@pytest.fixture
def member_client(db):
    """``member_client(tenant, role)`` -> an APIClient authenticated by token as a new member of ``tenant``."""

    def make(tenant, role=Role.TENANT_ADMIN):
        membership = MembershipFactory(tenant=tenant, role=role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(membership.user)}")
        client.user = membership.user
        return client

    return make


@pytest.fixture
def api(member_client, tenant):
    """A tenant admin's client for ``tenant``."""
    return member_client(tenant, Role.TENANT_ADMIN)


@pytest.fixture(autouse=True)
def _setup_sees_every_tenant():
    """Test set-up writes rows of several tenants, so it runs in the system context (row-level security
    bypassed); each request made by a test client runs in its own, closed, tenant scope."""
    from django.core.cache import cache

    from csplatform.tenancy import system_context

    cache.clear()  # cached rule indexes must not outlive the test's rolled-back rules
    with system_context("test set-up"):
        yield
