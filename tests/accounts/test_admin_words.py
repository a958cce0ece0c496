"""The accounts admin's own pages (tenants, the audit log) read as words: weights and bands by what they
weigh, an audit entry titled by what was done to which named object, and by whom."""

import re

import pytest
from django.urls import reverse

from accounts import services
from accounts.models import AuditLog, Role
from tests.factories import WorkflowFactory, staff

pytestmark = pytest.mark.django_db


def title(response) -> str:
    assert response.status_code == 200
    return re.search(r"<title>(.*?)</title>", response.content.decode(), re.S).group(1)


def test_it_labels_the_tenants_weights_and_bands_in_words(client, tenant):
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    form = client.get(reverse("admin:accounts_tenant_change", args=[tenant.pk])).content.decode()
    for label in ("Usage", "Engagement", "Support sentiment", "Adoption", "Healthy from", "Moderate from",
                  "At risk from"):
        assert f">{label}:</label>" in form
    assert "Weight usage" not in form and "Band healthy" not in form
    listing = client.get(reverse("admin:accounts_tenant_changelist")).content.decode()
    assert "35 / 25 / 20 / 20" in listing and "80 / 60 / 40" in listing


def test_it_titles_an_audit_entry_by_what_was_done_to_which_object_and_by_whom(client, tenant):
    admin_user = staff(tenant, Role.TENANT_ADMIN)
    services.tenant_update_settings(tenant=tenant, changes={"weight_usage": 50}, actor=admin_user)
    WorkflowFactory(tenant=tenant, name="At risk follow-up")  # created by the system (no actor)
    client.force_login(admin_user)
    settings_entry = AuditLog.objects.get(object_type="accounts.tenant", action="update")
    rule_entry = AuditLog.objects.get(object_type="automation.workflow", action="create")
    assert title(client.get(reverse("admin:accounts_auditlog_change", args=[settings_entry.pk]))).startswith(
        f"Changed tenant “{tenant.name}” by {admin_user.email}")
    assert title(client.get(reverse("admin:accounts_auditlog_change", args=[rule_entry.pk]))).startswith(
        "Created workflow “At risk follow-up” by the system")
    listing = client.get(reverse("admin:accounts_auditlog_changelist")).content.decode()
    assert "accounts.tenant</td>" not in listing and ">Tenant</td>" in listing
