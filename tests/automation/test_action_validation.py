"""Issue 12: what can be known when a rule is saved is checked then (a 400 naming the field); every option of
seed 001's and seed 003's actions and triggers does what it says or is refused; what only the run can know
fails the step with a clear message."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from accounts.models import Account, Note, Role, Task
from automation.models import Run
from delivery.models import Outbox
from tests.factories import (
    AccountFactory, ContactFactory, EmailTemplateFactory, EngagementFactory, MembershipFactory, TaskFactory,
    TenantFactory,
)

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/admin/automation"
TRIGGERS = "/api/event-triggers"


def seed_003_rule(api, *actions, **fields):
    body = {"name": "Rule", "trigger_type": "manual", "is_active": True, **fields,
            "action_configuration": {"actions": list(actions)}}
    return api.post(TRIGGERS, body, format="json")


def execute(api, rule_id, account) -> dict:
    response = api.post(f"{WORKFLOWS}/execute", {"workflow_id": rule_id, "account_id": str(account.pk)}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


# --- refused at save ------------------------------------------------------------------------------------

@pytest.mark.parametrize("action, key, says", [
    ({"type": "assign_to_user", "user_id": 999999}, "user_id", "not a member of this tenant"),
    ({"type": "assign_to_user", "user_id": "regional_overlord"}, "user_id", "sales_manager"),
    ({"type": "assign_to_user", "user": "outsider@other.test"}, "user", "not a member of this tenant"),
    ({"type": "create_task", "title": "Call", "assigned_to": "outsider@other.test"}, "assigned_to", "not a member"),
    ({"type": "create_task", "title": "Call", "due_days": "soon"}, "due_days", "whole number"),
    ({"type": "update_field", "field": "status", "value": "marketing_qualified"}, "value", "at_risk"),
    ({"type": "update_field", "field": "renewal_date", "value": "next spring"}, "value", "renewal_date"),
    ({"type": "update_field", "field": "arr", "value": 5}, "field", "cannot be updated"),
    ({"type": "update_field", "field": "status", "value": "active",
      "variable_mappings": {"last_contact": {"source": "computed"}}}, "variable_mappings", "unknown setting"),
    ({"type": "send_email", "template_id": "welcome_template"}, "template_id", "does not exist in this tenant"),
    ({"type": "send_email", "template_id": "welcome_email", "priority": "urgent"}, "priority", "high"),
    ({"type": "send_sms", "template_id": 999999, "recipient": "entity_phone"}, "template_id", "does not exist"),
    ({"type": "create_note", "content": "x", "is_private": True}, "is_private", "only false"),
    ({"type": "create_note", "content": "x", "created_by": "outsider@other.test"}, "created_by", "not a member"),
    ({"type": "trigger_workflow", "workflow_id": 999999}, "workflow_id", "does not exist in this tenant"),
    ({"type": "change_status", "new_status": "churned", "notify_team": "yes"}, "notify_team", "true or false"),
    ({"type": "webhook", "url": "https://hooks.example.com/x", "colour": "red"}, "colour", "unknown setting"),
])
def test_it_refuses_at_save_what_would_fail_at_run_time_naming_the_field(api, tenant, action, key, says):
    MembershipFactory(tenant=TenantFactory(), user__username="outsider@other.test")  # another tenant's member
    response = seed_003_rule(api, action)
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [f"action_configuration.actions[0].{key}"], errors
    assert says in errors[f"action_configuration.actions[0].{key}"][0]
    assert not Run.objects.exists()


@pytest.mark.parametrize("trigger, config, key", [
    ("account_created", {"status": "hibernating"}, "status"),  # neither a status nor one of the tenant's stages
    ("account_created", {"colour": "red"}, "colour"),
    ("model_created", {"model_type": "contact", "source": "web"}, "source"),
    ("health_score_change", {"threshold": 60, "window": "1d"}, "window"),
    ("engagement_event", {"event_type": "no_response", "time_threshold": "soon"}, "time_threshold"),
    ("time_based", {"schedule": "daily", "check_every": "1h"}, "check_every"),
    ("manual", {"anything": 1}, "anything"),
])
def test_it_refuses_a_trigger_setting_that_means_nothing(api, trigger, config, key):
    response = api.post(WORKFLOWS, {"name": "x", "trigger_type": trigger, "trigger_config": config}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [f"trigger_config.{key}"], response.json()


def test_it_accepts_seed_003s_role_names_templates_and_a_members_email(api, tenant):
    member = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user
    response = seed_003_rule(
        api, {"type": "assign_to_user", "user_id": "sales_manager"},
        {"type": "assign_to_user", "user_id": "senior_sales_rep"},
        {"type": "assign_to_user", "user_id": "senior_account_manager"},
        {"type": "create_task", "title": "Onboard", "assigned_to": "customer_success_team"},
        {"type": "create_task", "title": "Re-engage", "assigned_to": "{{ entity.assigned_to }}"},
        {"type": "create_task", "title": "Call", "assigned_to": member.email.upper()},
        {"type": "create_task", "title": "Call", "assigned_to": member.pk})
    assert response.status_code == 201, response.json()


# --- who gets the work ----------------------------------------------------------------------------------

def test_it_gives_accounts_to_the_sales_managers_in_turn(api, tenant):
    admins = sorted([api.user, *(MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user for _ in range(2))],
                    key=lambda user: user.pk)
    MembershipFactory(tenant=tenant, role=Role.PRACTITIONER)  # not a sales manager
    TaskFactory(account=AccountFactory(tenant=tenant), assignee=admins[0], title="busy")  # one open task: the others go first
    rule = seed_003_rule(api, {"type": "assign_to_user", "user_id": "sales_manager"}).json()
    accounts = AccountFactory.create_batch(3, tenant=tenant)

    for account in accounts:
        execute(api, rule["id"], account)

    owners = [Account.objects.get(pk=a.pk).owner for a in accounts]
    assert owners == [admins[1], admins[2], admins[0]]


def test_it_gives_a_teams_task_to_the_owner_when_the_owner_is_on_that_team(api, tenant):
    csm = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user
    other_csm = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user
    TaskFactory(account=AccountFactory(tenant=tenant), assignee=csm, title="busy")
    by_a_csm = AccountFactory(tenant=tenant, owner=other_csm)
    by_an_admin = AccountFactory(tenant=tenant, owner=api.user)  # an admin is not on the CS team
    rule = seed_003_rule(api, {"type": "create_task", "title": "Schedule onboarding call",
                               "assigned_to": "customer_success_team"}).json()

    execute(api, rule["id"], by_a_csm)
    execute(api, rule["id"], by_an_admin)

    assert Task.objects.get(account=by_a_csm).assignee == other_csm
    # The CSM with the least work: other_csm now owns an account and has its task, csm one task.
    assert Task.objects.get(account=by_an_admin).assignee == csm


def test_it_resolves_a_template_assignee_when_the_rule_runs_and_says_so_when_it_names_nobody(api, tenant):
    csm = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user
    owned, unowned = AccountFactory(tenant=tenant, owner=csm), AccountFactory(tenant=tenant)
    rule = seed_003_rule(api, {"type": "create_task", "title": "Re-engage", "assigned_to": "{{ entity.owner }}"}).json()

    assert execute(api, rule["id"], owned)["status"] == "success"
    failed = execute(api, rule["id"], unowned)

    assert Task.objects.get(account=owned).assignee == csm
    assert failed["status"] == "failed"
    assert "{{ entity.owner }}" in failed["steps"][0]["error"]
    assert "neither a member's id nor email" in failed["steps"][0]["error"]


def test_it_fails_the_step_clearly_when_a_member_left_after_the_rule_was_saved(api, tenant):
    leaver = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER)
    rule = seed_003_rule(api, {"type": "assign_to_user", "user_id": leaver.user.email}).json()
    leaver.delete()
    run = execute(api, rule["id"], AccountFactory(tenant=tenant))
    assert run["status"] == "failed"
    assert run["steps"][0]["error"] == f"'{leaver.user.email}' is not a member of this tenant"


# --- the other options ----------------------------------------------------------------------------------

def test_it_updates_a_field_of_the_rules_subject_with_a_checked_value(api, tenant):
    account = AccountFactory(tenant=tenant, status=Account.Status.ACTIVE)
    on_contacts = seed_003_rule(api, {"type": "update_field", "field": "status", "value": "at_risk"},
                                trigger_type="model_created", model_type="App\\Models\\Contact")
    rule = seed_003_rule(api, {"type": "update_field", "field": "status", "value": "at_risk"}).json()

    run = execute(api, rule["id"], account)

    assert on_contacts.status_code == 400  # at_risk is an account status, not a contact's
    assert "is not a valid contact status" in on_contacts.json()["action_configuration.actions[0].value"][0]
    assert run["status"] == "success"
    assert Account.objects.get(pk=account.pk).status == "at_risk"


def test_it_sends_to_the_accounts_primary_contact_with_the_priority_asked_for(api, tenant):
    account = AccountFactory(tenant=tenant)
    ContactFactory(account=account, email="second@client.test")
    ContactFactory(account=account, email="primary@client.test", is_primary=True)
    template = EmailTemplateFactory(tenant=tenant, name="Welcome")
    rule = seed_003_rule(api, {"type": "send_email", "template_id": template.pk, "priority": "high"}).json()

    run = execute(api, rule["id"], account)

    assert run["status"] == "success", run["steps"]
    message = Outbox.objects.get()
    assert message.target == "primary@client.test"
    assert (message.payload["headers"]["X-Priority"], message.payload["headers"]["Importance"]) == (
        "1 (Highest)", "high")


def test_it_fails_the_step_clearly_when_the_primary_contact_has_no_email(api, tenant):
    account = AccountFactory(tenant=tenant, name="Globex")
    ContactFactory(account=account, name="Ada Lovelace", email="", is_primary=True)
    rule = api.post(WORKFLOWS, {"name": "Welcome", "trigger_type": "account_created", "status": "active",
                                "action_type": "send_email", "action_config": {"template_id": "welcome_email"}},
                    format="json")
    assert rule.status_code == 201, rule.json()

    run = execute(api, rule.json()["id"], account)

    assert run["status"] == "failed"
    assert run["steps"][0]["error"] == ("send_email: no recipient: contact 'Ada Lovelace' of account 'Globex' has "
                                        "no email address; nothing was sent")
    assert not Outbox.objects.exists()


def test_it_writes_a_note_as_the_member_named_and_tells_the_owner_of_a_status_change(api, tenant):
    csm = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user
    account = AccountFactory(tenant=tenant, owner=csm, name="Globex", status=Account.Status.ACTIVE)
    rule = api.post(WORKFLOWS, {"name": "Churn", "trigger_type": "manual", "status": "active", "actions": [
        {"type": "create_note", "config": {"body": "Noted", "created_by": csm.email, "is_private": False}},
        {"type": "change_status", "config": {"new_status": "churned", "reason": "Lost to {{ account.industry }}",
                                              "notify_team": True}}]}, format="json").json()

    run = execute(api, rule["id"], account)

    assert run["status"] == "success", run["steps"]
    assert Note.objects.get(body="Noted").author == csm
    task = Task.objects.get()
    assert (task.assignee, task.title) == (csm, "Globex: status changed from active to churned")
    assert task.description == f"Lost to {account.industry}"


def test_it_passes_the_rendered_context_to_the_workflow_it_triggers(api, tenant):
    chained = api.post(WORKFLOWS, {"name": "Chained", "trigger_type": "manual", "status": "active", "actions": [
        {"type": "create_note", "config": {"body": "from {{ custom.original_event }}"}}]}, format="json").json()
    rule = seed_003_rule(api, {"type": "trigger_workflow", "workflow_id": chained["id"],
                               "context": {"original_event": "{{ trigger_event }}"}}).json()

    execute(api, rule["id"], AccountFactory(tenant=tenant))

    assert Note.objects.get().body == "from manual"


# --- triggers ---------------------------------------------------------------------------------------------

def test_it_fires_account_created_only_for_the_statuses_it_names(api, tenant, django_capture_on_commit_callbacks):
    response = api.post(WORKFLOWS, {"name": "Trials", "trigger_type": "account_created", "status": "active",
                                    "trigger_config": {"status": ["trial"]}, "action_type": "create_note",
                                    "action_config": {"body": "New trial"}}, format="json")
    assert response.status_code == 201, response.json()

    with django_capture_on_commit_callbacks(execute=True):
        trial = AccountFactory(tenant=tenant, status=Account.Status.TRIAL)
        AccountFactory(tenant=tenant, status=Account.Status.ACTIVE)

    assert list(Note.objects.values_list("account", flat=True)) == [trial.pk]


@pytest.mark.parametrize("event_type, outcome, days_ago, fires", [
    ("no_response", "no_response", 5, True),    # silent for 5 days: at least the 3 days asked for
    ("no_response", "no_response", 1, False),   # marked after one day: not silent long enough
    ("meeting_missed", "missed", 1, True),      # a recent miss
    ("meeting_missed", "missed", 5, False),     # an old miss recorded late starts nothing
])
def test_it_measures_an_engagements_time_threshold_from_when_it_occurred(
        api, tenant, django_capture_on_commit_callbacks, event_type, outcome, days_ago, fires):
    response = api.post(WORKFLOWS, {"name": "Re-engage", "trigger_type": "engagement_event", "status": "active",
                                    "trigger_config": {"event_type": event_type, "time_threshold": "3d",
                                                       "engagement_types": ["email", "meeting"]},
                                    "action_type": "create_note", "action_config": {"body": "Re-engage"}},
                        format="json")
    assert response.status_code == 201, response.json()
    account = AccountFactory(tenant=tenant)

    with django_capture_on_commit_callbacks(execute=True):
        EngagementFactory(account=account, kind="email", outcome=outcome,
                          occurred_at=timezone.now() - datetime.timedelta(days=days_ago))

    assert Note.objects.filter(body="Re-engage").exists() is fires
