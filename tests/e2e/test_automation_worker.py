"""End to end with a real celery worker process: a committed change -> Redis -> worker -> Run."""

import time

import pytest

from accounts.models import Account
from automation.models import Event, Run
from tests.factories import AccountFactory, WorkflowFactory

from .celery_workers import MARKS, celery_workers

pytestmark = MARKS


@pytest.fixture
def worker(transactional_db):
    """One real worker on the test database (tests.e2e.celery_workers)."""
    with celery_workers("automation") as start:
        [process] = start(1)
        yield process


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_it_processes_a_committed_change_in_a_real_worker(tenant, worker):
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    WorkflowFactory(tenant=tenant, name="At risk", trigger_type="field_changed", model_type="account",
                    trigger_config={"field": "status", "to": "at_risk"},
                    actions=[{"type": "create_note", "config": {"body": "{{ account.name }} is at risk"}}])

    account.status = Account.Status.AT_RISK
    account.save()  # autocommit: the on-commit dispatch publishes to Redis at once

    if not wait_for(lambda: Run.objects.filter(status=Run.Status.SUCCESS).exists()):
        worker.terminate()
        pytest.fail("no run within 60 s; worker output:\n" + worker.communicate(timeout=20)[0][-5000:])
    run = Run.objects.get()
    assert (run.account_id, run.steps.get().action_type) == (account.pk, "create_note")
    assert Event.objects.get().processed_at is not None
