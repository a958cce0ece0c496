"""End to end with real celery worker processes (Redis broker, the test PostgreSQL database): a model
change fires a rule whose webhook action writes an outbox message; a worker delivers it to a local
HTTP receiver that verifies the signature; a 500 is retried on the backoff schedule; two workers racing
over one queue never deliver a message twice."""

import time

import pytest
from django.db import transaction

from accounts.models import Account
from delivery import secrets, services
from automation.models import Run, RunStep
from delivery.models import Outbox
from tests.factories import AccountFactory, WorkflowFactory

from .celery_workers import MARKS, celery_workers

pytestmark = MARKS


@pytest.fixture
def workers(transactional_db):
    """``workers(n)`` starts n real workers on the test database, all consuming one queue of this test's own."""
    with celery_workers("delivery", OUTBOUND_ALLOW_LOOPBACK="true") as start:
        yield start


def wait_for(predicate, processes, timeout=30.0, what="it"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    output = ""
    for process in processes:
        process.terminate()
        output += process.communicate(timeout=20)[0][-3000:]
    from automation.models import Event

    state = (list(Event.objects.values_list("type", "processed_at")),
             list(Run.objects.values_list("status", "error")),
             list(Outbox.objects.values_list("status", "attempts", "error")))
    pytest.fail(f"{what} did not happen within {timeout} s; events, runs, messages: {state}; worker output:\n{output}")


def webhook_rule(tenant, url, **extra):
    return WorkflowFactory(tenant=tenant, trigger_type="field_changed", model_type="account",
                           trigger_config={"field": "status", "to": "at_risk"},
                           actions=[{"type": "webhook", "config": {"url": url, "payload": {
                               "account": "{{ account.name }}", "event": "{{ trigger_event }}"}}}], **extra)


def test_a_model_change_fires_a_rule_whose_webhook_a_worker_delivers_signed(tenant, receiver, workers):
    processes = workers(1)
    receiver.secrets = secrets.active_webhook_secrets(tenant.pk)
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    webhook_rule(tenant, receiver.url + "/hooks/at-risk")

    account.status = Account.Status.AT_RISK
    account.save()  # autocommit: the event's on-commit hand-over reaches the worker through Redis

    wait_for(lambda: Outbox.objects.filter(status="delivered").exists(), processes, what="a delivery")
    message = Outbox.objects.get()
    [request] = receiver.requests
    assert request["verified"] is True and request["path"] == "/hooks/at-risk"
    assert request["headers"]["webhook-id"] == message.message_id
    assert receiver.json()["account"] == "TechStart Solutions"
    assert (message.attempts, message.last_status_code, message.run_id) == (1, 200, Run.objects.get().pk)
    assert RunStep.objects.get(pk=message.run_step_id).action_type == "webhook"


def test_a_worker_retries_a_500_and_delivers_on_the_next_attempt(tenant, receiver, workers):
    processes = workers(1)
    receiver.secrets = secrets.active_webhook_secrets(tenant.pk)
    receiver.respond(500)  # then the default 200
    account = AccountFactory(tenant=tenant)
    # seed 003's retry configuration: a 0.6 s (+-20 %) first delay keeps the test short
    webhook_rule(tenant, receiver.url, allow_retries=True,
                 retry_configuration={"max_retries": 3, "delay_minutes": 0.01, "backoff_multiplier": 2})
    account.status = Account.Status.AT_RISK
    account.save()

    wait_for(lambda: Outbox.objects.filter(status="delivered").exists(), processes, what="the retried delivery")
    message = Outbox.objects.get()
    assert (message.attempts, message.last_status_code, message.error) == (2, 200, "")
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [message.message_id] * 2
    assert all(r["verified"] for r in receiver.requests)
    gap = receiver.requests[1]["at"] - receiver.requests[0]["at"]
    assert 0.45 <= gap < 10  # waited for the backoff, not the 15 s periodic pass


def test_two_workers_racing_over_one_queue_never_deliver_a_message_twice(tenant, receiver, workers):
    processes = workers(2)
    receiver.delay = 0.005
    with transaction.atomic():  # committed at once: 60 hand-overs to celery, shared by both workers
        messages = [services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={"n": n})
                    for n in range(60)]

    wait_for(lambda: Outbox.objects.filter(status="delivered").count() == 60, processes, what="60 deliveries")
    time.sleep(0.5)  # anything sent twice would arrive by now
    ids = receiver.ids()
    assert len(ids) == 60 and set(ids) == {m.message_id for m in messages}
    assert set(Outbox.objects.values_list("status", "attempts")) == {("delivered", 1)}
