"""Priority lanes with real workers (csplatform/settings.py CELERY_TASK_ROUTES, docs/operations.md): one worker
on ``bulk``, one on ``events,delivery,default``, as in production. While the daily evaluate-all of a tenant
runs on the bulk lane, an account change on another rule is delivered as a signed webhook within a second.

The issue's number is 100,000 accounts; building them with their usage takes minutes (bench/lanes_bench.py does
it and measures the same latency). Here the tenant has 2,000 accounts made with ``bulk_create`` and the bulk
worker's evaluation first holds its transaction for 8 s (tests/e2e/slow_bulk.py), so the bulk task certainly
runs while the webhook travels: the test checks it still holds the tenant's schedule row when the webhook
arrives, and that it then finishes and records its evaluations.
"""

import datetime
import time

import pytest
from django.db import DatabaseError, transaction

from accounts.models import Account
from delivery import secrets
from playbooks.models import PlaybookSchedule, PlaybookTrigger, PlaybookTriggerEvaluation
from playbooks.services import playbook_triggers_ensure
from playbooks.tasks import evaluate_due_tenants_task
from tests.factories import AccountFactory

from .celery_workers import MARKS, celery_workers
from .test_delivery_worker import wait_for, webhook_rule

pytestmark = MARKS

ACCOUNTS = 2_000
BULK_SECONDS = 8


@pytest.fixture
def lanes(transactional_db):
    with celery_workers("lanes", OUTBOUND_ALLOW_LOOPBACK="true", SLOW_BULK_SECONDS=str(BULK_SECONDS)) as start:
        yield start


def evaluation_running(tenant) -> bool:
    """The bulk task's transaction holds the tenant's schedule row from its claim to its commit."""
    try:
        with transaction.atomic():
            list(PlaybookSchedule.objects.for_tenant(tenant).select_for_update(nowait=True))
    except DatabaseError:
        return True
    return False


def test_a_webhook_is_delivered_within_a_second_while_a_long_bulk_evaluation_runs(tenant, receiver, lanes):
    lanes(1, lanes=("events", "delivery", "default"))
    processes = lanes(1, lanes=("bulk",), preload="tests.e2e.slow_bulk")
    receiver.secrets = secrets.active_webhook_secrets(tenant.pk)
    Account.objects.bulk_create([Account(tenant=tenant, name=f"Account {i:05d}", industry="Software")
                                 for i in range(ACCOUNTS)], batch_size=1000)
    playbook_triggers_ensure(tenant)
    PlaybookTrigger.objects.for_tenant(tenant).update(auto_trigger_enabled=True)
    PlaybookSchedule.objects.update_or_create(tenant=tenant, defaults={  # due whatever the hour
        "evaluate_at": datetime.time(0, 0), "enabled": True, "last_run_on": None})
    warm_up, watched = AccountFactory(tenant=tenant), AccountFactory(tenant=tenant, name="TechStart Solutions")
    webhook_rule(tenant, receiver.url + "/hooks/at-risk")

    # Both workers up and warm: one change all the way to the receiver first.
    warm_up.status = Account.Status.AT_RISK
    warm_up.save()
    wait_for(lambda: len(receiver.requests) == 1, processes, timeout=60, what="the warm-up webhook")

    evaluate_due_tenants_task.delay()  # routed to the bulk lane, as beat sends it
    wait_for(lambda: evaluation_running(tenant), processes, timeout=30, what="the bulk evaluation to start")

    before_commit = time.time()
    watched.status = Account.Status.AT_RISK
    watched.save()  # autocommit: the event is handed to the events lane on commit
    wait_for(lambda: len(receiver.requests) == 2, processes, timeout=BULK_SECONDS, what="the webhook")
    latency = receiver.requests[1]["at"] - before_commit
    still_running = evaluation_running(tenant)

    assert receiver.requests[1]["verified"] is True and receiver.json()["account"] == "TechStart Solutions"
    assert still_running, "the bulk evaluation ended before the webhook arrived: nothing was measured"
    assert latency < 1.0, f"webhook delivered {latency:.3f} s after the commit, behind the bulk lane?"
    print(f"\ncommit -> signed webhook while evaluate-all ran on the bulk lane: {latency * 1000:.0f} ms")

    # The bulk task was real work and finishes: the five trigger evaluations are committed.
    wait_for(lambda: PlaybookTriggerEvaluation.objects.for_tenant(tenant).count() == 5, processes, timeout=120,
             what="the bulk evaluation to finish")
    assert not evaluation_running(tenant)
    assert PlaybookSchedule.objects.for_tenant(tenant).get().last_run_on is not None
