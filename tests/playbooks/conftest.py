import datetime

import pytest
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.demo import demo_seed
from accounts.models import Account, Membership, Role
from tests.factories import MembershipFactory, token_for


@pytest.fixture
def demo(db):
    """seed_demo's Acme Corporation tenant."""
    return demo_seed()


@pytest.fixture
def demo_accounts(demo):
    return {a.name: a for a in Account.objects.for_tenant(demo)}


@pytest.fixture
def client_for(db):
    """``client_for(tenant, role)``: a token client of a new member, naming the tenant with X-Customer-ID."""

    def make(tenant, role=Role.TENANT_ADMIN, header="HTTP_X_CUSTOMER_ID"):
        membership = MembershipFactory(tenant=tenant, role=role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(membership.user)}", **{header: str(tenant.pk)})
        client.user = membership.user
        return client

    return make


@pytest.fixture
def demo_admin(demo):
    """admin@acme.com, the demo's tenant admin, as seed 000's clients call: token + X-Customer-ID."""
    user = Membership.objects.get(tenant=demo, user__email="admin@acme.com").user
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_X_CUSTOMER_ID=str(demo.pk))
    client.user = user
    return client


def record_score(account, overall: float, days_ago: float = 0):
    """A health score whose overall value is ``overall`` (all four components equal), ``days_ago`` old."""
    components = dict.fromkeys(("usage_score", "engagement_score", "support_sentiment_score", "adoption_score"),
                               overall)
    return account_services.health_score_record(
        account=account, components=components,
        calculated_at=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago))
