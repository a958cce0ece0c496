"""Draft versions of active rules (issue 4, point 10): editing an active rule edits a draft, the live version
keeps running until the draft is published, every published definition is a numbered version, and runs
record the version they used. Both rule APIs (seed 001's workflows, seed 003's event triggers)."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.models import AuditLog, Note, Role
from automation import rule_index
from automation.models import Run, Workflow, WorkflowVersion
from automation.services import workflow_discard_draft, workflow_publish, workflow_save
from tests.factories import AccountFactory, MembershipFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/admin/automation"
TRIGGERS = "/api/event-triggers"

# Fires when an account is created, for software companies, and leaves a note saying which version ran.
LIVE_RULE = {
    "name": "New software account", "trigger_type": "account_created", "status": "active",
    "condition_config": [{"field": "industry", "operator": "equals", "value": "Software"}],
    "action_type": "create_note", "action_config": {"body": "v1 for {{ account.name }}"},
}
# The edit: retail companies instead, and another note.
EDIT = {"condition_config": [{"field": "industry", "operator": "equals", "value": "Retail"}],
        "action_config": {"body": "v2 for {{ account.name }}"}}


@pytest.fixture
def api(api):
    """Every edit in this file asks for a draft (``"draft": true``): through the API an edit applies at once
    by default (test_seed_api_edits_apply_at_once below)."""
    patch, put = api.patch, api.put
    api.patch = lambda url, data=None, **kw: patch(url, {"draft": True, **(data or {})}, **kw)
    api.put = lambda url, data=None, **kw: put(url, {"draft": True, **(data or {})}, **kw)
    return api


@pytest.fixture
def live(api):
    created = api.post(WORKFLOWS, LIVE_RULE)
    assert created.status_code == 201, created.json()
    return created.json()


def notes() -> list[str]:
    return sorted(Note.objects.values_list("body", flat=True))


def create_accounts(tenant, capture, *industries):
    with capture(execute=True):
        for industry in industries:
            AccountFactory(tenant=tenant, industry=industry, name=f"{industry} Co")


# --- the engine keeps running the live version ------------------------------------------------------

def test_editing_an_active_rule_leaves_the_old_version_running_until_it_is_published(
        api, tenant, live, django_capture_on_commit_callbacks):
    edited = api.patch(f"{WORKFLOWS}/{live['id']}", EDIT)

    assert edited.status_code == 200, edited.json()
    body = edited.json()
    # The answer is the live rule, plus the draft in the same (seed 001) shape.
    assert body["condition_config"] == live["condition_config"]
    assert body["action_config"] == {"body": "v1 for {{ account.name }}"}
    assert (body["version"], body["has_draft"]) == (1, True)
    assert body["draft"]["action_config"] == {"body": "v2 for {{ account.name }}"}
    assert body["draft"]["condition_config"]["conditions"][0]["value"] == "Retail"
    assert "status" not in body["draft"] and "id" not in body["draft"]

    # A real model change fires the old conditions and actions.
    create_accounts(tenant, django_capture_on_commit_callbacks, "Software", "Retail")
    assert notes() == ["v1 for Software Co"]
    assert Run.objects.get(account__industry="Retail").skip_reason == "conditions_not_met"

    published = api.post(f"{WORKFLOWS}/{live['id']}/publish")
    assert published.status_code == 200, published.json()
    assert (published.json()["version"], published.json()["has_draft"], published.json()["draft"]) == (2, False, None)
    assert published.json()["action_config"] == {"body": "v2 for {{ account.name }}"}

    Note.objects.all().delete()
    create_accounts(tenant, django_capture_on_commit_callbacks, "Software", "Retail")
    assert notes() == ["v2 for Retail Co"]


def test_runs_record_the_version_they_used(api, tenant, live, django_capture_on_commit_callbacks):
    api.patch(f"{WORKFLOWS}/{live['id']}", EDIT)
    create_accounts(tenant, django_capture_on_commit_callbacks, "Software")
    api.post(f"{WORKFLOWS}/{live['id']}/publish")
    create_accounts(tenant, django_capture_on_commit_callbacks, "Retail")

    assert dict(Run.objects.values_list("account__industry", "workflow_version")) == {"Software": 1, "Retail": 2}
    runs = api.get(f"{WORKFLOWS}/{live['id']}/runs").json()["runs"]
    assert sorted(run["workflow_version"] for run in runs) == [1, 2]


def test_the_rule_index_follows_the_live_trigger_only(api, tenant, live):
    assert rule_index.interested(tenant.pk, "model_created", "account")
    drafted = api.patch(f"{WORKFLOWS}/{live['id']}", {"trigger_type": "field_changed",
                                                     "trigger_config": {"field": "industry"}})
    assert drafted.status_code == 200, drafted.json()
    assert rule_index.interested(tenant.pk, "model_created", "account")
    assert not rule_index.interested(tenant.pk, "model_updated", "account")

    assert api.post(f"{WORKFLOWS}/{live['id']}/publish").status_code == 200
    assert rule_index.interested(tenant.pk, "model_updated", "account")
    assert not rule_index.interested(tenant.pk, "model_created", "account")


# --- editing: what is a draft and what applies at once ------------------------------------------------

def test_edits_of_a_rule_with_a_draft_continue_the_draft(api, live):
    api.patch(f"{WORKFLOWS}/{live['id']}", {"name": "Renamed"})
    body = api.patch(f"{WORKFLOWS}/{live['id']}", {"description": "Now with a description"}).json()

    assert (body["name"], body["description"]) == ("New software account", "")
    assert (body["draft"]["name"], body["draft"]["description"]) == ("Renamed", "Now with a description")
    stored = Workflow.objects.get()
    assert stored.draft["name"] == "Renamed" and stored.name == "New software account"


def test_an_edit_back_to_the_live_definition_leaves_no_draft(api, live):
    api.patch(f"{WORKFLOWS}/{live['id']}", {"name": "Renamed"})
    body = api.patch(f"{WORKFLOWS}/{live['id']}", {"name": live["name"]}).json()
    assert (body["has_draft"], body["draft"]) == (False, None)
    # A PUT repeating the live rule as it is changes nothing either (seed 003 clients send the whole body).
    trigger = api.get(f"{TRIGGERS}/{live['id']}").json()
    again = api.put(f"{TRIGGERS}/{live['id']}", {
        key: trigger[key] for key in ("name", "trigger_type", "model_type", "trigger_conditions",
                                      "action_configuration", "is_active")})
    assert again.status_code == 200, again.json()
    assert (again.json()["has_draft"], again.json()["version"]) == (False, 1)


def test_status_changes_apply_at_once_even_with_a_draft_pending(api, tenant, live, django_capture_on_commit_callbacks):
    api.patch(f"{WORKFLOWS}/{live['id']}", EDIT)

    paused = api.patch(f"{TRIGGERS}/{live['id']}", {"is_active": False})
    assert paused.status_code == 200, paused.json()
    assert (paused.json()["status"], paused.json()["is_active"], paused.json()["has_draft"]) == ("paused", False, True)
    create_accounts(tenant, django_capture_on_commit_callbacks, "Software")
    assert notes() == []  # paused: nothing fires

    # Content and a switch in one call: the switch is live at once, the content joins the draft.
    both = api.patch(f"{WORKFLOWS}/{live['id']}", {"status": "active", "name": "Both"}).json()
    assert (both["status"], both["name"], both["draft"]["name"]) == ("active", "New software account", "Both")
    assert both["draft"]["action_config"] == {"body": "v2 for {{ account.name }}"}  # the earlier edit stays
    create_accounts(tenant, django_capture_on_commit_callbacks, "Software")
    assert notes() == ["v1 for Software Co"]


def test_publish_in_the_same_call_applies_the_edit_at_once(api, live):
    body = api.patch(f"{WORKFLOWS}/{live['id']}", {**EDIT, "publish": True}).json()
    assert (body["version"], body["has_draft"]) == (2, False)
    assert body["action_config"] == {"body": "v2 for {{ account.name }}"}
    trigger = api.put(f"{TRIGGERS}/{live['id']}", {"name": "Seed 003 edit", "trigger_type": "account_created",
                                                   "is_active": True, "publish": True}).json()
    assert (trigger["name"], trigger["version"], trigger["draft"]) == ("Seed 003 edit", 3, None)


def test_paused_and_draft_rules_are_edited_in_place_as_a_new_version(api, tenant):
    paused = api.post(WORKFLOWS, {**LIVE_RULE, "status": "paused"}).json()
    body = api.patch(f"{WORKFLOWS}/{paused['id']}", EDIT).json()
    assert (body["has_draft"], body["version"]) == (False, 2)
    assert body["action_config"] == {"body": "v2 for {{ account.name }}"}
    # a switch alone is no new definition
    assert api.patch(f"{WORKFLOWS}/{paused['id']}", {"status": "active"}).json()["version"] == 2


def test_system_callers_without_an_actor_apply_at_once(tenant, live):
    rule = Workflow.objects.get(pk=live["id"])
    workflow_save(rule=rule, data={"name": "By the system"})
    rule.refresh_from_db()
    assert (rule.name, rule.draft, rule.version) == ("By the system", None, 2)


def test_a_pause_saved_from_an_older_copy_of_the_rule_keeps_the_draft(tenant, live):
    actor = MembershipFactory(tenant=tenant).user
    older = Workflow.objects.get(pk=live["id"])  # loaded before someone else drafts an edit
    workflow_save(rule=Workflow.objects.get(pk=live["id"]), data={"name": "Drafted"}, actor=actor)

    workflow_save(rule=older, data={"status": "paused"}, actor=actor)

    rule = Workflow.objects.get(pk=live["id"])
    assert (rule.status, rule.draft["name"], rule.draft_by) == ("paused", "Drafted", actor)


def test_a_retry_of_a_version_since_replaced_starts_from_the_first_action(tenant):
    from datetime import timedelta

    from django.utils import timezone

    from automation import engine

    actor = MembershipFactory(tenant=tenant).user
    account = AccountFactory(tenant=tenant)
    rule = WorkflowFactory(tenant=tenant, name="Flaky", failure_threshold=0, allow_retries=True,
                           retry_configuration={"max_retries": 1, "delay_minutes": 1},
                           actions=[{"type": "create_note", "config": {"body": "v1 note"}},
                                    {"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'nobody@example.com' }}"}}])
    engine.fire(rule, account=account)
    retry = Run.objects.get(status="queued")
    assert (retry.start_position, retry.workflow_version) == (1, 1)
    workflow_save(rule=rule, data={"actions": [{"type": "create_note", "config": {"body": "v2 note"}}]}, actor=actor)
    workflow_publish(rule=rule, actor=actor)

    engine.run_due_runs(tenant.pk, now=timezone.now() + timedelta(minutes=2))

    retry.refresh_from_db()
    assert (retry.status, retry.workflow_version, retry.start_position) == ("success", 2, 0)
    assert notes() == ["v1 note", "v2 note"]


def test_the_draft_is_shown_in_each_apis_own_shape(api, live):
    api.patch(f"{TRIGGERS}/{live['id']}", {
        "trigger_conditions": [{"field": "industry", "operator": "equals", "value": "Retail"}],
        "action_configuration": {"actions": [{"type": "create_task", "title": "Call {{ account.name }}"}]},
        "max_retries": 2})

    trigger = api.get(f"{TRIGGERS}/{live['id']}").json()
    assert trigger["draft"]["action_configuration"]["actions"] == [
        {"type": "create_task", "title": "Call {{ account.name }}"}]
    assert trigger["draft"]["max_retries"] == 2
    assert trigger["draft"]["trigger_conditions"]["conditions"][0]["value"] == "Retail"
    assert "is_active" not in trigger["draft"]
    workflow = api.get(f"{WORKFLOWS}/{live['id']}").json()
    assert workflow["draft"]["action_type"] == "create_task"
    assert workflow["draft"]["retry_configuration"] == {"max_retries": 2}
    listed = api.get(WORKFLOWS).json()["workflows"][0]
    assert listed["has_draft"] is True and listed["draft"]["action_type"] == "create_task"


def test_scope_changes_wait_in_the_draft(api, tenant, live):
    account = AccountFactory(tenant=tenant)
    body = api.patch(f"{WORKFLOWS}/{live['id']}", {"scope_all_accounts": False,
                                                  "scope_accounts": [str(account.pk)]}).json()
    assert (body["scope_all_accounts"], body["scope_accounts"]) == (True, [])
    assert body["draft"]["scope_accounts"] == [str(account.pk)]

    published = api.post(f"{WORKFLOWS}/{live['id']}/publish").json()
    assert (published["scope_all_accounts"], published["scope_accounts"]) == (False, [str(account.pk)])


# --- bad drafts ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, body, field", [
    (WORKFLOWS, {"action_config": {}}, "action_config.body"),
    (WORKFLOWS, {"condition_config": [{"field": "shoe_size", "operator": "equals", "value": 1}]},
     "condition_config[0].field"),
    (WORKFLOWS, {"trigger_type": "on_full_moon"}, "trigger_type"),
    (TRIGGERS, {"trigger_conditions": [{"field": "industry", "operator": "roughly", "value": "x"}]},
     "trigger_conditions[0].operator"),
    (TRIGGERS, {"action_configuration": {"actions": [{"type": "create_task"}]}},
     "action_configuration.actions[0].title"),
])
def test_a_bad_draft_is_a_400_naming_the_field_and_changes_nothing(api, live, url, body, field):
    api.patch(f"{WORKFLOWS}/{live['id']}", {"name": "Pending"})
    before = Workflow.objects.values().get()

    response = api.patch(f"{url}/{live['id']}", body)

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert Workflow.objects.values().get() == before


def test_a_draft_closing_a_trigger_workflow_loop_is_refused(api, tenant, live):
    other = WorkflowFactory(tenant=tenant, name="Chained",
                            actions=[{"type": "trigger_workflow", "config": {"workflow_id": live["id"]}}])
    response = api.patch(f"{WORKFLOWS}/{live['id']}", {"actions": [
        {"type": "trigger_workflow", "workflow_id": other.pk}]})
    assert response.status_code == 400 and "actions" in response.json()
    assert Workflow.objects.get(pk=live["id"]).draft is None


def test_publishing_validates_again_against_the_live_rules(api, tenant, live):
    """Two drafts that each chain to the other are fine alone (the other's live version does not chain
    back); the second to be published would close the loop and is refused."""
    other = api.post(WORKFLOWS, {**LIVE_RULE, "name": "Other"}).json()
    assert api.patch(f"{WORKFLOWS}/{live['id']}", {
        "actions": [{"type": "trigger_workflow", "workflow_id": other["id"]}]}).status_code == 200
    assert api.patch(f"{WORKFLOWS}/{other['id']}", {
        "actions": [{"type": "trigger_workflow", "workflow_id": live["id"]}]}).status_code == 200

    assert api.post(f"{WORKFLOWS}/{live['id']}/publish").status_code == 200
    refused = api.post(f"{WORKFLOWS}/{other['id']}/publish")
    assert refused.status_code == 400 and "actions" in refused.json(), refused.json()
    stored = Workflow.objects.get(pk=other["id"])
    assert (stored.version, stored.draft is not None, stored.actions[0]["type"]) == (1, True, "create_note")


def test_publishing_without_a_draft_is_a_409(api, live):
    response = api.post(f"{TRIGGERS}/{live['id']}/publish")
    assert response.status_code == 409 and "draft" in response.json()  # the rule's state refuses it


# --- discard, versions, audit ---------------------------------------------------------------------------

def test_discarding_drops_the_draft_and_keeps_the_live_rule(api, live):
    api.patch(f"{WORKFLOWS}/{live['id']}", EDIT)
    assert api.delete(f"{TRIGGERS}/{live['id']}/draft").status_code == 204
    body = api.get(f"{WORKFLOWS}/{live['id']}").json()
    assert (body["has_draft"], body["draft"], body["version"]) == (False, None, 1)
    assert body["action_config"] == {"body": "v1 for {{ account.name }}"}
    assert api.delete(f"{WORKFLOWS}/{live['id']}/draft").status_code == 204  # nothing left: still fine


def test_the_versions_endpoint_lists_every_published_definition(api, live):
    api.patch(f"{WORKFLOWS}/{live['id']}", {**EDIT, "publish": True})
    api.patch(f"{WORKFLOWS}/{live['id']}", {"name": "Third"})
    api.post(f"{WORKFLOWS}/{live['id']}/publish")

    page = api.get(f"{WORKFLOWS}/{live['id']}/versions").json()
    assert (page["total"], [v["number"] for v in page["versions"]]) == (3, [3, 2, 1])
    assert [v["live"] for v in page["versions"]] == [True, False, False]
    assert page["versions"][1]["definition"]["action_config"] == {"body": "v2 for {{ account.name }}"}
    assert page["versions"][2]["definition"]["action_config"] == {"body": "v1 for {{ account.name }}"}
    assert page["versions"][0]["published_by_email"] == api.user.email

    triggers = api.get(f"{TRIGGERS}/{live['id']}/versions").json()
    assert [v["number"] for v in triggers["results"]] == [3, 2, 1]
    assert triggers["results"][2]["definition"]["action_configuration"]["actions"] == [
        {"type": "create_note", "body": "v1 for {{ account.name }}"}]
    assert set(WorkflowVersion.objects.values_list("number", flat=True)) == {1, 2, 3}


def test_draft_saves_publishes_and_discards_are_audited(api, live):
    api.patch(f"{WORKFLOWS}/{live['id']}", {"name": "Renamed"})
    api.post(f"{WORKFLOWS}/{live['id']}/publish")
    api.patch(f"{WORKFLOWS}/{live['id']}", {"name": "Again"})
    api.delete(f"{WORKFLOWS}/{live['id']}/draft")

    entries = list(AuditLog.objects.filter(object_type="automation.workflow").order_by("created_at", "id"))
    assert [e.action for e in entries] == ["create", "update", "update", "update", "update"]
    drafted, published, _again, discarded = (e.changes for e in entries[1:])
    assert "name" not in drafted and drafted["draft"][1]["name"] == "Renamed"
    assert published["name"] == ["New software account", "Renamed"] and published["version"] == [1, 2]
    assert discarded["draft"][1] is None
    assert {e.actor for e in entries} == {api.user}


def test_the_services_publish_and_discard(tenant, live):
    actor = MembershipFactory(tenant=tenant).user
    rule = Workflow.objects.get(pk=live["id"])
    workflow_save(rule=rule, data={"name": "Drafted"}, actor=actor)
    assert (rule.name, rule.draft["name"], rule.draft_by) == ("New software account", "Drafted", actor)
    published = workflow_publish(rule=rule, actor=actor)
    assert (published.name, published.version, published.draft) == ("Drafted", 2, None)
    assert WorkflowVersion.objects.get(number=2).published_by == actor
    assert workflow_discard_draft(rule=published, actor=actor).draft is None


# --- tenants and roles ----------------------------------------------------------------------------------

def test_another_tenants_rule_is_a_404(member_client, other_tenant, live):
    Workflow.objects.filter(pk=live["id"]).update(draft={"name": "x"})
    outsider = member_client(other_tenant)
    for url in (WORKFLOWS, TRIGGERS):
        assert outsider.post(f"{url}/{live['id']}/publish").status_code == 404
        assert outsider.delete(f"{url}/{live['id']}/draft").status_code == 404
        assert outsider.get(f"{url}/{live['id']}/versions").status_code == 404
    assert Workflow.objects.get(pk=live["id"]).draft == {"name": "x"}


@pytest.mark.parametrize("role, allowed", [
    (Role.TENANT_ADMIN, True), (Role.PRACTITIONER, False), (Role.CONTRIBUTOR, False), (Role.VIEWER, False)])
def test_only_tenant_admins_edit_publish_and_discard(member_client, tenant, live, role, allowed):
    client = member_client(tenant, role)
    admin = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user

    def draft(name):
        workflow_save(rule=Workflow.objects.get(), data={"name": name}, actor=admin)

    assert client.patch(f"{WORKFLOWS}/{live['id']}", {"name": "Renamed", "draft": True}).status_code == (
        200 if allowed else 403)
    draft("To publish")
    assert client.post(f"{WORKFLOWS}/{live['id']}/publish").status_code == (200 if allowed else 403)
    draft("To discard")
    assert client.delete(f"{TRIGGERS}/{live['id']}/draft").status_code == (204 if allowed else 403)
    assert client.get(f"{TRIGGERS}/{live['id']}/versions").status_code == 200  # every member reads

    stored = Workflow.objects.get()
    if allowed:
        assert (stored.name, stored.version, stored.draft) == ("To publish", 2, None)
    else:
        assert (stored.name, stored.version, stored.draft["name"]) == ("New software account", 1, "To discard")


# --- admin ---------------------------------------------------------------------------------------

def admin_url(view: str, *args) -> str:
    return reverse(f"admin:automation_workflow_{view}", args=args)


def change_form(rule: Workflow, **fields) -> dict:
    """The change form as a browser posts it, from the rule's live values."""
    data = {"name": rule.name, "description": rule.description, "status": rule.status, "enabled": "on",
            "trigger_type": rule.trigger_type, "model_type": rule.model_type,
            "trigger_config": json.dumps(rule.trigger_config), "conditions": json.dumps(rule.conditions),
            "actions": json.dumps(rule.actions), "scope_all_accounts": "on", "rate_limiting": "{}",
            "delay_minutes": "0", "retry_configuration": "{}", "failure_threshold": "10", "cooldown_minutes": ""}
    return {**data, **fields}


@pytest.fixture
def staff_client(client, tenant):
    client.force_login(MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN, user__is_staff=True).user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_editing_an_active_rule_in_the_admin_saves_a_draft(staff_client, live):
    rule = Workflow.objects.get()
    new_actions = [{"type": "create_task", "config": {"title": "Call {{ account.name }}"}}]

    response = staff_client.post(admin_url("change", rule.pk), change_form(
        rule, name="Edited in the admin", actions=json.dumps(new_actions)), follow=True)

    assert response.status_code == 200
    rule.refresh_from_db()
    assert (rule.name, rule.actions[0]["type"], rule.version) == ("New software account", "create_note", 1)
    assert (rule.draft["name"], rule.draft["actions"][0]["type"]) == ("Edited in the admin", "create_task")
    said = " ".join(messages_of(response))
    assert "saved as its draft" in said and "version 1 keeps running" in said and "create_task" in said

    # The change page now edits the draft, and offers to publish or discard it.
    page = staff_client.get(admin_url("change", rule.pk))
    assert page.context["adminform"].form["name"].value() == "Edited in the admin"
    html = page.content.decode()
    assert admin_url("publish", rule.pk) in html and admin_url("discard_draft", rule.pk) in html


def test_the_admin_publishes_and_discards_a_draft(staff_client, live):
    rule = Workflow.objects.get()
    staff_client.post(admin_url("change", rule.pk), change_form(rule, name="Edited"))

    confirm = staff_client.get(admin_url("publish", rule.pk))
    assert confirm.status_code == 200 and "Edited" in confirm.content.decode()
    staff_client.post(admin_url("publish", rule.pk))
    rule.refresh_from_db()
    assert (rule.name, rule.version, rule.draft) == ("Edited", 2, None)

    staff_client.post(admin_url("change", rule.pk), change_form(rule, name="Edited again"))
    staff_client.post(admin_url("discard_draft", rule.pk))
    rule.refresh_from_db()
    assert (rule.name, rule.version, rule.draft) == ("Edited", 2, None)


def test_the_admin_list_shows_versions_and_publishes_drafts_in_bulk(staff_client, api, live):
    second = api.post(WORKFLOWS, {**LIVE_RULE, "name": "Second"}).json()
    for rule_id in (live["id"], second["id"]):
        api.patch(f"{WORKFLOWS}/{rule_id}", {"description": "drafted"})

    listed = staff_client.get(admin_url("changelist"))
    assert "1 + draft" in listed.content.decode()

    staff_client.post(admin_url("changelist"), {"action": "publish_drafts",
                                                "_selected_action": [live["id"], second["id"]]})
    assert set(Workflow.objects.values_list("version", "description")) == {(2, "drafted")}


def test_a_practitioner_cannot_publish_in_the_admin(client, tenant, api, live):
    api.patch(f"{WORKFLOWS}/{live['id']}", {"name": "Pending"})
    client.force_login(MembershipFactory(tenant=tenant, role=Role.PRACTITIONER, user__is_staff=True).user)

    assert client.post(admin_url("publish", live["id"])).status_code == 403
    page = client.get(admin_url("change", live["id"]))
    assert "Pending" in page.content.decode() and admin_url("publish", live["id"]) not in page.content.decode()
    assert Workflow.objects.get().version == 1


# --- the seeds' clients: an edit applies at once ------------------------------------------------------

@pytest.mark.parametrize("url,method,edit", [
    (WORKFLOWS, "put", {**LIVE_RULE, **EDIT}),
    (WORKFLOWS, "patch", EDIT),
    (TRIGGERS, "patch", {"trigger_conditions": [{"field": "industry", "operator": "equals", "value": "Retail"}],
                         "rate_limiting": {"limit": 10, "period": "hour"}}),
])
def test_seed_api_edits_apply_at_once(member_client, tenant, django_capture_on_commit_callbacks, url, method, edit):
    client = member_client(tenant)  # a plain client, as the seeds' code would use
    rule = client.post(WORKFLOWS, LIVE_RULE).json()
    body = getattr(client, method)(f"{url}/{rule['id']}", edit, format="json").json()
    assert (body["has_draft"], body["version"]) == (False, 2)
    create_accounts(tenant, django_capture_on_commit_callbacks, "Retail", "Software")
    assert [n.split(" for ")[1] for n in notes()] == ["Retail Co"]  # the edit runs, the old version does not


def test_a_rule_read_and_sent_back_with_an_edit_applies_it(member_client, tenant):
    client = member_client(tenant)
    rule = client.post(WORKFLOWS, LIVE_RULE).json()
    assert client.get(f"{WORKFLOWS}/{rule['id']}").json()["draft"] is None
    response = client.patch(f"{WORKFLOWS}/{rule['id']}", {"name": "Renamed", "draft": None}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["name"], response.json()["version"]) == ("Renamed", 2)


def test_pausing_a_rule_does_not_publish_its_pending_draft(member_client, tenant):
    client = member_client(tenant)
    rule = client.post(WORKFLOWS, LIVE_RULE).json()
    client.patch(f"{WORKFLOWS}/{rule['id']}", {**EDIT, "draft": True}, format="json")
    paused = client.patch(f"{TRIGGERS}/{rule['id']}", {"is_active": False}, format="json").json()
    assert (paused["status"], paused["version"], paused["has_draft"]) == ("paused", 1, True)
