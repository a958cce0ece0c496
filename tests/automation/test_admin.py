"""The automation admin: rules, runs and events scoped by tenant and role; rules saved through the
service with its errors on the right form field; activate/pause, test now, run now and replay."""

import json

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Note, Role, Task
from automation import engine
from automation.admin import rule_summary
from automation.models import Event, Run, RunStep, Workflow
from delivery.models import Outbox
from tests.factories import AccountFactory, EventFactory, MembershipFactory, RunFactory, WorkflowFactory, staff

pytestmark = pytest.mark.django_db

TASK = {"type": "create_task", "config": {"title": "Call {{ account.name }}", "due_days": 3}}
NOTE = {"type": "create_note", "config": {"body": "Looked at {{ account.name }}"}}


def url(model: str, view: str, *args) -> str:
    return reverse(f"admin:automation_{model}_{view}", args=args)


def form_data(**fields) -> dict:
    """A complete add/change form as a browser posts it."""
    data = {
        "name": "Health alert", "description": "", "status": "draft", "enabled": "on",
        "trigger_type": "health_score_change", "model_type": "",
        "trigger_config": json.dumps({"threshold": 40, "direction": "decrease"}),
        "conditions": json.dumps({"all": [{"field": "industry", "operator": "equals", "value": "Software"}]}),
        "actions": json.dumps([TASK]), "scope_all_accounts": "on", "cooldown_minutes": "60",
        "rate_limiting": "{}", "delay_minutes": "0", "retry_configuration": "{}", "failure_threshold": "10",
    }
    return {**data, **fields}


def act(client, model: str, action: str, *objects):
    return client.post(url(model, "changelist"),
                       {"action": action, "index": "0", "_selected_action": [o.pk for o in objects]})


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def names(response) -> set[str]:
    return {str(obj) for obj in response.context["cl"].result_list}


def errors(response) -> dict:
    return response.context["adminform"].form.errors


def counts() -> dict:
    return {model.__name__: model.objects.count() for model in (Workflow, Run, RunStep, Event, Outbox, Task, Note)}


class Queries(CaptureQueriesContext):
    """A request's queries without the savepoints of ATOMIC_REQUESTS."""

    def __init__(self):
        super().__init__(connection)

    def __len__(self):
        return len([q for q in self.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))])


# --- tenant scoping ------------------------------------------------------------------------------

def test_it_shows_a_staff_user_only_their_tenants_rules_runs_and_events(client, tenant, other_tenant):
    mine, theirs = WorkflowFactory(tenant=tenant, name="Mine"), WorkflowFactory(tenant=other_tenant, name="Theirs")
    my_account, their_account = AccountFactory(tenant=tenant), AccountFactory(tenant=other_tenant)
    my_run = RunFactory(workflow=mine, account=my_account)
    their_run = RunFactory(workflow=theirs, account=their_account)
    EventFactory(tenant=tenant, type="mine_happened")
    EventFactory(tenant=other_tenant, type="theirs_happened")
    client.force_login(staff(tenant, Role.VIEWER))

    assert names(client.get(url("workflow", "changelist"))) == {"Mine"}
    assert {r.pk for r in client.get(url("run", "changelist")).context["cl"].result_list} == {my_run.pk}
    assert {e.type for e in client.get(url("event", "changelist")).context["cl"].result_list} == {"mine_happened"}
    for address in (url("workflow", "change", theirs.pk), url("run", "change", their_run.pk)):
        response = client.get(address)
        assert response.status_code in (302, 404), address
        assert b"Theirs" not in response.content


def test_it_lists_rules_and_runs_with_a_query_count_that_does_not_grow_with_rows(client, tenant):
    account = AccountFactory(tenant=tenant)
    client.force_login(staff(tenant))

    def make(n):
        for i in range(n):
            workflow = WorkflowFactory(tenant=tenant, name=f"Rule {Workflow.objects.count()}",
                                       actions=[TASK, NOTE], trigger_type="health_score_change",
                                       trigger_config={"threshold": 40})
            RunFactory(workflow=workflow, account=account, status=Run.Status.SUCCESS)
            RunFactory(workflow=workflow, account=account, status=Run.Status.SKIPPED,
                       skip_reason=Run.SkipReason.COOLDOWN)

    def queries(model):
        with Queries() as captured:
            response = client.get(url(model, "changelist"))
        assert response.status_code == 200
        return len(captured), len(response.context["cl"].result_list)

    make(1)
    few = {model: queries(model) for model in ("workflow", "run")}
    make(10)
    many = {model: queries(model) for model in ("workflow", "run")}

    for model in ("workflow", "run"):
        assert many[model][1] > few[model][1], model
        assert many[model][0] == few[model][0], f"{model}: {few[model][0]} queries for few rows, {many[model][0]} for many"


# --- the rule list -------------------------------------------------------------------------------

def test_it_summarises_a_rule_as_trigger_conditions_and_actions():
    workflow = Workflow(
        trigger_type="health_score_change", trigger_config={"threshold": 40.0, "direction": "decrease"},
        conditions={"op": "all", "conditions": [{"field": "industry", "operator": "equals", "value": "Software"}]},
        actions=[TASK, {"type": "webhook", "config": {}}],
    )
    assert rule_summary(workflow) == "health_score_change (below 40, decrease) → 1 condition → create_task, webhook"

    workflow = Workflow(trigger_type="field_changed", model_type="account",
                        trigger_config={"fields": ["status"], "to": "at_risk"}, conditions={}, actions=[])
    assert rule_summary(workflow) == "field_changed (account.status, to at_risk) → no conditions → no actions"


def test_it_shows_last_week_runs_and_success_rate_in_the_rule_list(client, tenant):
    account = AccountFactory(tenant=tenant)
    workflow = WorkflowFactory(tenant=tenant, name="Busy", actions=[NOTE])
    WorkflowFactory(tenant=tenant, name="Idle", actions=[NOTE])
    for status in ("success", "success", "success", "failed", "skipped"):
        RunFactory(workflow=workflow, account=account, status=status)
    RunFactory(workflow=workflow, account=account, status="failed",
               created_at=timezone.now() - timezone.timedelta(days=8))
    client.force_login(staff(tenant))

    response = client.get(url("workflow", "changelist"))

    rows = {w.name: w for w in response.context["cl"].result_list}
    assert (rows["Busy"].runs_7d, rows["Busy"].success_rate_7d) == (5, 75.0)
    assert (rows["Idle"].runs_7d, rows["Idle"].success_rate_7d) == (0, None)
    assert "75 % (3/4)" in response.content.decode()
    assert "manual → no conditions → create_note" in response.content.decode()


def test_it_filters_rules_by_status_trigger_and_source_and_searches_by_name(client, tenant):
    WorkflowFactory(tenant=tenant, name="Live alert", status="active", trigger_type="health_score_change",
                    trigger_config={"threshold": 40})
    WorkflowFactory(tenant=tenant, name="Paused hook", status="paused", trigger_type="webhook", source="event_trigger")
    client.force_login(staff(tenant))
    changelist = url("workflow", "changelist")

    assert names(client.get(changelist, {"status__exact": "paused"})) == {"Paused hook"}
    assert names(client.get(changelist, {"trigger_type__exact": "health_score_change"})) == {"Live alert"}
    assert names(client.get(changelist, {"source__exact": "event_trigger"})) == {"Paused hook"}
    assert names(client.get(changelist, {"q": "alert"})) == {"Live alert"}


# --- editing rules through the service -----------------------------------------------------------

def test_it_saves_a_new_rule_through_the_service(client, tenant):
    user = staff(tenant)
    client.force_login(user)

    response = client.post(url("workflow", "add"), form_data())

    assert response.status_code == 302, errors(response)
    saved = Workflow.objects.get()
    assert (saved.tenant, saved.created_by, saved.source) == (tenant, user, "admin")
    assert saved.conditions["op"] == "all"  # normalised by workflow_save
    assert saved.trigger_config["minimum_change"] == 0.0
    assert saved.actions == [TASK]


def test_it_shows_an_unknown_action_as_a_form_error_and_stores_nothing(client, tenant):
    client.force_login(staff(tenant))

    response = client.post(url("workflow", "add"), form_data(actions=json.dumps([TASK, {"type": "send_fax"}])))

    assert response.status_code == 200
    assert any("actions[1].type" in e and "send_fax" in e for e in errors(response)["actions"])
    assert Workflow.objects.count() == 0


def test_it_shows_a_bad_trigger_setting_on_the_trigger_config_field(client, tenant):
    workflow = WorkflowFactory(tenant=tenant, name="Alert", trigger_type="health_score_change",
                               trigger_config={"threshold": 40})
    client.force_login(staff(tenant))

    response = client.post(url("workflow", "change", workflow.pk),
                           form_data(name="Renamed", trigger_config=json.dumps({"direction": "sideways"})))

    assert response.status_code == 200
    assert any(e.startswith("trigger_config.direction:") for e in errors(response)["trigger_config"])
    workflow.refresh_from_db()
    assert (workflow.name, workflow.trigger_config["direction"]) == ("Alert", "decrease")


def test_it_rejects_malformed_json_and_a_list_where_an_object_belongs(client, tenant):
    client.force_login(staff(tenant))

    response = client.post(url("workflow", "add"), form_data(conditions="{not json", rate_limiting="[1]"))

    assert response.status_code == 200
    assert set(errors(response)) >= {"conditions", "rate_limiting"}
    assert Workflow.objects.count() == 0


@pytest.mark.parametrize("field, value, key", [
    ("rate_limiting", {"limit": 0}, "rate_limiting.limit"),
    ("retry_configuration", {"max_retries": -1}, "retry_configuration.max_retries"),
    ("conditions", {"all": [{"field": "industry", "operator": "resembles", "value": "x"}]}, "conditions"),
])
def test_it_shows_the_services_complaint_on_the_field_it_names(client, tenant, field, value, key):
    client.force_login(staff(tenant))

    response = client.post(url("workflow", "add"), form_data(**{field: json.dumps(value)}))

    assert response.status_code == 200
    assert any(key in e or field == key for e in errors(response)[field]), errors(response)
    assert Workflow.objects.count() == 0


def test_it_edits_json_settings_as_pretty_printed_text(client, tenant):
    workflow = WorkflowFactory(tenant=tenant, actions=[TASK])
    client.force_login(staff(tenant))

    page = client.get(url("workflow", "change", workflow.pk))

    assert page.context["adminform"].form["actions"].value() == json.dumps([TASK], indent=2, ensure_ascii=False)
    assert '\n  {\n    &quot;type&quot;: &quot;create_task&quot;' in page.content.decode()


def test_it_pauses_and_activates_rules(client, tenant):
    first, second = WorkflowFactory(tenant=tenant, name="One"), WorkflowFactory(tenant=tenant, name="Two")
    client.force_login(staff(tenant))

    act(client, "workflow", "pause", first, second)
    assert set(Workflow.objects.values_list("status", flat=True)) == {"paused"}

    act(client, "workflow", "activate", first)
    assert dict(Workflow.objects.values_list("name", "status")) == {"One": "active", "Two": "paused"}


def test_it_deletes_a_rule_with_its_runs(client, tenant):
    workflow = WorkflowFactory(tenant=tenant)
    RunFactory(workflow=workflow, account=AccountFactory(tenant=tenant))
    client.force_login(staff(tenant))

    response = client.post(url("workflow", "delete", workflow.pk), {"post": "yes"})

    assert response.status_code == 302
    assert (Workflow.objects.count(), Run.objects.count()) == (0, 0)


# --- test now, run now, replay -------------------------------------------------------------------

def test_it_tests_a_rule_now_without_writing_or_sending_anything(
        client, tenant, django_capture_on_commit_callbacks):
    AccountFactory(tenant=tenant, name="Zeta Corp")
    AccountFactory(tenant=tenant, name="Acme Corp")
    hook = {"type": "webhook", "config": {"url": "https://hooks.example.test/cs"}}
    workflow = WorkflowFactory(tenant=tenant, actions=[TASK, NOTE, hook])
    client.force_login(staff(tenant))
    before = counts()

    with django_capture_on_commit_callbacks() as after_commit:
        response = act(client, "workflow", "test_now", workflow)

    assert counts() == before
    assert after_commit == []  # no event processing, no delivery handed on
    workflow.refresh_from_db()
    assert workflow.last_run_at is None
    [message] = messages_of(response)
    assert "dry run, nothing was saved" in message and "'Acme Corp'" in message
    assert all(f"{kind}: success" in message for kind in ("create_task", "create_note", "webhook")), message


def test_it_tests_a_rule_and_says_which_condition_failed(client, tenant):
    AccountFactory(tenant=tenant, industry="Retail")
    workflow = WorkflowFactory(tenant=tenant, actions=[NOTE], conditions={
        "all": [{"field": "industry", "operator": "equals", "value": "Software"}]})
    client.force_login(staff(tenant, Role.PRACTITIONER))

    [message] = messages_of(act(client, "workflow", "test_now", workflow))

    assert "skipped (conditions not met)" in message and 'industry equals "Software" (was "Retail")' in message
    assert Run.objects.count() == 0


def test_it_runs_a_rule_now_for_a_chosen_account(client, tenant):
    AccountFactory(tenant=tenant, name="Acme Corp")
    chosen = AccountFactory(tenant=tenant, name="Beta Corp")
    workflow = WorkflowFactory(tenant=tenant, actions=[NOTE])
    client.force_login(staff(tenant, Role.PRACTITIONER))

    redirect = act(client, "workflow", "run_now_for_account", workflow)
    assert redirect["Location"] == url("workflow", "run", workflow.pk)
    page = client.get(redirect["Location"])
    assert page.status_code == 200
    assert set(page.context["form"].fields["account"].queryset) == set(tenant_accounts(tenant))

    response = client.post(redirect["Location"], {"account": chosen.pk})

    assert response.status_code == 302
    run = Run.objects.get()
    assert (run.account, run.manual, run.status) == (chosen, True, Run.Status.SUCCESS)
    assert Note.objects.get().body == "Looked at Beta Corp"


def tenant_accounts(tenant):
    from accounts.models import Account

    return Account.objects.for_tenant(tenant)


def test_it_replays_a_finished_run_for_the_same_event_and_account(client, tenant):
    account = AccountFactory(tenant=tenant)
    workflow = WorkflowFactory(tenant=tenant, trigger_type="event", trigger_config={"event_type": "payment_failed"},
                               actions=[NOTE])
    event = EventFactory(account=account, type="payment_failed")
    original = engine.fire(workflow, event=event)
    client.force_login(staff(tenant, Role.PRACTITIONER))

    response = act(client, "run", "replay", original)

    replay = Run.objects.exclude(pk=original.pk).get()
    assert (replay.event, replay.account, replay.manual, replay.status) == (event, account, True, Run.Status.SUCCESS)
    assert Note.objects.count() == 2
    assert any(f"as run {replay.pk}" in m for m in messages_of(response))


# --- runs and events -----------------------------------------------------------------------------

def test_it_shows_a_run_with_its_steps_and_trace(client, tenant):
    account = AccountFactory(tenant=tenant, industry="Software")
    workflow = WorkflowFactory(
        tenant=tenant, debug_mode=True, continue_on_error=True,
        conditions={"all": [{"field": "industry", "operator": "equals", "value": "Software"}]},
        actions=[NOTE, {"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'stranger@example.test' }}"}}])
    run = engine.fire(workflow, subject=account, account=account, manual=True)
    client.force_login(staff(tenant, Role.VIEWER))

    page = client.get(url("run", "change", run.pk))

    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    [steps] = page.context["inline_admin_formsets"]
    assert [(s.action_type, s.status) for s in steps.formset.queryset] == [("create_note", "success"),
                                                                           ("assign_to_user", "failed")]
    content = page.content.decode()
    assert "is not a member of this tenant" in content  # the failed step's error
    assert "<th>Operator</th>" in content and "industry" in content  # the trace, as a table


def test_it_keeps_runs_read_only_and_lets_only_tenant_admins_delete_them(client, tenant):
    run = RunFactory(workflow=WorkflowFactory(tenant=tenant), account=AccountFactory(tenant=tenant),
                     status=Run.Status.SUCCESS)
    client.force_login(staff(tenant, Role.PRACTITIONER))
    assert client.get(url("run", "add")).status_code == 403
    assert client.post(url("run", "change", run.pk), {"status": "failed"}).status_code == 403
    assert client.post(url("run", "delete", run.pk), {"post": "yes"}).status_code == 403

    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    assert client.post(url("run", "delete", run.pk), {"post": "yes"}).status_code == 302
    assert not Run.objects.exists()


def test_it_lists_events_read_only_with_a_processed_filter(client, tenant):
    EventFactory(tenant=tenant, type="done", processed_at=timezone.now())
    pending = EventFactory(tenant=tenant, type="waiting")
    client.force_login(staff(tenant))
    changelist = url("event", "changelist")

    assert {e.type for e in client.get(changelist, {"processed": "no"}).context["cl"].result_list} == {"waiting"}
    assert {e.type for e in client.get(changelist, {"processed": "yes"}).context["cl"].result_list} == {"done"}
    assert client.get(url("event", "change", pending.pk)).context["has_change_permission"] is False
    assert client.get(url("event", "add")).status_code == 403


# --- roles ---------------------------------------------------------------------------------------

def test_it_lets_a_viewer_read_but_not_add_or_test_rules(client, tenant):
    workflow = WorkflowFactory(tenant=tenant)
    AccountFactory(tenant=tenant)
    client.force_login(staff(tenant, Role.VIEWER))

    assert client.get(url("workflow", "change", workflow.pk)).status_code == 200
    assert client.get(url("workflow", "add")).status_code == 403
    assert client.post(url("workflow", "add"), form_data()).status_code == 403
    assert client.get(url("workflow", "run", workflow.pk)).status_code == 403
    act(client, "workflow", "test_now", workflow)
    act(client, "workflow", "pause", workflow)
    assert Workflow.objects.get().status == "active"
    assert Workflow.objects.count() == 1


def test_it_lets_a_practitioner_view_and_test_but_not_edit_rules(client, tenant):
    workflow = WorkflowFactory(tenant=tenant, name="Alert", actions=[NOTE])
    AccountFactory(tenant=tenant)
    client.force_login(staff(tenant, Role.PRACTITIONER))

    page = client.get(url("workflow", "change", workflow.pk))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert "create_note" in page.content.decode()  # the actions, shown read-only
    assert client.post(url("workflow", "change", workflow.pk), form_data(name="Hijacked")).status_code == 403
    assert client.get(url("workflow", "add")).status_code == 403

    actions = client.get(url("workflow", "changelist")).context["action_form"].fields["action"].choices
    assert {name for name, _ in actions} == {"", "test_now", "run_now_for_account"}
    act(client, "workflow", "pause", workflow)
    workflow.refresh_from_db()
    assert (workflow.name, workflow.status) == ("Alert", "active")


def test_it_shows_the_inbound_webhook_url_only_to_tenant_admins(client, tenant):
    hook = WorkflowFactory(tenant=tenant, trigger_type="webhook")
    address = f"/api/hooks/{hook.webhook_token}/"

    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    assert address in client.get(url("workflow", "change", hook.pk)).content.decode()

    client.force_login(staff(tenant, Role.PRACTITIONER))
    page = client.get(url("workflow", "change", hook.pk)).content.decode()
    assert hook.webhook_token not in page and "only tenant admins see the webhook token" in page


def test_it_asks_a_user_of_several_tenants_for_the_new_rules_tenant_and_keeps_its_scope_inside(
        client, tenant, other_tenant):
    user = staff(tenant)
    MembershipFactory(tenant=other_tenant, user=user, role=Role.TENANT_ADMIN)
    theirs = AccountFactory(tenant=other_tenant)
    client.force_login(user)

    response = client.post(url("workflow", "add"), form_data(tenant_choice=tenant.pk, scope_all_accounts="",
                                                             scope_accounts=[theirs.pk]))
    assert response.status_code == 200
    assert "scope_accounts" in errors(response)

    response = client.post(url("workflow", "add"), form_data(tenant_choice=other_tenant.pk, scope_all_accounts="",
                                                             scope_accounts=[theirs.pk]))
    assert response.status_code == 302, errors(response)
    saved = Workflow.objects.get()
    assert (saved.tenant, list(saved.scope_accounts.all())) == (other_tenant, [theirs])


def test_it_tests_webhook_and_contact_rules_on_a_fitting_subject(client, tenant):
    from tests.factories import ContactFactory

    account = AccountFactory(tenant=tenant, name="Acme Corp")
    ContactFactory(account=account, name="Dana Champion")
    hook = WorkflowFactory(tenant=tenant, name="Hook", trigger_type="webhook", actions=[NOTE])
    contacts = WorkflowFactory(tenant=tenant, name="New contact", trigger_type="model_created", model_type="contact",
                               actions=[NOTE])
    client.force_login(staff(tenant, Role.PRACTITIONER))
    before = counts()

    messages = messages_of(act(client, "workflow", "test_now", hook, contacts))

    assert counts() == before
    assert any(m.startswith("Test of 'Hook' (dry run") and "create_note: success" in m for m in messages), messages
    assert any("'New contact' on contact 'Dana Champion'" in m and "create_note: success" in m for m in messages)


def test_a_failed_event_is_listed_and_can_be_processed_again(tenant, client, settings,
                                                             django_capture_on_commit_callbacks):
    settings.AUTOMATION_EVENT_MAX_ATTEMPTS = 1
    WorkflowFactory(tenant=tenant, trigger_type="model_updated", model_type="account", actions=[NOTE])
    account = AccountFactory(tenant=tenant)
    broken = EventFactory(tenant=tenant, model="account", object_id="not-an-id")
    fine = EventFactory(account=account)
    engine.process_event(tenant.pk, broken.pk)
    broken.refresh_from_db()
    assert broken.failed_at is not None
    client.force_login(staff(tenant))

    listed = client.get(url("event", "changelist"), {"processed": "failed"})
    assert list(listed.context["cl"].result_list) == [broken]

    Event.objects.filter(pk=broken.pk).update(object_id=str(account.pk))  # the cause is mended
    with django_capture_on_commit_callbacks(execute=True):
        act(client, "event", "process_again", broken, fine)
    broken.refresh_from_db()
    assert broken.failed_at is None and broken.last_error == "" and broken.processed_at is not None
    assert Run.objects.filter(event=broken, status="success").exists()


def test_a_contributor_cannot_process_failed_events_again(tenant, client):
    broken = EventFactory(tenant=tenant, model="account", object_id="x", failed_at=timezone.now(), attempts=5)
    client.force_login(staff(tenant, Role.CONTRIBUTOR))
    act(client, "event", "process_again", broken)
    broken.refresh_from_db()
    assert broken.failed_at is not None and broken.attempts == 5


def test_rule_and_run_pages_show_their_json_settings_readably(tenant, client):
    workflow = WorkflowFactory(tenant=tenant, trigger_type="health_score_change",
                               trigger_config={"threshold": 40, "direction": "decrease"})
    run = RunFactory(workflow=workflow, account=AccountFactory(tenant=tenant), status="success",
                     trigger_data={"type": "manual", "payload": {"seats": 12}})
    client.force_login(staff(tenant))

    rule_page = client.get(url("workflow", "change", workflow.pk)).content.decode()
    run_page = client.get(url("run", "change", run.pk)).content.decode()

    assert "Trigger config" in rule_page and "&quot;threshold&quot;: 40" in rule_page
    assert "Trigger data" in run_page and "&quot;seats&quot;: 12" in run_page
