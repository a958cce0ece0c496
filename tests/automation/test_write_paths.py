"""Every write path raises its event: each service, rule action and admin action that writes a record a rule can
watch is walked here, and an active rule on the written model (model_updated / field_changed, or created /
deleted) must get a Run. The lists are checked against the code: a new public function of accounts.services, a
new action type or a new admin action fails ``test_it_walks_every_*`` until it is walked or said to write
nothing a rule watches."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Callable

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Account, HealthScore, JourneyStage, Tag
from automation import events
from automation.actions import actions
from automation.models import Run
from automation.subjects import WATCHED
from tests.factories import (
    AccountFactory, ContactFactory, EngagementFactory, GoalFactory, MembershipFactory, NoteFactory, OpportunityFactory,
    SupportTicketFactory, SurveyResponseFactory, TaskFactory, UsageMetricFactory, UserFactory, WorkflowFactory,
    health_score,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_events(django_capture_on_commit_callbacks):
    """Run the block, then process (on commit, as production does) every event it raised, and theirs."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def world(tenant):
    """An owned account with a score of 70 (moderate), in Onboarding, tagged at-risk; a second member."""
    owner = MembershipFactory(tenant=tenant).user
    account = AccountFactory(tenant=tenant, owner=owner, name="TechStart")
    health_score(account, usage_score=70, engagement_score=70, support_sentiment_score=70, adoption_score=70)
    services.journey_move_to_stage(account=account, stage=_stage(tenant, "Onboarding"))
    account.tags.add(Tag.objects.create(tenant=tenant, name="at-risk"))
    colleague = MembershipFactory(tenant=tenant, user__email="colleague@example.com").user
    return SimpleNamespace(tenant=tenant, account=account, owner=owner, colleague=colleague)


def _stage(tenant, name: str) -> JourneyStage:
    return JourneyStage.objects.for_tenant(tenant).get(name=name)


def watch(trigger_type: str, model_type: str = "account", **config) -> dict:
    return {"trigger_type": trigger_type, "model_type": model_type, "trigger_config": config}


@dataclass(frozen=True)
class WritePath:
    rule: dict  # the watching rule's trigger (WorkflowFactory fields)
    act: Callable  # act(world): the write
    setup: Callable = lambda w: None  # setup(world): what the write needs, done before the rule exists
    changed: str = ""  # the field whose old and new values the event must carry
    conditions: dict = field(default_factory=dict)


SCORES = {"usage_score": 40, "engagement_score": 40, "support_sentiment_score": 40, "adoption_score": 40}


def _expiring_adjustment(w):
    services.health_score_adjust(account=w.account, adjustment=-20, reason="outage", duration=timedelta(hours=1))


def _second_score(w):
    w.score = health_score(w.account, **SCORES)


def _goal(w):
    w.goal = GoalFactory(account=w.account)


# accounts.services: every public function that writes what a rule watches.
SERVICE_PATHS = {
    "account_save": WritePath(
        watch("field_changed", field="status", to="at_risk"),
        lambda w: services.account_save(account=w.account, changes={"status": "at_risk"}), changed="status"),
    "account_save(tags)": WritePath(
        watch("model_updated", fields=["tags"]),
        lambda w: services.account_save(account=w.account, changes={"tags": [
            Tag.objects.create(tenant=w.tenant, name="highly-engaged")]}),
        changed="tags",
        conditions={"field": "tags", "operator": "contains", "value": "highly-engaged"}),
    "health_score_record": WritePath(
        watch("field_changed", field="health_score"), lambda w: health_score(w.account, **SCORES),
        changed="health_score"),
    "health_score_delete": WritePath(
        watch("field_changed", field="health_score"), lambda w: services.health_score_delete(score=w.score),
        setup=_second_score, changed="health_score"),
    "health_score_adjust": WritePath(
        watch("field_changed", field="risk_level", to="critical"),
        lambda w: services.health_score_adjust(account=w.account, adjustment=-40, reason="outage"),
        changed="risk_level"),
    "health_adjustments_expire": WritePath(
        watch("field_changed", field="health_score"),
        lambda w: services.health_adjustments_expire(timezone.now() + timedelta(hours=2)),
        setup=_expiring_adjustment, changed="health_score"),
    "journey_move_to_stage": WritePath(
        watch("field_changed", field="current_stage"),
        lambda w: services.journey_move_to_stage(account=w.account, stage=_stage(w.tenant, "Adoption")),
        changed="current_stage"),
    "note_create": WritePath(
        watch("model_created", "note"), lambda w: services.note_create(account=w.account, body="Called")),
    "engagement_create": WritePath(
        watch("model_created", "engagement"),
        lambda w: services.engagement_create(account=w.account, kind="call", outcome="completed")),
    "task_create": WritePath(
        watch("model_created", "task"), lambda w: services.task_create(account=w.account, title="Follow up")),
    "goal_save": WritePath(
        watch("field_changed", "goal", field="status", to="achieved"),
        lambda w: services.goal_save(goal=w.goal, changes={"status": "achieved"}), setup=_goal, changed="status"),
}
SERVICES_WRITING_NOTHING_WATCHED = {
    "tenant_create": "tenants and their journey stages: no rule watches them",
    "tenant_update_settings": "tenant settings: no rule watches them",
    "membership_grant": "users and memberships: no rule watches them",
    "membership_set_role": "users and memberships: no rule watches them",
    "membership_revoke": "users and memberships: no rule watches them",
    "tenant_validate_health_settings": "validates, writes nothing",
    "account_validate_parent": "validates, writes nothing",
    "risk_level_for": "computes, writes nothing",
    "health_score_compute": "computes, writes nothing",
    "health_adjustments_due": "a read",
}

# Rule actions: a driving rule (on a probe event) runs the action; another rule watches what it wrote.
ACTION_PATHS = {
    "add_tag": ({"tag": "highly-engaged"}, WritePath(
        watch("model_updated", fields=["tags"]), None, changed="tags",
        conditions={"field": "tags", "operator": "contains", "value": "highly-engaged"})),
    "remove_tag": ({"tag": "at-risk"}, WritePath(watch("field_changed", field="tags"), None, changed="tags")),
    "update_field": ({"field": "industry", "value": "Retail"},
                     WritePath(watch("field_changed", field="industry", to="Retail"), None, changed="industry")),
    "create_task": ({"title": "Call {{ account.name }}"}, WritePath(watch("model_created", "task"), None)),
    "create_note": ({"body": "Checked in"}, WritePath(watch("model_created", "note"), None)),
    "create_opportunity": ({"kind": "renewal"}, WritePath(watch("model_created", "opportunity"), None)),
    "update_health_score": ({"adjustment": -10, "reason": "probe"},
                            WritePath(watch("field_changed", field="health_score"), None, changed="health_score")),
    "change_status": ({"new_status": "at_risk"},
                      WritePath(watch("field_changed", field="status"), None, changed="status")),
    "assign_to_user": ({"user": "colleague@example.com"},
                       WritePath(watch("field_changed", field="owner"), None, changed="owner")),
}
ACTIONS_WRITING_NOTHING_WATCHED = {
    "send_email": "writes an outbox message only",
    "send_sms": "writes an outbox message only",
    "webhook": "writes an outbox message only",
    "integration_action": "writes an outbox message only",
    "sync_to_external": "writes an outbox message only",
    "trigger_workflow": "runs another rule: its writes are that rule's actions, walked here",
    "add_to_cadence": "starts a CRM journey execution: no rule watches those",
    "convert_cadence": "converts CRM journey executions: no rule watches those",
    "record_playbook_execution": "records a playbook execution: no rule watches those",
}

# Admin actions, by "app.model:action" ("move_to_stage" stands for the per-stage "move_to_stage_<n>").
STAGE_ACTION = re.compile(r"^move_to_stage_\d+$")
ADMIN_ACTIONS_WRITING_NOTHING_WATCHED = {
    "automation.workflow:activate": "rules: no rule watches them",
    "automation.workflow:pause": "rules: no rule watches them",
    "automation.workflow:publish_drafts": "rules: no rule watches them",
    "automation.workflow:discard_drafts": "rules: no rule watches them",
    "automation.workflow:test_now": "a dry run, writes nothing",
    "automation.workflow:run_now_for_account": "opens the run page; the run's writes are its actions, walked here",
    "automation.run:replay": "fires a rule again: its writes are its actions, walked here",
    "automation.event:process_again": "automation events: no rule watches them",
    "crm.crmplaybookexecution:cancel_executions": "CRM journey executions: no rule watches them",
    "crm.crmplaybookexecution:convert_executions": "CRM journey executions: no rule watches them",
    "playbooks.playbooktrigger:test_now": "a dry run, writes nothing",
    "playbooks.playbook:trigger_for_account": "starts a SuccessPlay: its writes are its rule's actions, walked here",
    "delivery.outbox:requeue": "outbox messages: no rule watches them",
    "accounts.apitoken:revoke": "API tokens: no rule watches them",
    "delivery.emailtemplate:preview_selected": "a preview, writes nothing",
    "delivery.webhooksecret:rotate_for_tenant": "signing secrets: no rule watches them",
}
PROJECT_APPS = {"accounts", "automation", "crm", "delivery", "playbooks"}
WATCHED_FACTORIES = {
    "account": lambda w: AccountFactory(tenant=w.tenant),
    "contact": lambda w: ContactFactory(account=w.account),
    "task": lambda w: TaskFactory(account=w.account),
    "note": lambda w: NoteFactory(account=w.account),
    "goal": lambda w: GoalFactory(account=w.account),
    "engagement": lambda w: EngagementFactory(account=w.account),
    "supportticket": lambda w: SupportTicketFactory(account=w.account),
    "surveyresponse": lambda w: SurveyResponseFactory(account=w.account),
    "usagemetric": lambda w: UsageMetricFactory(account=w.account),
    "healthscore": lambda w: health_score(w.account, **SCORES),
    "opportunity": lambda w: OpportunityFactory(account=w.account),
}


def _rule_sees(w, run_events, path: WritePath, act: Callable, name: str) -> Run:
    path.setup(w)
    rule = WorkflowFactory(tenant=w.tenant, name=f"watches {name}", conditions=path.conditions, **path.rule)
    with run_events():
        act(w)
    runs = list(Run.objects.filter(workflow=rule).select_related("event"))
    assert [r.status for r in runs] == [Run.Status.SUCCESS], f"{name}: the write was invisible to a rule on it"
    if path.changed:
        change = runs[0].event.changes[path.changed]
        assert change["old"] != change["new"], change
    return runs[0]


@pytest.mark.parametrize("name", list(SERVICE_PATHS))
def test_it_lets_a_rule_see_what_a_service_writes(name, world, run_events):
    path = SERVICE_PATHS[name]
    _rule_sees(world, run_events, path, path.act, name)


@pytest.mark.parametrize("action_type", list(ACTION_PATHS))
def test_it_lets_a_rule_see_what_an_action_writes(action_type, world, run_events):
    config, path = ACTION_PATHS[action_type]
    WorkflowFactory(tenant=world.tenant, name=f"does {action_type}", trigger_type="event",
                    trigger_config={"event_type": "write_path_probe"},
                    actions=[{"type": action_type, "config": config}])

    def probe(w):
        events.emit(tenant_id=w.tenant.pk, type="write_path_probe", object_id=w.account.pk, account=w.account)

    run = _rule_sees(world, run_events, path, probe, action_type)
    assert run.depth == 1  # raised by the driving rule's action


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _admin_action(client, model, action: str, pks: list, **extra):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    response = client.post(url, {"action": action, "index": 0, "_selected_action": [str(pk) for pk in pks],
                                 **extra})
    assert response.status_code == 302, response.content[:500]


def test_it_lets_a_rule_see_the_admins_move_to_stage_action(world, run_events, admin_client):
    page = admin_client.get(reverse("admin:accounts_account_changelist"))
    action = next(key for key, label in page.context["action_form"].fields["action"].choices
                  if label == "Move to stage: Adoption")
    path = WritePath(watch("field_changed", field="current_stage"), None, changed="current_stage")
    _rule_sees(world, run_events, path, lambda w: _admin_action(admin_client, Account, action, [w.account.pk]),
               "move_to_stage")
    assert Account.objects.get(pk=world.account.pk).current_stage.name == "Adoption"


@pytest.mark.parametrize("model_name", sorted(WATCHED))
def test_it_lets_a_rule_see_the_admins_delete_selected_action(model_name, world, run_events, admin_client):
    row = WATCHED_FACTORIES[model_name](world)
    path = WritePath(watch("model_deleted", model_name), None)
    _rule_sees(world, run_events, path,
               lambda w: _admin_action(admin_client, type(row), "delete_selected", [row.pk], post="yes"),
               f"delete_selected {model_name}")
    assert not type(row).objects.filter(pk=row.pk).exists()


def test_it_keeps_the_accounts_score_when_the_admin_deletes_its_latest_score(world, run_events, admin_client):
    score = health_score(world.account, **SCORES)
    path = WritePath(watch("field_changed", field="health_score"), None, changed="health_score")
    run = _rule_sees(world, run_events, path,
                     lambda w: _admin_action(admin_client, HealthScore, "delete_selected", [score.pk], post="yes"),
                     "delete a score")
    assert run.event.changes["health_score"] == {"old": "40.00", "new": "70.00"}
    assert Account.objects.get(pk=world.account.pk).health_score == 70


def test_it_reports_the_health_score_and_risk_level_of_the_account_old_and_new(world, run_events):
    rule = WorkflowFactory(tenant=world.tenant, **watch("field_changed", fields=["health_score", "risk_level"]),
                           actions=[{"type": "create_note", "config": {"body": "{{ account.name }} dropped"}}])
    with run_events():
        health_score(world.account, **SCORES)
    event = Run.objects.get(workflow=rule).event
    assert event.changes == {"health_score": {"old": "70.00", "new": "40.00"},
                             "risk_level": {"old": "moderate", "new": "at_risk"}}
    assert world.account.notes.get().body == "TechStart dropped"


def test_it_keeps_the_score_a_rule_recorded_when_its_next_action_saves_the_account(world, run_events):
    rule = WorkflowFactory(tenant=world.tenant, trigger_type="event", trigger_config={"event_type": "write_path_probe"},
                           actions=[{"type": "update_health_score", "config": {"adjustment": -40, "reason": "outage"}},
                                    {"type": "change_status", "config": {"new_status": "at_risk"}}])
    with run_events():
        events.emit(tenant_id=world.tenant.pk, type="write_path_probe", object_id=world.account.pk,
                    account=world.account)
    assert Run.objects.get(workflow=rule).status == Run.Status.SUCCESS
    account = Account.objects.get(pk=world.account.pk)
    assert (account.status, account.health_score, account.risk_level) == ("at_risk", 30, "critical")


def test_it_reports_tag_changes_by_name_whichever_side_writes_them(world, run_events):
    rule = WorkflowFactory(tenant=world.tenant, **watch("model_updated", fields=["tags"]))
    vip = Tag.objects.create(tenant=world.tenant, name="vip")
    with run_events():
        vip.accounts.add(world.account)  # the tag's side of the relation
        world.account.tags.clear()
    changes = [run.event.changes["tags"] for run in Run.objects.filter(workflow=rule).order_by("created_at", "pk")]
    assert changes == [{"old": ["at-risk"], "new": ["at-risk", "vip"]}, {"old": ["at-risk", "vip"], "new": []}]


def test_it_reports_a_deleted_tag_as_an_update_of_its_accounts_and_contacts(world, run_events, admin_client):
    tag = Tag.objects.for_tenant(world.tenant).get(name="at-risk")
    contact = ContactFactory(account=world.account)
    contact.tags.add(tag, Tag.objects.create(tenant=world.tenant, name="champion"))
    on_accounts = WorkflowFactory(tenant=world.tenant, **watch("field_changed", field="tags"))
    on_contacts = WorkflowFactory(tenant=world.tenant, **watch("field_changed", "contact", field="tags"))
    with run_events():
        _admin_action(admin_client, Tag, "delete_selected", [tag.pk], post="yes")
    assert Run.objects.get(workflow=on_accounts).event.changes == {"tags": {"old": ["at-risk"], "new": []}}
    assert Run.objects.get(workflow=on_contacts).event.changes == {
        "tags": {"old": ["at-risk", "champion"], "new": ["champion"]}}


def test_it_fires_a_tags_rule_when_the_api_tags_an_account(world, run_events, api):
    rule = WorkflowFactory(tenant=world.tenant, **watch("field_changed", field="tags"),
                           conditions={"field": "tags", "operator": "contains", "value": "highly-engaged"},
                           actions=[{"type": "create_note", "config": {"body": "engaged"}}])
    tag = Tag.objects.create(tenant=world.tenant, name="highly-engaged")
    with run_events():
        response = api.patch(f"/api/accounts/{world.account.pk}/", {"tag_ids": [tag.pk]}, format="json")
    assert response.status_code == 200, response.content
    runs = list(Run.objects.filter(workflow=rule))
    assert [run.status for run in runs] == ["success"]  # set() removes, then adds: one change, one run
    assert runs[0].event.changes == {"tags": {"old": ["at-risk"], "new": ["highly-engaged"]}}
    assert world.account.notes.get().body == "engaged"


def test_it_writes_no_event_for_a_tag_change_nobody_listens_to(world, django_assert_num_queries):
    tag = Tag.objects.create(tenant=world.tenant, name="quiet")
    with django_assert_num_queries(2):  # which tags are there already, the insert: no read of the tags
        world.account.tags.add(tag)


# --- the lists above are complete -----------------------------------------------------------------

def test_it_walks_every_public_function_of_the_accounts_services():
    public = {name for name, fn in inspect.getmembers(services, inspect.isfunction)
              if fn.__module__ == services.__name__ and not name.startswith("_")}
    walked = {name.split("(")[0] for name in SERVICE_PATHS}
    assert public - walked - set(SERVICES_WRITING_NOTHING_WATCHED) == set()
    assert (walked | set(SERVICES_WRITING_NOTHING_WATCHED)) - public == set()


def test_it_walks_every_action_type():
    assert set(actions.keys()) == set(ACTION_PATHS) | set(ACTIONS_WRITING_NOTHING_WATCHED)


def test_it_walks_every_admin_action(world):
    """Deleting the rows of a watched model is walked above; deleting rows of a model no rule watches (tags
    aside, walked above) cannot be seen by a rule. Every other admin action must be listed."""
    request = RequestFactory().get("/admin/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    offered = {f"{model._meta.label_lower}:{STAGE_ACTION.sub('move_to_stage', name)}"
               for model, model_admin in admin.site._registry.items() if model._meta.app_label in PROJECT_APPS
               for name in model_admin.get_actions(request)}
    walked = {"accounts.account:move_to_stage"}
    unlisted = {key for key in offered - walked - set(ADMIN_ACTIONS_WRITING_NOTHING_WATCHED)
                if not key.endswith(":delete_selected")}
    assert unlisted == set()
    assert walked <= offered
    assert {f"{label.lower()}:delete_selected" for label in WATCHED.values()} <= offered
