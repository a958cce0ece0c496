"""What only fails at run time reaches a person: a clear step error, and after three failed runs in a row one
task for the rule's owner (automation.breaker); the circuit breaker still pauses at failure_threshold."""

from __future__ import annotations

import pytest

from accounts.models import Role, Task
from automation.models import Run, Workflow
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db

TRIGGERS = "/api/event-triggers"


@pytest.fixture
def assigning_rule(member_client, tenant):
    """A rule made by a CSM that assigns accounts to a member who then leaves the tenant."""
    csm = member_client(tenant, Role.TENANT_ADMIN)
    leaver = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER, user__email="leaver@example.com")
    body = {"name": "Assign on change", "trigger_type": "model_updated", "model_type": "account",
            "action_configuration": {"actions": [{"type": "assign_to_user", "user_id": "leaver@example.com"}]},
            "is_active": True}
    response = csm.post(TRIGGERS, body, format="json")
    assert response.status_code == 201, response.json()
    leaver.delete()
    return Workflow.objects.get(pk=response.json()["id"]), csm.user


def change(account, industry, capture):
    with capture(execute=True):
        account.industry = industry
        account.save()


def test_three_failed_runs_in_a_row_make_one_task_for_the_rules_owner(
        tenant, assigning_rule, django_capture_on_commit_callbacks):
    rule, owner = assigning_rule
    account = AccountFactory(tenant=tenant)
    for n, industry in enumerate(["A", "B", "C", "D", "E"], start=1):
        change(account, industry, django_capture_on_commit_callbacks)
        failing = Task.objects.filter(source=f"workflow:{rule.pk}:failing")
        assert failing.count() == (0 if n < 3 else 1)  # one task, however many more failures follow

    run = Run.objects.filter(workflow=rule).first()
    assert run.status == "failed" and "leaver@example.com" in run.error and "Traceback" not in run.error
    task = failing.get()
    assert task.assignee == owner and "Assign on change" in task.title and "leaver@example.com" in task.description
    rule.refresh_from_db()
    assert rule.status == "active"  # below failure_threshold (10): not paused


def test_a_new_task_comes_once_the_first_is_done(tenant, assigning_rule, django_capture_on_commit_callbacks):
    rule, _ = assigning_rule
    account = AccountFactory(tenant=tenant)
    for industry in "ABC":
        change(account, industry, django_capture_on_commit_callbacks)
    Task.objects.filter(source=f"workflow:{rule.pk}:failing").update(status="done")
    for industry in "DEF":
        change(account, industry, django_capture_on_commit_callbacks)
    assert Task.objects.filter(source=f"workflow:{rule.pk}:failing").count() == 2


def test_the_circuit_breaker_still_pauses_at_the_threshold(tenant, assigning_rule, django_capture_on_commit_callbacks):
    rule, _ = assigning_rule
    Workflow.objects.filter(pk=rule.pk).update(failure_threshold=2)
    admin = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user
    account = AccountFactory(tenant=tenant)
    for industry in "AB":
        change(account, industry, django_capture_on_commit_callbacks)
    rule.refresh_from_db()
    assert rule.status == "paused"
    assert Task.objects.filter(source=f"workflow:{rule.pk}", assignee=admin).count() == 1
