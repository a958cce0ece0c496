"""Per-action delays (automation.waits): the run waits before the action as a queued row and resumes there."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from accounts.models import Note, Role
from automation import scheduling
from automation.models import Run
from tests.factories import AccountFactory, MembershipFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

TRIGGERS = "/api/event-triggers"


def later(minutes: int):
    return timezone.now() + datetime.timedelta(minutes=minutes)


def change(account, capture, industry="Aerospace"):
    with capture(execute=True):
        account.industry = industry
        account.save()


def rule_body(*actions, **extra) -> dict:
    return {"name": "Waits", "trigger_type": "model_updated", "model_type": "account",
            "action_configuration": {"actions": list(actions)}, "is_active": True, **extra}


def test_any_action_may_wait_and_a_bad_delay_is_refused_at_save(api):
    ok = api.post(TRIGGERS, rule_body({"type": "add_tag", "tag": "later", "delay": "2h"}), format="json")
    assert ok.status_code == 201, ok.json()
    assert ok.json()["action_configuration"]["actions"][0]["delay"] == "2h"
    bad = api.post(TRIGGERS, rule_body({"type": "create_note", "content": "x", "delay": "soon"}), format="json")
    assert bad.status_code == 400 and "action_configuration.actions[0].delay" in bad.json()


def test_a_run_waits_before_the_action_and_resumes_there(api, tenant, django_capture_on_commit_callbacks):
    api.post(TRIGGERS, rule_body({"type": "create_note", "content": "now"},
                                 {"type": "create_note", "content": "an hour later", "delay": "1h"}), format="json")
    account = AccountFactory(tenant=tenant)
    change(account, django_capture_on_commit_callbacks)
    assert list(Note.objects.values_list("body", flat=True)) == ["now"]
    run = Run.objects.get()
    assert (run.status, run.start_position) == ("queued", 1)
    assert scheduling.run_due_runs(later(30)) == 0
    assert scheduling.run_due_runs(later(61)) == 1
    run.refresh_from_db()
    assert run.status == "success" and sorted(Note.objects.values_list("body", flat=True)) == ["an hour later", "now"]
    assert list(run.steps.order_by("position").values_list("position", "status")) == [(0, "success"), (1, "success")]


def test_a_failure_before_the_wait_still_fails_the_run_when_it_resumes(api, tenant, django_capture_on_commit_callbacks):
    leaver = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER, user__email="leaver@example.com")
    api.post(TRIGGERS, rule_body({"type": "assign_to_user", "user_id": "leaver@example.com"},
                                 {"type": "create_note", "content": "later", "delay": "1h"},
                                 continue_on_error=True), format="json")
    leaver.delete()
    change(AccountFactory(tenant=tenant), django_capture_on_commit_callbacks)
    scheduling.run_due_runs(later(61))
    run = Run.objects.get(attempt=1)
    assert run.status == "failed" and "leaver@example.com" in run.error
    assert run.result["failed_steps"] == [0]


def test_a_rule_started_by_another_waits_too_but_run_now_does_not(api, tenant, django_capture_on_commit_callbacks):
    target = WorkflowFactory(tenant=tenant, name="Target", trigger_type="manual", model_type="",
                             actions=[{"type": "create_note", "config": {"body": "target", "delay": "1h"}}])
    api.post(TRIGGERS, rule_body({"type": "trigger_workflow", "workflow_id": target.pk}), format="json")
    account = AccountFactory(tenant=tenant)
    change(account, django_capture_on_commit_callbacks)
    assert Run.objects.get(workflow=target).status == "queued" and not Note.objects.exists()
    executed = api.post("/api/admin/automation/execute", {"workflow_id": target.pk, "account_id": str(account.pk)})
    assert executed.json()["status"] == "success" and Note.objects.count() == 1


def test_a_rule_whose_assignee_left_can_still_be_paused(api, tenant):
    leaver = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER, user__email="leaver@example.com")
    rule = api.post(TRIGGERS, rule_body({"type": "assign_to_user", "user_id": "leaver@example.com"}),
                    format="json").json()
    leaver.delete()
    paused = api.patch(f"{TRIGGERS}/{rule['id']}", {"is_active": False}, format="json")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    again = api.patch(f"{TRIGGERS}/{rule['id']}", {"is_active": True}, format="json")
    assert again.status_code == 400 and "leaver@example.com" in str(again.json())
