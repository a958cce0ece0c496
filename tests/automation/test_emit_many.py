"""``automation.events.emit_many``: ``emit`` for many events at once (one INSERT, a message per batch of events)."""

import datetime
import uuid
from decimal import Decimal

import pytest
from celery.signals import task_prerun

from accounts.models import Note
from automation.events import PROCESS_EVENT_TASK, NewEvent, emit, emit_many
from automation.models import Event
from csplatform.tenancy import tenant_context
from tests.factories import AccountFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

NOTE = [{"type": "create_note", "config": {"body": "Payment failed"}}]


def payment_rule(tenant):
    return WorkflowFactory(tenant=tenant, trigger_type="event", trigger_config={"event_type": "payment_failed"},
                           actions=NOTE)


def test_it_writes_only_what_a_live_rule_listens_to_in_order(tenant):
    payment_rule(tenant)
    accounts = [AccountFactory(tenant=tenant) for _ in range(3)]

    with tenant_context(tenant):
        ids = emit_many(tenant_id=tenant.pk, events=[
            NewEvent(type="payment_failed", object_id=accounts[0].pk, account=accounts[0]),
            NewEvent(type="trial_ending", object_id=accounts[1].pk, account=accounts[1]),
            NewEvent(type="payment_failed", object_id=accounts[2].pk, account=accounts[2])])

    assert [(e.pk, e.account_id) for e in Event.objects.order_by("id")] == [
        (ids[0], accounts[0].pk), (ids[1], accounts[2].pk)]
    assert emit_many(tenant_id=tenant.pk, events=[NewEvent(type="trial_ending")]) == []


def test_it_stores_what_emit_stores(tenant):
    payment_rule(tenant)
    account = AccountFactory(tenant=tenant)
    payload = {"amount": Decimal("49.90"), "at": datetime.datetime(2026, 12, 1, 2, 0, 0, 123456, tzinfo=datetime.UTC),
               "invoice": uuid.UUID(int=7), "lines": [{"sku": "seat", "n": 3}]}

    with tenant_context(tenant):
        single = emit(tenant_id=tenant.pk, type="payment_failed", object_id=account.pk, account=account,
                      payload=payload, changes={"status": {"old": "paid", "new": "failed"}})
        [bulk] = emit_many(tenant_id=tenant.pk, events=[NewEvent(
            type="payment_failed", object_id=account.pk, account=account, payload=payload,
            changes={"status": {"old": "paid", "new": "failed"}})])

    fields = ("type", "model", "object_id", "account_id", "payload", "changes", "depth", "chain_id", "processed_at")
    stored = Event.objects.get(pk=bulk)
    single.refresh_from_db()
    assert {f: getattr(stored, f) for f in fields} == {f: getattr(single, f) for f in fields}


def test_it_hands_one_message_per_batch_and_the_rules_run_for_every_event(tenant, on_commit, settings):
    settings.AUTOMATION_EVENT_BATCH = 2
    payment_rule(tenant)
    accounts = [AccountFactory(tenant=tenant) for _ in range(5)]
    tasks = []

    def started(sender=None, **kwargs):
        tasks.append(sender.name)

    task_prerun.connect(started, weak=False)
    try:
        with on_commit(), tenant_context(tenant):
            emit_many(tenant_id=tenant.pk, events=[NewEvent(type="payment_failed", object_id=a.pk, account=a)
                                                   for a in accounts])
    finally:
        task_prerun.disconnect(started)

    assert tasks == [PROCESS_EVENT_TASK] * 3
    assert Note.objects.filter(body="Payment failed").count() == 5
