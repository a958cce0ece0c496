"""Rules a SuccessPlay keeps (``source="playbook"``) are read-only in the generic rule APIs and the Workflow
admin: writes there are a 409 naming the play's endpoint; reading, testing, executing and runs work; the
play itself still saves its rule (at once, never as a draft)."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.models import Role
from automation.models import Run, Workflow
from playbooks import services as playbooks
from playbooks.models import Playbook
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/admin/automation"
TRIGGERS = "/api/event-triggers"
NOTE = {"type": "create_note", "config": {"body": "Play ran for {{ account.name }}"}}


@pytest.fixture
def play(tenant):
    actor = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user
    return playbooks.playbook_save(playbook=Playbook(tenant=tenant), actor=actor, data={
        "name": "Rescue play", "trigger_type": "manual", "actions": [NOTE], "is_active": True,
        "cooldown_minutes": 0})


def snapshot(rule_id) -> dict:
    return Workflow.objects.values().get(pk=rule_id)


@pytest.mark.parametrize("url", [WORKFLOWS, TRIGGERS])
@pytest.mark.parametrize("method, path, body", [
    ("put", "", {"name": "Hijacked", "trigger_type": "manual"}),
    ("patch", "", {"name": "Hijacked"}),
    ("patch", "", {"status": "paused"}),
    ("delete", "", None),
    ("post", "/publish", None),
    ("delete", "/draft", None),
])
def test_writes_through_the_rule_apis_are_a_409_naming_the_play(api, play, url, method, path, body):
    rule_id = play.workflow_id
    before = snapshot(rule_id)

    response = getattr(api, method)(f"{url}/{rule_id}{path}", body)

    assert response.status_code == 409, response.content
    answer = response.json()
    assert answer["managed_by"] == {"type": "SuccessPlay", "id": play.pk, "name": "Rescue play",
                                    "endpoint": f"/api/playbooks/{play.pk}"}
    assert f"/api/playbooks/{play.pk}" in answer["detail"] and "Rescue play" in answer["detail"]
    assert snapshot(rule_id) == before


def test_reading_testing_executing_and_runs_still_work(api, tenant, play):
    account = AccountFactory(tenant=tenant)
    rule_id = play.workflow_id

    assert api.get(f"{WORKFLOWS}/{rule_id}").json()["source"] == "playbook"
    assert api.get(f"{TRIGGERS}/{rule_id}").status_code == 200
    assert rule_id in [w["id"] for w in api.get(WORKFLOWS).json()["workflows"]]
    assert api.post(f"{WORKFLOWS}/{rule_id}/test", {"account_id": str(account.pk)}).json()["status"] == "success"
    assert api.post(f"{WORKFLOWS}/execute", {"workflow_id": rule_id, "account_id": str(account.pk)}).status_code == 201
    assert api.post(f"{TRIGGERS}/{rule_id}/execute", {"entity_type": "account",
                                                       "entity_id": str(account.pk)}).status_code == 201
    assert len(api.get(f"{WORKFLOWS}/{rule_id}/runs").json()["runs"]) == 2
    assert api.get(f"{TRIGGERS}/{rule_id}/executions").json()["count"] == 2
    assert api.get(f"{TRIGGERS}/{rule_id}/versions").status_code == 200
    assert Run.objects.filter(workflow_id=rule_id).count() == 2


def test_roles_are_checked_before_the_rule_is_found_managed(member_client, tenant, play):
    practitioner = member_client(tenant, Role.PRACTITIONER)
    assert practitioner.patch(f"{WORKFLOWS}/{play.workflow_id}", {"name": "x"}).status_code == 403


def test_the_play_still_saves_its_active_rule_at_once(api, play):
    rule = play.workflow
    assert (rule.status, rule.version) == ("active", 1)

    changed = api.patch(f"/api/playbooks/{play.pk}", {"name": "Renamed play"}, format="json")

    assert changed.status_code == 200, changed.json()
    rule.refresh_from_db()
    assert (rule.name, rule.draft, rule.version) == ("Renamed play", None, 2)


# --- admin ---------------------------------------------------------------------------------------

@pytest.fixture
def admin_client(client, tenant):
    client.force_login(MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN, user__is_staff=True).user)
    return client


def test_the_admin_shows_a_managed_rule_read_only_with_a_link_to_its_play(admin_client, play):
    page = admin_client.get(reverse("admin:automation_workflow_change", args=[play.workflow_id]))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Rescue play" in html and reverse("admin:playbooks_playbook_change", args=[play.pk]) in html
    assert not page.context["has_change_permission"]
    assert not page.context["has_delete_permission"]
    assert 'name="_save"' not in html


def test_the_admin_refuses_to_change_or_delete_a_managed_rule(admin_client, play):
    rule_id = play.workflow_id
    before = snapshot(rule_id)

    changed = admin_client.post(reverse("admin:automation_workflow_change", args=[rule_id]), {"name": "Hijacked"})
    deleted = admin_client.post(reverse("admin:automation_workflow_delete", args=[rule_id]), {"post": "yes"})
    bulk = admin_client.post(reverse("admin:automation_workflow_changelist"), {
        "action": "delete_selected", "_selected_action": [rule_id], "post": "yes"})
    paused = admin_client.post(reverse("admin:automation_workflow_changelist"), {
        "action": "pause", "_selected_action": [rule_id]})

    # delete_selected: a confirmed bulk delete of a rule the user may not delete is refused outright
    assert (changed.status_code, deleted.status_code, bulk.status_code) == (403, 403, 403)
    assert any("managed by SuccessPlay 'Rescue play'" in str(m) for m in get_messages(paused.wsgi_request))
    assert snapshot(rule_id) == before
