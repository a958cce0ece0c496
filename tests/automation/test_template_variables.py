"""One context for every run kind (automation.variables): a note rendering the same variables comes out the
same whichever door started the run. Backtests run no actions, so render nothing."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from accounts.models import Account, Note
from automation import scheduling
from automation.models import Run
from tests.factories import AccountFactory, ContactFactory, MembershipFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/admin/automation"
BODY = "E={{ entity.name }} A={{ account.name }} C={{ contact.name }} T={{ trigger_event }} W={{ workflow.name }}"
NOTE = [{"type": "create_note", "config": {"body": BODY}}]


@pytest.fixture
def globex(tenant):
    account = AccountFactory(tenant=tenant, name="Globex", industry="Retail")
    ContactFactory(account=account, name="Ada Lovelace", is_primary=True)
    return account


def rule(tenant, trigger_type="model_updated", **data):
    data.setdefault("model_type", "account" if trigger_type in ("model_updated", "field_changed") else "")
    return WorkflowFactory(tenant=tenant, name="Vars", trigger_type=trigger_type, actions=NOTE, **data)


def expected(trigger: str, entity: str = "Globex") -> str:
    return f"E={entity} A=Globex C=Ada Lovelace T={trigger} W=Vars"


def last_note() -> str:
    return Note.objects.order_by("-id").values_list("body", flat=True).first()


def make_stale(account):
    Account.objects.filter(pk=account.pk).update(updated_at=timezone.now() - datetime.timedelta(days=30))


def test_an_event_run(tenant, globex, django_capture_on_commit_callbacks):
    rule(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        globex.industry = "Software"
        globex.save()
    assert last_note() == expected("model_updated")


def test_a_time_based_run(tenant, globex):
    make_stale(globex)
    rule(tenant, "time_based", trigger_config={"check_every": "1h"},
         conditions=[{"field": "updated_at", "operator": "less_than", "value": "7 days ago"}])
    assert scheduling.run_scheduled_rules(timezone.now()).runs == 1
    assert last_note() == expected("time_based")


def test_a_scheduled_run(tenant, globex):
    rule(tenant, "scheduled", trigger_config={"schedule": "daily", "time": "09:00", "timezone": "UTC"})
    scheduling.run_scheduled_rules(datetime.datetime(2030, 7, 1, 9, 30, tzinfo=datetime.timezone.utc))
    assert last_note() == expected("scheduled")


def test_a_manual_run(api, tenant, globex):
    workflow = rule(tenant, "manual")
    response = api.post(f"{WORKFLOWS}/execute", {"workflow_id": workflow.pk, "account_id": str(globex.pk)})
    assert response.status_code == 201, response.json()
    assert last_note() == expected("manual")


def test_a_webhook_run_reads_its_body_as_the_entity(client, tenant, globex):
    workflow = rule(tenant, "webhook")
    response = client.post(f"/api/hooks/{workflow.webhook_token}/", {"name": "Lead 7", "account_id": str(globex.pk)},
                           content_type="application/json")
    assert response.status_code in (200, 201, 202), response.content
    assert last_note() == expected("webhook", entity="Lead 7"), list(Run.objects.values("status", "error", "skip_reason"))


def test_a_delayed_run(tenant, globex, django_capture_on_commit_callbacks):
    rule(tenant, delay_minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        globex.industry = "Software"
        globex.save()
    assert last_note() is None
    scheduling.run_due_runs(timezone.now() + datetime.timedelta(minutes=6))
    assert last_note() == expected("model_updated")


def test_a_debounced_run(tenant, globex, django_capture_on_commit_callbacks):
    rule(tenant, trigger_config={"debounce_seconds": 60})
    with django_capture_on_commit_callbacks(execute=True):
        globex.industry = "Software"
        globex.save()
    scheduling.run_due_runs(timezone.now() + datetime.timedelta(minutes=2))
    assert last_note() == expected("model_updated")


def test_a_retried_run(tenant, globex, django_capture_on_commit_callbacks):
    """The first attempt fails after its note (the assignee left the tenant), the retry renders it again."""
    late = MembershipFactory(tenant=tenant, user__email="late@example.com")
    WorkflowFactory(tenant=tenant, name="Vars", trigger_type="model_updated", model_type="account",
                    actions=[*NOTE, {"type": "assign_to_user", "config": {"user": "late@example.com"}}],
                    allow_retries=True, continue_on_error=True, retry_configuration={"max_retries": 1, "delay_minutes": 1})
    late.delete()  # removed after the rule was saved: the assignment fails at run time
    with django_capture_on_commit_callbacks(execute=True):
        globex.industry = "Software"
        globex.save()
    assert Run.objects.filter(status="failed").exists()
    scheduling.run_due_runs(timezone.now() + datetime.timedelta(minutes=2))
    assert Run.objects.filter(attempt=2).exists()
    assert last_note() == expected("model_updated")
