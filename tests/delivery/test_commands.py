"""Entry points: the deliver_outbox command, the celery tasks, the scheduler's tick and beat's entry."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from automation import periodic, scheduling
from delivery import services, tasks
from delivery.models import Outbox

pytestmark = pytest.mark.django_db


def test_it_delivers_due_messages_and_recovers_stuck_ones_with_the_deliver_outbox_command(tenant, receiver, settings):
    due = services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={"n": 1})
    stuck = services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={"n": 2})
    Outbox.objects.filter(pk=stuck.pk).update(status="sending", attempts=1, claimed_at=timezone.now() - timedelta(
        seconds=settings.OUTBOX_SENDING_TIMEOUT + 5))
    out = io.StringIO()
    call_command("deliver_outbox", stdout=out)
    assert json.loads(out.getvalue()) == {"claimed": 2, "delivered": 2, "failed": 0, "dead": 0, "released": 0,
                                          "reclaimed": 1}
    assert set(Outbox.objects.values_list("status", flat=True)) == {"delivered"}
    assert sorted(r["body"] for r in receiver.requests) == [b'{"n":1}', b'{"n":2}']
    assert due.pk != stuck.pk


def test_it_delivers_through_the_celery_tasks(tenant, receiver):
    message = services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={})
    assert tasks.deliver_messages.delay([message.pk]).get()["delivered"] == 1
    services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={})
    assert tasks.deliver_outbox.delay().get()["delivered"] == 1


def test_it_runs_delivery_in_the_schedulers_tick_and_registers_a_beat_entry(tenant, receiver):
    services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={},
                            deliver_at=timezone.now() + timedelta(minutes=10))
    outcome = scheduling.tick(now=timezone.now() + timedelta(minutes=11))
    assert outcome.ok and outcome.results["automation.deliver_outbox"]["delivered"] == 1
    [spec] = [s for s in periodic.periodic_specs() if s.task == "automation.delivery.deliver_outbox"]
    assert spec.every_seconds == 15


def test_it_drains_other_due_messages_from_an_on_commit_task_on_a_real_worker(tenant, receiver, settings):
    first, second = (services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={"n": n})
                     for n in range(2))
    settings.CELERY_TASK_ALWAYS_EAGER = True  # eager (a web request): only its own messages
    assert tasks.deliver_messages([first.pk])["delivered"] == 1
    third = services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={"n": 3})
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a worker: its own, then whatever else is due
    assert tasks.deliver_messages([third.pk])["delivered"] == 2
    assert set(Outbox.objects.values_list("status", flat=True)) == {"delivered"} and second.pk
