"""The rule APIs: seed 001's /api/admin/automation and seed 003's /api/event-triggers are two views of one
rule; /test is a dry run; /execute and inbound webhooks run rules; runs, stats, roles and tenant isolation."""

from __future__ import annotations

import datetime

import warnings

import pytest
from django.core.cache.backends.base import CacheKeyWarning
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import Account, Note, Role, Tag, Task
from automation.models import Event, Run, RunStep, Workflow
from tests.factories import (
    AccountFactory, ContactFactory, EmailTemplateFactory, MembershipFactory, RunFactory, WorkflowFactory,
)

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/admin/automation"
TRIGGERS = "/api/event-triggers"

# Seed 001's example body, as written in its API reference.
SEED_001_BODY = {
    "name": "Onboarding Sequence",
    "description": "Welcome new customers",
    "trigger_type": "account_created",
    "trigger_config": {"status": "onboarding"},  # a journey stage: a new account starts in the first one
    "condition_config": {"account_filter": {"size": ["small", "medium"]}},
    "action_type": "send_email",
    "action_config": {"template_id": "welcome_template", "delay": "1h"},
}

# Seed 003's shape: PHP model class, list conditions with logic/group, flat actions.
SEED_003_BODY = {
    "name": "New Contact Welcome",
    "description": "Follow up with champions at software companies",
    "trigger_type": "model_created",
    "model_type": "App\\Models\\Contact",
    "trigger_conditions": [
        {"field": "role", "operator": "equals", "value": "Champion"},
        {"logic": "AND"},
        {"group": [{"field": "company.industry", "operator": "equals", "value": "Software"},
                   {"logic": "OR"},
                   {"field": "company.arr", "operator": "greater_than", "value": 100000}]},
    ],
    "action_configuration": {"actions": [
        {"type": "create_task", "title": "Follow up with {{ entity.name }}", "due_days": 1, "assigned_to": "auto"},
    ]},
    "rate_limiting": {"limit": 10, "period": "hour", "burst_limit": 3, "reset_strategy": "sliding"},
    "allow_retries": True,
    "max_retries": 3,
    "retry_configuration": {"delay_minutes": 15, "backoff_multiplier": 2, "max_delay_hours": 24},
    "delay_minutes": 0,
    "debug_mode": True,
    "is_active": True,
}


@pytest.fixture
def welcome_template(tenant):
    """The template seed 001's example names (ids and names of templates are the one thing mapped)."""
    return EmailTemplateFactory(tenant=tenant, name="welcome_template")


def note_rule(tenant, **data) -> Workflow:
    note = {"type": "create_note", "config": {"body": "ran for {{ account.name }}"}}
    return WorkflowFactory(tenant=tenant, actions=[note], **data)


def counts() -> dict:
    return {model.__name__: model.objects.count() for model in (Run, RunStep, Event, Task, Note, Tag, Workflow)}


# --- one rule, two shapes ---------------------------------------------------------------------------------

def test_it_creates_a_workflow_in_seed_001_shape_and_reads_it_as_an_event_trigger(api, welcome_template):
    created = api.post(WORKFLOWS, SEED_001_BODY)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["status"], body["enabled"], body["action_type"]) == ("draft", True, "send_email")
    assert body["action_config"] == {"template_id": "welcome_template", "delay": "1h"}
    assert body["actions"] == [{"type": "send_email", "config": {"template_id": "welcome_template", "delay": "1h"}}]
    # seed 001's typed condition is compiled to the one condition language (small/medium are smb/mid_market)
    assert body["condition_config"] == {"op": "all", "conditions": [
        {"field": "size", "operator": "in", "value": ["smb", "mid_market"]}]}

    seen = api.get(f"{TRIGGERS}/{body['id']}")
    assert seen.status_code == 200
    trigger = seen.json()
    assert (trigger["trigger_type"], trigger["model_type"], trigger["is_active"]) == (
        "account_created", "account", False)
    assert trigger["trigger_conditions"] == body["condition_config"]
    assert trigger["action_configuration"]["actions"] == [
        {"type": "send_email", "template_id": "welcome_template", "delay": "1h"}]
    assert Workflow.objects.get().source == "workflow"


def test_it_creates_an_event_trigger_in_seed_003_shape_and_reads_it_as_a_workflow(api):
    created = api.post(TRIGGERS, SEED_003_BODY)
    assert created.status_code == 201, created.json()
    trigger = created.json()
    assert (trigger["is_active"], trigger["model_type"], trigger["max_retries"]) == (True, "contact", 3)
    assert trigger["retry_configuration"] == {"max_retries": 3, "delay_minutes": 15, "backoff_multiplier": 2.0,
                                              "max_delay_hours": 24.0}
    assert trigger["action_configuration"]["actions"] == [
        {"type": "create_task", "title": "Follow up with {{ entity.name }}", "due_days": 1, "assignee": "auto"}]

    listed = api.get(WORKFLOWS).json()["workflows"]
    assert [w["id"] for w in listed] == [trigger["id"]]
    workflow = api.get(f"{WORKFLOWS}/{trigger['id']}").json()
    assert (workflow["status"], workflow["enabled"], workflow["trigger_type"]) == ("active", True, "model_created")
    assert workflow["action_type"] == "create_task"
    assert workflow["actions"][0]["config"]["title"] == "Follow up with {{ entity.name }}"
    # A AND (B OR C): seed 003's separators and group, normalised
    assert workflow["condition_config"] == {"op": "all", "conditions": [
        {"field": "role", "operator": "equals", "value": "Champion"},
        {"op": "any", "conditions": [{"field": "company.industry", "operator": "equals", "value": "Software"},
                                     {"field": "company.arr", "operator": "greater_than", "value": 100000}]}]}
    stored = Workflow.objects.get()
    assert (stored.allow_retries, stored.delay_minutes, stored.debug_mode, stored.source) == (
        True, 0, True, "event_trigger")


def test_it_pauses_through_one_api_and_shows_it_through_the_other(api, tenant):
    trigger = api.post(TRIGGERS, SEED_003_BODY).json()
    assert api.patch(f"{TRIGGERS}/{trigger['id']}", {"is_active": False}).status_code == 200
    assert api.get(f"{WORKFLOWS}/{trigger['id']}").json()["status"] == "paused"
    assert api.patch(f"{WORKFLOWS}/{trigger['id']}", {"status": "active"}).json()["status"] == "active"
    assert api.get(f"{TRIGGERS}/{trigger['id']}").json()["is_active"] is True


def test_it_replaces_the_single_action_of_a_workflow_with_put(api, welcome_template):
    workflow = api.post(WORKFLOWS, SEED_001_BODY).json()
    put = api.put(f"{WORKFLOWS}/{workflow['id']}", {
        "name": "Onboarding note", "trigger_type": "account_created", "status": "active",
        "action_type": "create_note", "action_config": {"body": "Welcome {{ account.name }}"}})
    assert put.status_code == 200, put.json()
    assert put.json()["actions"] == [{"type": "create_note", "config": {"body": "Welcome {{ account.name }}"}}]
    # The PUT made it active: an edit asked to be a draft is one, and runs keep the live action until published.
    patched = api.patch(f"{WORKFLOWS}/{workflow['id']}", {"action_config": {"body": "Hello"}, "draft": True})
    assert patched.json()["actions"] == put.json()["actions"]
    assert patched.json()["draft"]["actions"] == [{"type": "create_note", "config": {"body": "Hello"}}]
    published = api.post(f"{WORKFLOWS}/{workflow['id']}/publish")
    assert published.json()["actions"] == [{"type": "create_note", "config": {"body": "Hello"}}]


def test_it_deletes_a_rule(api, tenant):
    workflow = note_rule(tenant)
    assert api.delete(f"{WORKFLOWS}/{workflow.pk}").status_code == 204
    assert not Workflow.objects.exists()


# --- end to end -----------------------------------------------------------------------------------------

def test_it_fires_a_rule_created_through_the_api_from_a_real_model_change(
        api, tenant, django_capture_on_commit_callbacks):
    owner = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user
    software = AccountFactory(tenant=tenant, industry="Software", owner=owner)
    retail = AccountFactory(tenant=tenant, industry="Retail", arr=5000)
    assert api.post(TRIGGERS, SEED_003_BODY).status_code == 201

    with django_capture_on_commit_callbacks(execute=True):
        ContactFactory(account=software, name="Ada Lovelace", role="Champion")
        ContactFactory(account=retail, name="Bob Retail", role="Champion")  # conditions not met

    task = Task.objects.get()
    assert (task.title, task.account, task.assignee) == ("Follow up with Ada Lovelace", software, owner)
    runs = dict(Run.objects.values_list("account__industry", "skip_reason"))
    assert runs == {"Software": "", "Retail": "conditions_not_met"}
    assert Run.objects.get(account=retail).trace  # debug_mode keeps the condition trace


# --- test: a dry run -------------------------------------------------------------------------------------

def test_it_tests_a_rule_and_reports_what_it_would_do_without_writing_anything(api, tenant):
    account = AccountFactory(tenant=tenant, industry="Software", name="GlobalTech")
    workflow = WorkflowFactory(
        tenant=tenant, status="draft", conditions={"account_filter": {"industry": ["Software"]}},
        actions=[{"type": "create_task", "config": {"title": "Call {{ account.name }}"}},
                 {"type": "add_tag", "config": {"tag": "tested"}},
                 {"type": "change_status", "config": {"new_status": "at_risk", "reason": "test"}}])
    before = counts()

    response = api.post(f"{WORKFLOWS}/{workflow.pk}/test", {"account_id": str(account.pk)})

    assert response.status_code == 200, response.json()
    result = response.json()
    assert result["dry_run"] is True and result["status"] == "success"
    assert [(a["type"], a["status"]) for a in result["actions"]] == [
        ("create_task", "success"), ("add_tag", "success"), ("change_status", "success")]
    assert result["actions"][2]["output"] == {"from_status": "active", "to_status": "at_risk"}
    assert result["conditions"] == {"passed": True, "trace": [
        {"field": "industry", "operator": "in", "expected": ["Software"], "actual": "Software", "passed": True}]}
    assert result["would_fire"] is False  # a draft does not fire on its own
    assert counts() == before
    account.refresh_from_db()
    workflow.refresh_from_db()
    assert (account.status, account.tags.count(), workflow.debug_mode) == ("active", 0, False)


def test_it_tests_against_the_first_account_and_checks_the_trigger_on_a_sample_event(api, tenant):
    AccountFactory(tenant=tenant, industry="Retail")
    workflow = note_rule(tenant, trigger_type="field_changed", model_type="account", trigger_config={"field": "status"},
                         conditions=[{"field": "status", "operator": "changed_to", "value": "at_risk"}])
    sample = {"type": "model_updated", "changes": {"status": {"old": "active", "new": "at_risk"}}}
    before = counts()

    matched = api.post(f"{WORKFLOWS}/{workflow.pk}/test", {"event": sample}).json()
    unmatched = api.post(f"{WORKFLOWS}/{workflow.pk}/test", {"event": {**sample, "type": "model_created"}}).json()
    no_change = api.post(f"{WORKFLOWS}/{workflow.pk}/test", {}).json()

    assert matched["trigger"] == {"type": "field_changed", "checked": True, "matched": True}
    assert (matched["status"], matched["would_fire"]) == ("success", True)
    assert (unmatched["trigger"]["matched"], unmatched["would_fire"]) == (False, False)
    assert (no_change["trigger"]["checked"], no_change["skip_reason"]) == (False, "conditions_not_met")
    assert no_change["conditions"]["trace"][0]["passed"] is False
    assert counts() == before


def test_it_tests_a_webhook_rule_on_a_sample_body(api, tenant):
    account = AccountFactory(tenant=tenant)
    hook = webhook_rule(tenant)
    before = counts()
    hot = api.post(f"{WORKFLOWS}/{hook.pk}/test", {"payload": {"score": 95, "source": "marketing_automation",
                                                               "email": "a@b.test", "account_id": str(account.pk)}})
    hot = hot.json()
    cold = api.post(f"{WORKFLOWS}/{hook.pk}/test", {"payload": {"score": 20}}).json()
    assert (hot["status"], hot["subject"]["model"], hot["account_id"]) == ("success", "webhook", str(account.pk))
    assert hot["actions"][0]["output"]["note_id"]
    assert (cold["skip_reason"], [t["passed"] for t in cold["conditions"]["trace"]]) == (
        "conditions_not_met", [False, False])
    assert counts() == before


def test_it_backtests_a_rule_over_the_stored_events(api, tenant, django_capture_on_commit_callbacks):
    software = AccountFactory(tenant=tenant, industry="Software", name="GlobalTech")
    retail = AccountFactory(tenant=tenant, industry="Retail")
    # a live rule listening to account updates is what makes those events stored at all
    note_rule(tenant, name="listener", trigger_type="model_updated", model_type="account")
    with django_capture_on_commit_callbacks(execute=True):
        for account, status in ((software, "at_risk"), (retail, "at_risk"), (software, "active")):
            account_services.account_save(account=account, changes={"status": status})
    candidate = note_rule(tenant, status="draft", trigger_type="field_changed", model_type="account",
                          trigger_config={"field": "status", "to": "at_risk"},
                          conditions=[{"field": "industry", "operator": "equals", "value": "Software"}])
    before = counts()

    result = api.post(f"{WORKFLOWS}/{candidate.pk}/test", {"backtest_days": 7}).json()["backtest"]

    assert (result["events_scanned"], result["trigger_matched"], result["would_run"]) == (3, 2, 1)
    assert result["accounts"] == [{"id": str(software.pk), "name": "GlobalTech", "runs": 1}]
    assert counts() == before
    manual = api.post(f"{WORKFLOWS}/{note_rule(tenant).pk}/test", {"backtest_days": 7})
    assert manual.status_code == 400 and "backtest_days" in manual.json()


# --- execute ---------------------------------------------------------------------------------------------

def test_it_executes_a_workflow_now_and_returns_the_run(api, tenant):
    account = AccountFactory(tenant=tenant, name="TechStart")
    workflow = note_rule(tenant, status="paused")  # by hand, a paused rule runs too

    response = api.post(f"{WORKFLOWS}/execute", {"workflow_id": workflow.pk, "account_id": str(account.pk),
                                                 "context": {"reason": "QBR"}})

    assert response.status_code == 201, response.json()
    run = response.json()
    assert (run["status"], run["manual"], run["account"], run["workflow"]) == (
        "success", True, str(account.pk), workflow.pk)
    assert [(s["action_type"], s["status"]) for s in run["steps"]] == [("create_note", "success")]
    assert Run.objects.get().pk == run["id"]
    assert Note.objects.get().body == "ran for TechStart"


def test_it_executes_an_event_trigger_for_an_entity(api, tenant):
    contact = ContactFactory(account=AccountFactory(tenant=tenant), role="Champion", name="Grace")
    trigger = WorkflowFactory(tenant=tenant, trigger_type="model_created", model_type="contact",
                              conditions=[{"field": "role", "operator": "equals", "value": "champion"}],
                              actions=[{"type": "create_task", "config": {"title": "Meet {{ entity.name }}"}}])

    response = api.post(f"{TRIGGERS}/{trigger.pk}/execute",
                        {"entity_type": "Contact", "entity_id": str(contact.pk), "context": {"source": "api"}})

    assert response.status_code == 201, response.json()
    assert (response.json()["subject_model"], response.json()["subject_id"]) == ("contact", str(contact.pk))
    assert response.json()["account"] == str(contact.account_id)
    assert Run.objects.get().status == "success"


@pytest.mark.parametrize("body, field", [
    ({"entity_type": "Spaceship", "entity_id": "1"}, "entity_type"),
    ({"entity_type": "Account", "entity_id": "1"}, "entity_type"),  # the rule reads contacts
    ({"entity_type": "contact", "entity_id": "00000000-0000-0000-0000-000000000000"}, "entity_id"),
    ({"entity_type": "contact"}, "entity_id"),
])
def test_it_refuses_to_execute_for_an_entity_it_cannot_find(api, tenant, body, field):
    trigger = WorkflowFactory(tenant=tenant, trigger_type="model_created", model_type="contact")
    response = api.post(f"{TRIGGERS}/{trigger.pk}/execute", body)
    assert response.status_code == 400
    assert field in response.json()
    assert not Run.objects.exists()


# --- runs and stats --------------------------------------------------------------------------------------

def test_it_lists_runs_and_stats_whose_numbers_match(api, tenant):
    software = AccountFactory(tenant=tenant, industry="Software")
    retail = AccountFactory(tenant=tenant, industry="Retail")
    good = note_rule(tenant, name="good", conditions=[{"field": "industry", "operator": "equals", "value": "Software"}])
    bad = WorkflowFactory(tenant=tenant, name="bad",
                          actions=[{"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'nobody@example.com' }}"}}])
    WorkflowFactory(tenant=tenant, name="idle", status="draft")
    for workflow, account in ((good, software), (good, software), (good, retail), (bad, software)):
        assert api.post(f"{WORKFLOWS}/execute", {"workflow_id": workflow.pk,
                                                 "account_id": str(account.pk)}).status_code == 201
    # an old run, outside the 14 days
    Run.objects.filter(workflow=bad).update(created_at=timezone.now() - datetime.timedelta(days=20))

    runs = api.get(f"{WORKFLOWS}/runs").json()
    assert (runs["total"], len(runs["runs"]), runs["page"]) == (4, 4, 1)
    assert api.get(f"{WORKFLOWS}/runs", {"status": "skipped"}).json()["total"] == 1
    assert api.get(f"{WORKFLOWS}/runs", {"skip_reason": "conditions_not_met", "account": str(retail.pk)}).json()[
        "total"] == 1
    assert api.get(f"{WORKFLOWS}/{good.pk}/runs").json()["total"] == 3
    executions = api.get(f"{TRIGGERS}/{good.pk}/executions", {"status": "completed", "limit": 1}).json()
    assert (executions["count"], len(executions["results"])) == (2, 1), executions

    stats = api.get(f"{WORKFLOWS}/stats").json()
    assert (stats["total_workflows"], stats["active_workflows"]) == (3, 2)
    assert (stats["run_count"], stats["success_rate"]) == (3, round(2 / 3, 4))
    assert stats["runs"] == {"total": 4, "success": 2, "failed": 1, "skipped": 1, "running": 0, "queued": 0}
    assert stats["skipped_by_reason"]["conditions_not_met"] == 1
    assert len(stats["runs_per_day"]) == 14
    assert stats["runs_per_day"][-1]["date"] == timezone.localdate().isoformat()
    assert sum(day["total"] for day in stats["runs_per_day"]) == 3  # the old failure is outside the window

    listed = {w["name"]: w for w in api.get(WORKFLOWS).json()["workflows"]}
    assert (listed["good"]["run_count"], listed["good"]["success_rate"]) == (2, 1.0)
    assert (listed["bad"]["run_count"], listed["bad"]["success_rate"]) == (1, 0.0)
    assert (listed["idle"]["run_count"], listed["idle"]["success_rate"]) == (0, None)


def test_it_computes_stats_with_a_fixed_number_of_queries(api, tenant, django_assert_max_num_queries):
    account = AccountFactory(tenant=tenant)
    workflow = note_rule(tenant)
    for _ in range(5):
        api.post(f"{WORKFLOWS}/execute", {"workflow_id": workflow.pk, "account_id": str(account.pk)})
    with django_assert_max_num_queries(12):  # auth + membership + the aggregates, whatever the number of runs
        assert api.get(f"{WORKFLOWS}/stats").status_code == 200


# --- inbound webhooks ------------------------------------------------------------------------------------

def webhook_rule(tenant, **data) -> Workflow:
    return WorkflowFactory(tenant=tenant, trigger_type="webhook", conditions=[
        {"field": "score", "operator": "greater_than", "value": 80},
        {"field": "source", "operator": "equals", "value": "marketing_automation"}],
        actions=[{"type": "create_note", "config": {"body": "MQL {{ entity.email }} scored {{ entity.score }}"}}],
        **data)


def test_it_fires_a_webhook_rule_by_its_token(tenant):
    account = AccountFactory(tenant=tenant)
    hook = webhook_rule(tenant, debug_mode=True)
    body = {"score": 92, "source": "marketing_automation", "email": "lead@customer.test", "account_id": str(account.pk)}

    response = APIClient().post(f"/api/hooks/{hook.webhook_token}/", body, format="json")

    assert response.status_code == 202, response.json()
    run = Run.objects.get()
    assert response.json() == {"run_id": run.pk, "status": "success", "skip_reason": ""}
    assert (run.account, run.manual, run.trigger_data["payload"]["score"]) == (account, False, 92)
    assert Note.objects.get(account=account).body == "MQL lead@customer.test scored 92"
    assert [t["passed"] for t in run.trace] == [True, True]
    assert Event.objects.get().processed_at is not None


def test_it_records_a_webhook_whose_conditions_fail_as_skipped(tenant):
    hook = webhook_rule(tenant)
    response = APIClient().post(f"/api/hooks/{hook.webhook_token}/", {"score": "12", "source": "marketing_automation"},
                                format="json")
    assert response.status_code == 202
    assert response.json()["skip_reason"] == "conditions_not_met"
    assert not Note.objects.exists()


def test_it_answers_404_to_an_unknown_token_and_400_to_a_bad_body(tenant):
    hook = webhook_rule(tenant)
    client = APIClient()
    assert client.post("/api/hooks/not-a-token-of-anyone-at-all/", {"score": 99}, format="json").status_code == 404
    bad_json = client.post(f"/api/hooks/{hook.webhook_token}/", "{not json", content_type="application/json")
    assert (bad_json.status_code, list(bad_json.json())) == (400, ["body"])
    a_list = client.post(f"/api/hooks/{hook.webhook_token}/", [1, 2], format="json")
    assert (a_list.status_code, list(a_list.json())) == (400, ["body"])
    assert not Run.objects.exists()


def test_it_throttles_a_noisy_webhook_sender_without_starving_another_token(tenant, settings):
    settings.AUTOMATION_WEBHOOK_RATE = "2/min"
    noisy, quiet = webhook_rule(tenant), webhook_rule(tenant)
    client, body = APIClient(), {"score": 12, "source": "marketing_automation"}
    codes = [client.post(f"/api/hooks/{noisy.webhook_token}/", body, format="json").status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    assert client.post(f"/api/hooks/{quiet.webhook_token}/", body, format="json").status_code == 202
    # The cache key is a digest of the token: printable whatever the path holds, and no secret kept in Redis.
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        assert client.post("/api/hooks/%F0%92%B3%A9%C2%A9%0F/", body, format="json").status_code == 404


@pytest.mark.parametrize("change", [{"status": "paused"}, {"enabled": False}, {"status": "draft"}])
def test_it_does_not_fire_a_webhook_rule_that_is_not_live(tenant, change):
    hook = webhook_rule(tenant, **change)
    response = APIClient().post(f"/api/hooks/{hook.webhook_token}/", {"score": 99, "source": "marketing_automation"},
                                format="json")
    assert response.status_code == 404
    assert not Run.objects.exists() and not Event.objects.exists()


def test_it_shows_the_webhook_url_to_tenant_admins_only(api, member_client, tenant):
    hook = webhook_rule(tenant)
    detail = api.get(f"{WORKFLOWS}/{hook.pk}").json()
    assert detail["webhook_token"] == hook.webhook_token
    assert detail["webhook_url"].endswith(f"/api/hooks/{hook.webhook_token}/")
    assert api.get(WORKFLOWS).json()["workflows"][0]["webhook_token"] is None  # not in lists
    practitioner = member_client(tenant, Role.PRACTITIONER)
    assert practitioner.get(f"{TRIGGERS}/{hook.pk}").json()["webhook_token"] is None


def test_it_refuses_webhook_conditions_the_body_cannot_answer(api):
    response = api.post(TRIGGERS, {"name": "hook", "trigger_type": "webhook", "trigger_conditions": [
        {"field": "company.industry", "operator": "equals", "value": "Software"}]})
    assert response.status_code == 400
    assert "trigger_conditions[0].field" in response.json()


# --- validation ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, body, field", [
    (WORKFLOWS, {"trigger_type": "on_full_moon"}, "trigger_type"),
    (WORKFLOWS, {"trigger_type": "health_score_change", "trigger_config": {"direction": "sideways"}},
     "trigger_config.direction"),
    (WORKFLOWS, {"condition_config": [{"field": "industry", "operator": "roughly", "value": "x"}]},
     "condition_config[0].operator"),
    (WORKFLOWS, {"condition_config": [{"field": "shoe_size", "operator": "equals", "value": 9}]},
     "condition_config[0].field"),
    (WORKFLOWS, {"condition_config": {"account_filter": {"sizes": ["small"]}}},
     "condition_config.account_filter.sizes"),
    (WORKFLOWS, {"action_type": "launch_rocket", "action_config": {}}, "action_type"),
    (WORKFLOWS, {"action_type": "create_task", "action_config": {"priority": "high"}}, "action_config.title"),
    (WORKFLOWS, {"actions": [{"type": "create_note", "body": "ok"}, {"type": "launch_rocket"}]}, "actions[1].type"),
    (WORKFLOWS, {"action_type": "create_note", "actions": []}, "action_type"),
    (WORKFLOWS, {"rate_limiting": {"limit": 0}}, "rate_limiting.limit"),
    (WORKFLOWS, {"status": "sleeping"}, "status"),
    (TRIGGERS, {"trigger_type": "model_created", "model_type": "App\\Models\\Spaceship"}, "model_type"),
    (TRIGGERS, {"trigger_conditions": [{"field": "industry", "operator": "equals", "value": 1}, {"logic": "MAYBE"},
                                       {"field": "industry", "operator": "equals", "value": 2}]},
     "trigger_conditions[1].logic"),
    (TRIGGERS, {"action_configuration": {"actions": [{"type": "create_task", "priority": "high"}]}},
     "action_configuration.actions[0].title"),
    (TRIGGERS, {"action_configuration": {"actions": [{"type": "teleport"}]}}, "action_configuration.actions[0].type"),
    (TRIGGERS, {"action_configuration": {"actions": [], "schedule": "yearly"}}, "action_configuration.schedule"),
    (TRIGGERS, {"action_configuration": {"steps": []}}, "action_configuration.actions"),
    (TRIGGERS, {"retry_configuration": {"backoff_multiplier": 0}}, "retry_configuration.backoff_multiplier"),
    (TRIGGERS, {"retry_configuration": {"retries": 3}}, "retry_configuration.retries"),
    (TRIGGERS, {"max_retries": -1}, "max_retries"),
])
def test_it_answers_400_naming_the_field_for_bad_input(api, url, body, field):
    body = {"name": "Bad rule", "trigger_type": "manual", **body}
    response = api.post(url, body)
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Workflow.objects.exists()


def test_it_refuses_a_trigger_workflow_cycle(api, tenant):
    first = note_rule(tenant)
    second = WorkflowFactory(tenant=tenant, actions=[{"type": "trigger_workflow", "config": {"workflow_id": first.pk}}])
    response = api.patch(f"{WORKFLOWS}/{first.pk}", {"actions": [{"type": "trigger_workflow",
                                                                  "workflow_id": second.pk}]})
    assert response.status_code == 400 and "actions" in response.json()


# --- roles -----------------------------------------------------------------------------------------------

# Letters are the roles allowed (A tenant admin, P practitioner, C contributor, V viewer); others get 403.
ROLE_MATRIX = """
operation                    allowed
list-workflows               APCV
read-workflow                APCV
read-runs                    APCV
read-stats                   APCV
list-triggers                APCV
read-executions              APCV
create-workflow              A
create-trigger               A
update-workflow              A
update-trigger               A
delete-workflow              A
delete-trigger               A
discard-draft-workflow       A
discard-draft-trigger        A
read-versions                APCV
test-workflow                AP
execute-workflow             AP
execute-trigger              AP
"""
ROLES = {"A": Role.TENANT_ADMIN, "P": Role.PRACTITIONER, "C": Role.CONTRIBUTOR, "V": Role.VIEWER}


def role_cases():
    for line in ROLE_MATRIX.strip().splitlines()[1:]:
        operation, allowed = line.split()
        for letter, role in ROLES.items():
            yield pytest.param(operation, role, letter in allowed, id=f"{operation}-{role}")


def perform(client, operation: str, workflow: Workflow, account: Account):
    target = {"account_id": str(account.pk)}
    return {
        "list-workflows": lambda: client.get(WORKFLOWS),
        "read-workflow": lambda: client.get(f"{WORKFLOWS}/{workflow.pk}"),
        "read-runs": lambda: client.get(f"{WORKFLOWS}/{workflow.pk}/runs"),
        "read-stats": lambda: client.get(f"{WORKFLOWS}/stats"),
        "list-triggers": lambda: client.get(TRIGGERS),
        "read-executions": lambda: client.get(f"{TRIGGERS}/{workflow.pk}/executions"),
        "create-workflow": lambda: client.post(WORKFLOWS, {"name": "new", "trigger_type": "manual"}),
        "create-trigger": lambda: client.post(TRIGGERS, {"name": "new", "trigger_type": "manual"}),
        "update-workflow": lambda: client.patch(f"{WORKFLOWS}/{workflow.pk}", {"name": "renamed"}),
        "update-trigger": lambda: client.put(f"{TRIGGERS}/{workflow.pk}",
                                             {"name": "renamed", "trigger_type": "manual"}),
        "delete-workflow": lambda: client.delete(f"{WORKFLOWS}/{workflow.pk}"),
        "delete-trigger": lambda: client.delete(f"{TRIGGERS}/{workflow.pk}"),
        "discard-draft-workflow": lambda: client.delete(f"{WORKFLOWS}/{workflow.pk}/draft"),
        "discard-draft-trigger": lambda: client.delete(f"{TRIGGERS}/{workflow.pk}/draft"),
        "read-versions": lambda: client.get(f"{TRIGGERS}/{workflow.pk}/versions"),
        "test-workflow": lambda: client.post(f"{WORKFLOWS}/{workflow.pk}/test", target),
        "execute-workflow": lambda: client.post(f"{WORKFLOWS}/execute", {"workflow_id": workflow.pk, **target}),
        "execute-trigger": lambda: client.post(f"{TRIGGERS}/{workflow.pk}/execute", target),
    }[operation]()


@pytest.mark.parametrize("operation, role, allowed", list(role_cases()))
def test_it_enforces_the_role_table(member_client, tenant, operation, role, allowed):
    account = AccountFactory(tenant=tenant)
    workflow = note_rule(tenant)
    client = member_client(tenant, role)
    before = counts()
    response = perform(client, operation, workflow, account)
    if allowed:
        assert response.status_code in (200, 201, 204), (response.status_code, response.content)
    else:
        assert response.status_code == 403
        assert counts() == before
        workflow.refresh_from_db()
        assert workflow.name == "Rule"


# --- tenant isolation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("get", f"{WORKFLOWS}/{{id}}"), ("put", f"{WORKFLOWS}/{{id}}"), ("patch", f"{WORKFLOWS}/{{id}}"),
    ("delete", f"{WORKFLOWS}/{{id}}"), ("post", f"{WORKFLOWS}/{{id}}/test"), ("get", f"{WORKFLOWS}/{{id}}/runs"),
    ("get", f"{TRIGGERS}/{{id}}"), ("patch", f"{TRIGGERS}/{{id}}"), ("delete", f"{TRIGGERS}/{{id}}"),
    ("post", f"{TRIGGERS}/{{id}}/execute"), ("get", f"{TRIGGERS}/{{id}}/executions"),
])
def test_it_answers_404_for_another_tenants_rule(api, other_tenant, method, path):
    account = AccountFactory(tenant=other_tenant)
    theirs = note_rule(other_tenant)
    before = counts()
    response = getattr(api, method)(path.format(id=theirs.pk), {"name": "mine now", "trigger_type": "manual",
                                                                "account_id": str(account.pk)})
    assert response.status_code == 404
    assert counts() == before
    theirs.refresh_from_db()
    assert theirs.name == "Rule"


def test_it_refuses_another_tenants_rows_named_in_a_body(api, tenant, other_tenant):
    mine, theirs = AccountFactory(tenant=tenant), AccountFactory(tenant=other_tenant)
    their_rule = note_rule(other_tenant)
    my_rule = note_rule(tenant)

    scoped = api.post(WORKFLOWS, {"name": "scoped", "trigger_type": "manual", "scope_all_accounts": False,
                                  "scope_accounts": [str(mine.pk), str(theirs.pk)]})
    assert scoped.status_code == 400 and "scope_accounts" in scoped.json()
    execute = api.post(f"{WORKFLOWS}/execute", {"workflow_id": their_rule.pk, "account_id": str(mine.pk)})
    assert execute.status_code == 400 and "workflow_id" in execute.json()
    account = api.post(f"{WORKFLOWS}/execute", {"workflow_id": my_rule.pk, "account_id": str(theirs.pk)})
    assert account.status_code == 400 and "account_id" in account.json()
    contact = ContactFactory(account=theirs)
    trigger = WorkflowFactory(tenant=tenant, trigger_type="model_created", model_type="contact")
    entity = api.post(f"{TRIGGERS}/{trigger.pk}/execute", {"entity_type": "contact", "entity_id": str(contact.pk)})
    assert entity.status_code == 400 and "entity_id" in entity.json()
    assert api.get(f"{WORKFLOWS}/runs", {"account": str(theirs.pk)}).status_code == 400
    assert not Run.objects.exists()


def test_it_lists_only_the_tenants_own_rules_and_runs(api, tenant, other_tenant):
    note_rule(tenant, name="mine")
    theirs = note_rule(other_tenant, name="theirs")
    RunFactory(workflow=theirs, status="success")
    assert [w["name"] for w in api.get(WORKFLOWS).json()["workflows"]] == ["mine"]
    assert api.get(TRIGGERS).json()["count"] == 1
    assert api.get(f"{WORKFLOWS}/runs").json()["total"] == 0
    assert api.get(f"{WORKFLOWS}/stats").json()["runs"]["total"] == 0


def test_it_stores_scope_accounts_of_the_tenant(api, tenant):
    account = AccountFactory(tenant=tenant)
    created = api.post(WORKFLOWS, {"name": "scoped", "trigger_type": "manual", "scope_all_accounts": False,
                                   "scope_accounts": [str(account.pk)]})
    assert created.status_code == 201, created.json()
    assert created.json()["scope_accounts"] == [str(account.pk)]


# --- lists -----------------------------------------------------------------------------------------------

def test_it_paginates_and_filters_workflows_in_seed_001_shape(api, tenant):
    for name in ("a", "b", "c"):
        note_rule(tenant, name=name)
    WorkflowFactory(tenant=tenant, name="d", status="paused", trigger_type="health_score_change")

    page = api.get(WORKFLOWS, {"limit": 2, "page": 2}).json()
    assert set(page) == {"workflows", "total", "page", "limit"}
    assert ([w["name"] for w in page["workflows"]], page["total"], page["page"], page["limit"]) == (["c", "d"], 4, 2, 2)
    assert api.get(WORKFLOWS).json()["limit"] == 25
    assert [w["name"] for w in api.get(WORKFLOWS, {"status": "paused"}).json()["workflows"]] == ["d"]
    assert api.get(WORKFLOWS, {"type": "manual"}).json()["total"] == 3
    assert api.get(TRIGGERS, {"is_active": "false"}).json()["count"] == 1
    item = page["workflows"][0]
    for key in ("id", "name", "description", "status", "enabled", "trigger_type", "trigger_config",
                "condition_config", "actions", "last_run_at", "run_count", "success_rate"):
        assert key in item


def test_it_lists_executions_with_a_limit_and_status(api, tenant):
    account = AccountFactory(tenant=tenant)
    trigger = note_rule(tenant)
    for _ in range(3):
        api.post(f"{WORKFLOWS}/execute", {"workflow_id": trigger.pk, "account_id": str(account.pk)})
    page = api.get(f"{TRIGGERS}/{trigger.pk}/executions", {"limit": 2}).json()
    assert (page["count"], len(page["results"])) == (3, 2)
    assert page["results"][0]["steps"][0]["action_type"] == "create_note"
    assert api.get(f"{TRIGGERS}/{trigger.pk}/executions", {"status": "exploded"}).status_code == 400


def test_it_lists_workflows_with_a_fixed_number_of_queries(api, tenant, django_assert_max_num_queries):
    account = AccountFactory(tenant=tenant)
    for index in range(6):
        workflow = note_rule(tenant, name=f"rule {index}", scope_all_accounts=False, scope_accounts=[account])
        RunFactory(workflow=workflow, status="success")
    with django_assert_max_num_queries(10):
        assert len(api.get(WORKFLOWS).json()["workflows"]) == 6


def test_it_serves_the_rule_endpoints_in_the_schema(api):
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    for path in ("/api/admin/automation/", "/api/admin/automation/{id}/test/", "/api/admin/automation/execute/",
                 "/api/admin/automation/stats/", "/api/event-triggers/{id}/executions/", "/api/hooks/{token}/"):
        assert path in paths


def test_it_rotates_a_webhook_token_so_the_old_url_stops_working(tenant, member_client):
    from automation.models import Workflow as Rule
    from automation.services import workflow_save as save

    hook = save(rule=Rule(tenant=tenant), data={"name": "Hook", "status": "active", "trigger_type": "webhook",
                                                 "actions": [{"type": "create_note", "config": {"body": "x"}}]})
    old = hook.webhook_token
    admin = member_client(tenant)
    viewer = member_client(tenant, "viewer")
    assert viewer.post(f"/api/admin/automation/{hook.pk}/rotate-webhook-token").status_code == 403
    response = admin.post(f"/api/admin/automation/{hook.pk}/rotate-webhook-token")
    assert response.status_code == 200
    new = response.json()["webhook_token"]
    assert new != old
    assert admin.post(f"/api/hooks/{old}/", {"x": 1}, format="json").status_code == 404
    assert admin.post(f"/api/hooks/{new}/", {"x": 1}, format="json").status_code == 202
