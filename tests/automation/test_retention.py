"""Retention (automation/retention.py, ``manage.py purge_history``): each table's rule, the tenant's policy over
the defaults, and what is never deleted (pending events, queued or running runs, messages still to deliver)."""

import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLog, Role
from automation import retention
from automation.models import Event, RetentionPolicy, Run, RunStep
from automation.periodic import periodic_specs
from delivery.models import EmailEvent, Outbox
from playbooks.models import PlaybookExecution
from tests.factories import (
    AccountFactory, EventFactory, OutboxFactory, RunFactory, TenantFactory, WorkflowFactory, staff,
)

pytestmark = pytest.mark.django_db


def days_ago(days: float) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days)


def alive(model, *rows) -> list[bool]:
    return [model._base_manager.filter(pk=row.pk).exists() for row in rows]


def test_it_deletes_processed_events_after_30_days_and_never_pending_or_set_aside_ones(tenant):
    old = EventFactory(tenant=tenant, created_at=days_ago(31), processed_at=days_ago(31))
    recent = EventFactory(tenant=tenant, created_at=days_ago(29), processed_at=days_ago(29))
    pending = EventFactory(tenant=tenant, created_at=days_ago(400))
    set_aside = EventFactory(tenant=tenant, created_at=days_ago(400), failed_at=days_ago(399), attempts=5)
    run = RunFactory(workflow=WorkflowFactory(tenant=tenant), status="success", event=old, created_at=days_ago(31))
    result = retention.purge_history()
    assert result.deleted["events"] == 1
    assert alive(Event, old, recent, pending, set_aside) == [False, True, True, True]
    run.refresh_from_db()
    assert run.event_id is None  # the run stays (180 days) and no longer points at the event


def test_it_deletes_finished_runs_and_their_steps_after_180_days_and_never_waiting_ones(tenant):
    rule = WorkflowFactory(tenant=tenant)
    finished = [RunFactory(workflow=rule, status=status, created_at=days_ago(181)) for status in ("success", "failed",
                                                                                                  "skipped")]
    queued = RunFactory(workflow=rule, status="queued", created_at=days_ago(400), scheduled_for=days_ago(-1))
    running = RunFactory(workflow=rule, status="running", created_at=days_ago(400))
    recent = RunFactory(workflow=rule, status="success", created_at=days_ago(179))
    retry = RunFactory(workflow=rule, status="failed", created_at=days_ago(100), retry_of=finished[1])
    play = PlaybookExecution.objects.create(tenant=tenant, account=AccountFactory(tenant=tenant), run=finished[0])
    for run in (*finished, queued, recent):
        RunStep.objects.create(tenant=tenant, run=run, position=0, action_type="create_note", status="success")
    result = retention.purge_history()
    assert (result.deleted["runs"], result.deleted["run_steps"]) == (3, 3)
    assert alive(Run, *finished, queued, running, recent, retry) == [False, False, False, True, True, True, True]
    assert RunStep.objects.filter(run__in=[queued, recent]).count() == 2
    retry.refresh_from_db()
    play.refresh_from_db()
    assert retry.retry_of_id is None and play.run_id is None  # rows that pointed at a purged run stay


def test_it_deletes_delivered_messages_after_30_days_dead_after_90_and_never_ones_still_to_deliver(tenant):
    S = Outbox.Status
    delivered_old = OutboxFactory(tenant=tenant, status=S.DELIVERED, created_at=days_ago(31))
    delivered_recent = OutboxFactory(tenant=tenant, status=S.DELIVERED, created_at=days_ago(29))
    dead_old = OutboxFactory(tenant=tenant, status=S.DEAD, created_at=days_ago(91))
    dead_recent = OutboxFactory(tenant=tenant, status=S.DEAD, created_at=days_ago(60))
    waiting = [OutboxFactory(tenant=tenant, status=status, created_at=days_ago(400))
               for status in (S.PENDING, S.SENDING, S.FAILED)]
    opened = EmailEvent.objects.create(tenant=tenant, message=delivered_old, kind=EmailEvent.Kind.OPEN)
    result = retention.purge_history()
    assert (result.deleted["delivered_messages"], result.deleted["dead_messages"]) == (1, 1)
    assert alive(Outbox, delivered_old, delivered_recent, dead_old, dead_recent, *waiting) == [
        False, True, False, True, True, True, True]
    opened.refresh_from_db()
    assert opened.message_id is None  # the open stays, without its message


def test_it_deletes_audit_log_entries_after_two_years(tenant):
    old = AuditLog.objects.create(tenant=tenant, action="update", object_type="x.y", created_at=days_ago(731))
    kept = AuditLog.objects.create(tenant=tenant, action="update", object_type="x.y", created_at=days_ago(700))
    assert retention.purge_history().deleted["audit_log"] == 1
    assert alive(AuditLog, old, kept) == [False, True]


def test_a_tenants_policy_overrides_the_defaults_for_that_tenant_only(tenant, other_tenant):
    RetentionPolicy.objects.create(tenant=tenant, events_days=7, audit_log_days=None)
    mine = EventFactory(tenant=tenant, created_at=days_ago(8), processed_at=days_ago(8))
    theirs = EventFactory(tenant=other_tenant, created_at=days_ago(8), processed_at=days_ago(8))
    result = retention.purge_history()
    assert alive(Event, mine, theirs) == [False, True]
    assert result.by_tenant[tenant.slug]["events"] == 1 and result.by_tenant[other_tenant.slug]["events"] == 0
    assert RetentionPolicy.objects.get(tenant=tenant).effective() == {
        "events": 7, "runs": 180, "delivered_messages": 30, "dead_messages": 90, "audit_log": 730}


def test_it_deletes_in_batches_of_ids(tenant, settings):
    settings.RETENTION_BATCH = 2
    rows = [EventFactory(tenant=tenant, created_at=days_ago(40 + i), processed_at=days_ago(40)) for i in range(5)]
    with CaptureQueriesContext(connection) as queries:
        result = retention.purge_history()
    assert result.deleted["events"] == 5 and not any(alive(Event, *rows))
    deletes = [q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "automation_event"')]
    assert len(deletes) == 3  # 2 + 2 + 1, each its own statement (and transaction)


def test_it_stops_at_its_budget_and_goes_on_next_time(tenant):
    rule = WorkflowFactory(tenant=tenant)
    rows = [RunFactory(workflow=rule, status="success", created_at=days_ago(200 + i)) for i in range(3)]
    first = retention.purge_history(batch=1, budget=1e-9)  # runs are purged first: one batch, then the budget is spent
    assert not first.finished and first.deleted["runs"] == 1
    assert retention.purge_history(batch=1).finished
    assert not any(alive(Run, *rows))


def test_a_dry_run_counts_and_deletes_nothing(tenant):
    event = EventFactory(tenant=tenant, created_at=days_ago(31), processed_at=days_ago(31))
    run = RunFactory(workflow=WorkflowFactory(tenant=tenant), status="success", created_at=days_ago(200))
    RunStep.objects.create(tenant=tenant, run=run, position=0, action_type="create_note", status="success")
    out = StringIO()
    call_command("purge_history", "--dry-run", stdout=out)
    assert f"{tenant.slug}: would delete 1 runs, 1 run_steps, 1 events" in out.getvalue()
    assert alive(Event, event) == [True] and alive(Run, run) == [True]


def test_the_command_purges_one_tenant_and_says_how_fast(tenant, other_tenant):
    mine = EventFactory(tenant=tenant, created_at=days_ago(31), processed_at=days_ago(31))
    theirs = EventFactory(tenant=other_tenant, created_at=days_ago(31), processed_at=days_ago(31))
    out = StringIO()
    call_command("purge_history", "--tenant", tenant.slug, stdout=out)
    assert alive(Event, mine, theirs) == [False, True]
    assert "total: deleted 1 events in " in out.getvalue() and "rows/s" in out.getvalue()


def test_it_runs_hourly_from_beat():
    spec = next(s for s in periodic_specs() if s.task == retention.TASK)
    assert spec.cron_minute == "17" and spec.expire_seconds >= 3000


def test_the_beat_task_returns_only_what_it_deleted(tenant):
    EventFactory(tenant=tenant, created_at=days_ago(31), processed_at=days_ago(31))
    assert retention.purge_history_task.apply().get() == {"events": 1}
    assert retention.purge_history_task.apply().get() == {}


def test_a_new_tenant_without_a_policy_uses_the_defaults():
    tenant = TenantFactory()
    assert retention.policies([tenant])[tenant.pk] == {
        "events": 30, "runs": 180, "delivered_messages": 30, "dead_messages": 90, "audit_log": 730}


def test_a_tenant_admin_sets_the_policy_in_the_admin_once(tenant, client):
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    url = reverse("admin:automation_retentionpolicy_add")
    response = client.post(url, {"events_days": "14", "audit_log_days": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = RetentionPolicy.objects.get(tenant=tenant)
    assert policy.effective()["events"] == 14 and policy.effective()["audit_log"] == 730
    again = client.post(url, {"events_days": "7"})
    assert again.status_code == 200 and "already has a retention policy" in again.content.decode()


def test_practitioners_do_not_see_the_retention_policy(tenant, client):
    client.force_login(staff(tenant, Role.PRACTITIONER))
    assert client.get(reverse("admin:automation_retentionpolicy_changelist")).status_code == 403
