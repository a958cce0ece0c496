"""The audit trail: the service (diff, masking), the changes it is wired into (memberships, tenant
settings; API and admin), and who may read it (tenant admins only, their own tenant only)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.audit import MASK, audit_diff, audit_record, audit_snapshot, mask_secrets
from accounts.models import AuditLog, Membership, Role
from csplatform.tenancy import tenant_context
from tests.factories import AccountFactory, MembershipFactory, UserFactory, staff

pytestmark = pytest.mark.django_db


def entries(tenant, **filters):
    return list(AuditLog.objects.for_tenant(tenant).filter(**filters).order_by("created_at", "id"))


# --- the service ---------------------------------------------------------------------------------

def test_it_stores_only_the_fields_that_changed(tenant):
    actor = MembershipFactory(tenant=tenant).user
    entry = audit_record(tenant=tenant, actor=actor, action="update", object_type="automation.workflow",
                         object_id=7, object_repr="Renewal alert",
                         before={"name": "Renewal", "enabled": True, "threshold": Decimal("60.50")},
                         after={"name": "Renewal alert", "enabled": True, "threshold": Decimal("60.50")})
    assert entry.changes == {"name": ["Renewal", "Renewal alert"]}
    assert (entry.actor, entry.actor_email, entry.object_id, entry.tenant_id) == (actor, actor.email, "7", tenant.pk)


def test_it_writes_nothing_for_an_update_that_changed_nothing(tenant):
    assert audit_record(tenant=tenant, actor=None, action="update", object_type="x.y", before={"a": 1},
                        after={"a": 1}) is None
    assert not AuditLog.objects.filter(object_type="x.y").exists()


def test_it_records_creation_and_deletion_with_every_value(tenant):
    account = AccountFactory(tenant=tenant, name="Globex")
    created = audit_record(tenant=tenant, actor=None, action="create", obj=account, after=audit_snapshot(account))
    assert created.object_type == "accounts.account" and created.object_id == str(account.pk)
    assert created.object_repr == "Globex"
    assert created.changes["name"] == [None, "Globex"]
    assert created.changes["arr"] == [None, "50000.00"]  # decimals keep their digits
    assert "tenant" not in created.changes and "updated_at" not in created.changes
    deleted = audit_record(tenant=tenant, actor=None, action="delete", obj=account, before=audit_snapshot(account))
    assert deleted.changes["name"] == ["Globex", None]


@pytest.mark.parametrize("key", ["secret", "signing_secret", "api_token", "password", "api_key", "X-Api-Key"])
def test_it_masks_secrets(tenant, key):
    entry = audit_record(tenant=tenant, actor=None, action="update", object_type="automation.webhook",
                         before={key: "old-value", "url": "https://a.test"},
                         after={key: "new-value", "url": "https://b.test"})
    assert entry.changes[key] == [MASK, MASK]
    assert entry.changes["url"] == ["https://a.test", "https://b.test"]
    assert "old-value" not in str(entry.changes) and "new-value" not in str(entry.changes)


def test_it_masks_secrets_nested_in_configuration(tenant):
    before = {"actions": [{"type": "webhook", "config": {"url": "https://a.test", "headers": {"X-Token": "t1"}}}]}
    after = {"actions": [{"type": "webhook", "config": {"url": "https://a.test", "secret": "s2",
                                                        "headers": {"X-Token": "t2"}}}]}
    entry = audit_record(tenant=tenant, actor=None, action="update", object_type="automation.workflow",
                         before=before, after=after)
    old, new = entry.changes["actions"]
    assert old[0]["config"]["headers"] == {"X-Token": MASK}
    assert new[0]["config"] == {"url": "https://a.test", "secret": MASK, "headers": {"X-Token": MASK}}
    assert "t1" not in str(entry.changes) and "s2" not in str(entry.changes)


def test_it_shows_that_a_secret_was_set_or_cleared_but_not_its_value():
    assert audit_diff({"secret": ""}, {"secret": "abc"}) == {"secret": ["", MASK]}
    assert audit_diff({"secret": "abc"}, {"secret": None}) == {"secret": [MASK, None]}
    assert mask_secrets({"a": [{"password": "p"}], "b": 1}) == {"a": [{"password": MASK}], "b": 1}


def test_it_refuses_an_unknown_action_or_an_unnamed_object(tenant):
    with pytest.raises(ValueError):
        audit_record(tenant=tenant, actor=None, action="rename", object_type="x.y")
    with pytest.raises(ValueError):
        audit_record(tenant=tenant, actor=None, action="create")


def test_it_keeps_entries_unchangeable(tenant):
    entry = audit_record(tenant=tenant, actor=None, action="create", object_type="x.y", after={"a": 1})
    entry.object_repr = "tampered"
    with pytest.raises(ValueError):
        entry.save()


# --- memberships and tenant settings -------------------------------------------------------------

def test_it_audits_granting_changing_and_revoking_a_membership(tenant):
    boss = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user
    membership = services.membership_grant(tenant=tenant, email="new@a.test", role=Role.VIEWER, actor=boss)
    services.membership_grant(tenant=tenant, email="new@a.test", role=Role.VIEWER, actor=boss)  # no change
    services.membership_set_role(membership=membership, role=Role.PRACTITIONER, actor=boss)
    services.membership_revoke(membership=membership, actor=boss)

    rows = entries(tenant, object_type="accounts.membership")
    assert [(r.action, r.changes) for r in rows] == [
        ("create", {"user": [None, "new@a.test"], "role": [None, "viewer"]}),
        ("update", {"role": ["viewer", "practitioner"]}),
        ("delete", {"user": ["new@a.test", None], "role": ["practitioner", None]}),
    ]
    assert {r.actor for r in rows} == {boss} and {r.object_id for r in rows} == {str(membership.pk)}


def test_it_audits_a_membership_granted_outside_any_tenant_scope(tenant):
    """Commands (create_tenant) grant memberships without a tenant scope; the entry still lands."""
    with tenant_context(None):
        services.membership_grant(tenant=tenant, email="ops@a.test", role=Role.TENANT_ADMIN)
    (row,) = entries(tenant, object_type="accounts.membership")
    assert row.actor is None and row.action == "create"


def test_it_audits_a_new_tenant():
    tenant = services.tenant_create(slug="globex", name="Globex")
    (row,) = entries(tenant, object_type="accounts.tenant")
    assert row.action == "create" and row.changes["name"] == [None, "Globex"]
    services.tenant_create(slug="globex", name="Globex")  # idempotent: nothing new
    assert len(entries(tenant, object_type="accounts.tenant")) == 1


def test_it_audits_tenant_settings_changed_through_the_api(member_client, tenant):
    client = member_client(tenant, Role.TENANT_ADMIN)
    response = client.patch("/api/tenant/", {"weight_usage": "50", "band_healthy": "85", "name": tenant.name})
    assert response.status_code == 200, response.content

    (row,) = entries(tenant, object_type="accounts.tenant", action="update")
    assert row.actor == client.user and row.object_id == str(tenant.pk)
    assert row.changes == {"weight_usage": ["35.00", "50.00"], "band_healthy": ["80.00", "85.00"]}


def test_it_writes_no_entry_for_a_refused_settings_change(member_client, tenant):
    client = member_client(tenant, Role.TENANT_ADMIN)
    assert client.patch("/api/tenant/", {"band_healthy": "10"}).status_code == 400
    assert client.patch("/api/tenant/", {}).status_code == 200
    assert not entries(tenant, action="update")


# --- the admin -----------------------------------------------------------------------------------

def admin_url(model: str, view: str, *args) -> str:
    return reverse(f"admin:accounts_{model}_{view}", args=args)


def test_it_audits_settings_and_role_changes_made_in_the_admin(client, tenant):
    boss = staff(tenant, Role.TENANT_ADMIN)
    member = MembershipFactory(tenant=tenant, role=Role.VIEWER)
    client.force_login(boss)

    settings = {"weight_usage": "40", "weight_engagement": "20", "weight_support": "20", "weight_adoption": "20",
                "band_healthy": "80", "band_moderate": "60", "band_at_risk": "40"}
    assert client.post(admin_url("tenant", "change", tenant.pk), settings).status_code == 302
    role = client.post(admin_url("membership", "change", member.pk), {"role": Role.PRACTITIONER})
    assert role.status_code == 302
    granted = client.post(admin_url("membership", "add"), {"tenant": tenant.pk, "email": "n@a.test", "role": "viewer"})
    assert granted.status_code == 302
    gone = client.post(admin_url("membership", "delete", member.pk), {"post": "yes"})
    assert gone.status_code == 302 and not Membership.objects.filter(pk=member.pk).exists()

    rows = [(r.object_type, r.action, r.changes) for r in entries(tenant, actor=boss)]
    assert rows == [
        ("accounts.tenant", "update", {"weight_usage": ["35.00", "40.00"], "weight_engagement": ["25.00", "20.00"]}),
        ("accounts.membership", "update", {"role": ["viewer", "practitioner"]}),
        ("accounts.membership", "create", {"user": [None, "n@a.test"], "role": [None, "viewer"]}),
        ("accounts.membership", "delete", {"user": [member.user.email, None], "role": ["practitioner", None]}),
    ]


def test_it_audits_a_tenant_created_by_a_superuser_in_the_admin(client):
    root = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(root)
    response = client.post(admin_url("tenant", "add"), {
        "name": "Globex", "slug": "globex", "timezone": "Europe/Berlin", "weight_usage": "50",
        "weight_engagement": "25", "weight_support": "25", "weight_adoption": "0", "band_healthy": "80",
        "band_moderate": "60", "band_at_risk": "40",
    })
    assert response.status_code == 302
    row = AuditLog.objects.get(object_type="accounts.tenant")
    assert row.actor == root and row.action == "create"
    assert row.changes["timezone"] == [None, "Europe/Berlin"] and row.changes["weight_usage"] == [None, "50.00"]


def test_it_shows_the_audit_log_read_only_to_tenant_admins_only(client, tenant, other_tenant):
    boss = staff(tenant, Role.TENANT_ADMIN)
    services.membership_grant(tenant=tenant, email="seen@a.test", role=Role.VIEWER, actor=boss)
    services.membership_grant(tenant=other_tenant, email="hidden@b.test", role=Role.VIEWER)
    mine = AuditLog.objects.for_tenant(tenant).get(object_repr__contains="seen@a.test")
    theirs = AuditLog.objects.for_tenant(other_tenant).get(object_repr__contains="hidden@b.test")

    client.force_login(boss)
    listed = client.get(admin_url("auditlog", "changelist"))
    assert listed.status_code == 200
    assert b"seen@a.test" in listed.content and b"hidden@b.test" not in listed.content
    page = client.get(admin_url("auditlog", "change", mine.pk))
    assert page.status_code == 200 and b"viewer" in page.content and b'name="_save"' not in page.content
    assert client.get(admin_url("auditlog", "change", theirs.pk)).status_code in (302, 404)
    assert client.get(admin_url("auditlog", "add")).status_code == 403
    assert client.post(admin_url("auditlog", "delete", mine.pk), {"post": "yes"}).status_code in (302, 403)
    assert AuditLog.objects.filter(pk=mine.pk).exists()

    for role in (Role.PRACTITIONER, Role.CONTRIBUTOR, Role.VIEWER):
        client.force_login(staff(tenant, role))
        assert client.get(admin_url("auditlog", "changelist")).status_code == 403, role


# --- the API -------------------------------------------------------------------------------------

@pytest.fixture
def trail(tenant, other_tenant):
    """Entries of two actors on two days in ``tenant``, and one in ``other_tenant``."""
    alice, bob = MembershipFactory(tenant=tenant).user, MembershipFactory(tenant=tenant).user
    AuditLog.objects.all().delete()  # the tenants' own creation entries
    yesterday = timezone.now() - datetime.timedelta(days=1)
    rows = {
        "rule": audit_record(tenant=tenant, actor=alice, action="update", object_type="automation.workflow",
                             object_id=1, object_repr="Renewal", before={"a": 1}, after={"a": 2}),
        "trigger": audit_record(tenant=tenant, actor=bob, action="create", object_type="playbooks.playbooktrigger",
                                object_id=2, object_repr="NPS detractor", after={"enabled": True}),
        "old": audit_record(tenant=tenant, actor=alice, action="delete", object_type="automation.workflow",
                            object_id=3, object_repr="Old rule", before={"a": 1}),
        "foreign": audit_record(tenant=other_tenant, actor=None, action="create", object_type="automation.workflow",
                                object_id=9, object_repr="Someone else's rule", after={"a": 1}),
    }
    AuditLog.objects.filter(pk=rows["old"].pk).update(created_at=yesterday)
    return {"alice": alice, "bob": bob, "yesterday": yesterday.date(), **rows}


def listed(client, query: str = "") -> set[str]:
    response = client.get(f"/api/audit-log/{query}")
    assert response.status_code == 200, response.content
    return {row["object_repr"] for row in response.json()["results"]}


def test_it_lists_the_tenants_audit_log_for_a_tenant_admin(member_client, tenant, trail):
    client = member_client(tenant, Role.TENANT_ADMIN)
    assert listed(client) == {"Renewal", "NPS detractor", "Old rule"}
    row = client.get(f"/api/audit-log/{trail['rule'].pk}/").json()
    assert row == {
        "id": trail["rule"].pk, "created_at": row["created_at"], "actor": trail["alice"].pk,
        "actor_email": trail["alice"].email, "action": "update", "object_type": "automation.workflow",
        "object_id": "1", "object_repr": "Renewal", "changes": {"a": [1, 2]},
    }
    assert client.get(f"/api/audit-log/{trail['foreign'].pk}/").status_code == 404


def test_it_filters_the_audit_log(member_client, tenant, trail):
    client = member_client(tenant, Role.TENANT_ADMIN)
    today, yesterday = timezone.now().date(), trail["yesterday"]
    assert listed(client, "?object_type=automation.workflow") == {"Renewal", "Old rule"}
    assert listed(client, f"?actor={trail['bob'].pk}") == {"NPS detractor"}
    assert listed(client, f"?actor_email={trail['alice'].email.upper()}") == {"Renewal", "Old rule"}
    assert listed(client, "?action=delete") == {"Old rule"}
    assert listed(client, f"?date={yesterday}") == {"Old rule"}
    assert listed(client, f"?date_from={today}") == {"Renewal", "NPS detractor"}
    assert listed(client, f"?date_to={yesterday}") == {"Old rule"}
    assert listed(client, "?object_type=automation.workflow&object_id=1") == {"Renewal"}
    assert client.get("/api/audit-log/?date=not-a-date").status_code == 400


@pytest.mark.parametrize("role", [Role.PRACTITIONER, Role.CONTRIBUTOR, Role.VIEWER])
def test_it_refuses_the_audit_log_to_everyone_but_tenant_admins(member_client, tenant, trail, role):
    client = member_client(tenant, role)
    assert client.get("/api/audit-log/").status_code == 403
    assert client.get(f"/api/audit-log/{trail['rule'].pk}/").status_code == 403


def test_it_keeps_the_audit_log_read_only(member_client, tenant, trail):
    client = member_client(tenant, Role.TENANT_ADMIN)
    url = f"/api/audit-log/{trail['rule'].pk}/"
    # refused before the method is looked at (no role may write), or not offered at all
    assert client.post("/api/audit-log/", {"action": "create", "object_type": "x"}).status_code in (403, 405)
    assert client.patch(url, {"object_repr": "tampered"}).status_code in (403, 405)
    assert client.delete(url).status_code in (403, 405)
    assert AuditLog.objects.get(pk=trail["rule"].pk).object_repr == "Renewal"


def test_it_refuses_the_audit_log_to_anonymous_callers(client):
    assert client.get("/api/audit-log/").status_code == 401


def test_it_does_not_let_a_user_read_another_tenants_log_by_header(member_client, tenant, other_tenant, trail):
    client = member_client(tenant, Role.TENANT_ADMIN)
    assert client.get("/api/audit-log/", HTTP_X_TENANT_ID=str(other_tenant.pk)).status_code == 403


def test_it_reads_the_log_of_the_tenant_named_in_the_header(member_client, tenant, other_tenant, trail):
    client = member_client(tenant, Role.VIEWER)
    Membership.objects.create(user=client.user, tenant=other_tenant, role=Role.TENANT_ADMIN)
    assert client.get("/api/audit-log/").status_code == 403  # viewer in the first tenant
    response = client.get("/api/audit-log/", HTTP_X_TENANT_ID=other_tenant.slug)
    assert {r["object_repr"] for r in response.json()["results"]} == {"Someone else's rule"}


def test_a_deleted_actor_still_shows_by_email(tenant):
    user = get_user_model().objects.create(username="gone@a.test", email="gone@a.test")
    entry = audit_record(tenant=tenant, actor=user, action="create", object_type="x.y", after={"a": 1})
    user.delete()
    entry.refresh_from_db()
    assert entry.actor is None and entry.actor_email == "gone@a.test"
