"""An object's "History" page in the admin shows its audit trail (who changed what, from what to what), to the
tenant's admins, above Django's log of edits made in the admin; "View site" leads to the admin home."""

import pytest
from django.contrib import admin as django_admin
from django.urls import reverse

from accounts import services
from accounts.models import AuditLog, Membership, Role
from automation.models import Workflow
from automation.services import workflow_save
from tests.factories import MembershipFactory, WorkflowFactory, staff

pytestmark = pytest.mark.django_db


def history(client, name: str, pk):
    response = client.get(reverse(f"admin:{name}_history", args=[pk]))
    assert response.status_code == 200
    return response


def test_it_shows_a_rules_audit_trail_with_its_changes_to_a_tenant_admin(client, tenant):
    admin_user = staff(tenant, Role.TENANT_ADMIN)
    rule = WorkflowFactory(tenant=tenant, name="At risk follow-up", actor=admin_user)
    workflow_save(rule=rule, data={"name": "At-risk follow-up", "cooldown_minutes": 60}, actor=admin_user)
    other = WorkflowFactory(tenant=tenant, name="Unrelated rule", actor=admin_user)
    client.force_login(admin_user)
    response = history(client, "automation_workflow", rule.pk)
    rows = response.context["audit_rows"]
    assert [entry.action for entry, _ in rows] == ["update", "create"]  # newest first
    html = response.content.decode()
    assert 'id="audit-trail"' in html and admin_user.email in html
    assert "At risk follow-up" in html and "At-risk follow-up" in html  # the name's before and after
    assert all(entry.object_id == str(rule.pk) for entry, _ in rows)
    assert "Unrelated rule" not in html and other.pk
    assert "Edits made in this admin" in html  # Django's own log stays below


def test_it_shows_a_memberships_role_changes(client, tenant):
    admin_user = staff(tenant, Role.TENANT_ADMIN)
    membership = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER)
    services.membership_set_role(membership=membership, role=Role.VIEWER, actor=admin_user)
    client.force_login(admin_user)
    response = history(client, "accounts_membership", membership.pk)
    [change] = [changes for entry, changes in response.context["audit_rows"] if entry.action == "update"]
    assert "<td>role</td><td>practitioner</td><td>viewer</td>" in str(change)


def test_it_shows_a_tenants_settings_changes(client, tenant):
    admin_user = staff(tenant, Role.TENANT_ADMIN)
    services.tenant_update_settings(tenant=tenant, changes={"weight_usage": 50}, actor=admin_user)
    client.force_login(admin_user)
    response = history(client, "accounts_tenant", tenant.pk)
    assert any("weight_usage" in (entry.changes or {}) for entry, _ in response.context["audit_rows"])


def test_a_change_saved_in_the_tenant_form_shows_on_its_history(client, tenant):
    admin_user = staff(tenant, Role.TENANT_ADMIN)
    client.force_login(admin_user)
    form = {"weight_usage": "50", "weight_engagement": "20", "weight_support": "15", "weight_adoption": "15",
            "band_healthy": "80", "band_moderate": "60", "band_at_risk": "40"}
    response = client.post(reverse("admin:accounts_tenant_change", args=[tenant.pk]), form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    entry, changes = history(client, "accounts_tenant", tenant.pk).context["audit_rows"][0]  # the newest
    assert (entry.action, entry.actor_email) == ("update", admin_user.email)
    assert "<td>weight_usage</td><td>35.00</td><td>50.00</td>" in str(changes)


def test_it_keeps_the_audit_trail_from_members_who_are_not_tenant_admins(client, tenant):
    rule = WorkflowFactory(tenant=tenant, name="At risk follow-up")
    workflow_save(rule=rule, data={"name": "Renamed"}, actor=None)
    client.force_login(staff(tenant, Role.PRACTITIONER))
    response = history(client, "automation_workflow", rule.pk)
    html = response.content.decode()
    assert response.context["audit_readable"] is False and "audit_rows" not in response.context
    assert "shown to the tenant&#x27;s admins" in html or "shown to the tenant's admins" in html


def test_it_says_when_an_object_has_no_audit_entries(client, tenant):
    admin_user = staff(tenant, Role.TENANT_ADMIN)
    membership = Membership.objects.get(user=admin_user)
    assert not AuditLog.objects.filter(object_type="accounts.membership", object_id=str(membership.pk)).exists()
    client.force_login(admin_user)
    response = history(client, "accounts_membership", membership.pk)
    assert response.context["audit_rows"] == [] and "No audit entries" in response.content.decode()


def test_it_links_to_all_of_an_objects_entries_when_there_are_more_than_a_page(client, tenant):
    admin_user = staff(tenant, Role.TENANT_ADMIN)
    rule = WorkflowFactory(tenant=tenant, name="Rule 0", actor=admin_user)
    for n in range(1, 4):
        workflow_save(rule=rule, data={"name": f"Rule {n}"}, actor=admin_user)
    WorkflowFactory(tenant=tenant, name="Another rule", actor=admin_user)
    client.force_login(admin_user)
    rules_admin = django_admin.site._registry[Workflow]
    rules_admin.audit_page_size = 2  # on the registered instance, for this test only
    try:
        response = history(client, "automation_workflow", rule.pk)
    finally:
        del rules_admin.audit_page_size
    assert len(response.context["audit_rows"]) == 2 and response.context["audit_count"] == 4
    everything = client.get(response.context["audit_all_url"])
    assert everything.status_code == 200
    assert {entry.object_id for entry in everything.context["cl"].result_list} == {str(rule.pk)}
    assert everything.context["cl"].result_count == 4


def test_view_site_leads_to_the_admin_home(client, tenant):
    client.force_login(staff(tenant, Role.VIEWER))
    response = client.get(reverse("admin:index"))
    home = reverse("admin:index")
    assert response.context["site_url"] == home
    assert f'<a href="{home}">View site</a>' in response.content.decode()
