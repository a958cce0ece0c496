"""The journeys' admin: steps counted without a query per row, and journey changes audited."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditLog, Role
from crm.models import CRMPlaybook
from crm.services import crm_journeys_ensure
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, tenant):
    user = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user
    user.is_staff = True
    user.save()
    client.force_login(user)
    client.user = user
    crm_journeys_ensure(tenant)
    return client


def test_it_lists_the_journeys_with_their_step_counts_in_a_fixed_number_of_queries(admin_client):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/crm/crmplaybook/")
    assert response.status_code == 200
    assert b"payment_failed_rescue" in response.content
    assert len(queries) < 30


def test_it_audits_deleting_a_journey(admin_client, tenant):
    journey = CRMPlaybook.objects.for_tenant(tenant).get(name="winback")
    response = admin_client.post(f"/admin/crm/crmplaybook/{journey.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    entry = AuditLog.objects.for_tenant(tenant).get(object_type="crm.crmplaybook", action="delete")
    assert entry.actor == admin_client.user
    assert len(entry.changes["steps"][0]) == 2  # the journey's two steps, as they were
