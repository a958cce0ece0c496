"""End to end with a real celery worker process: a committed change -> Redis -> worker -> Run."""

import time
import uuid

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


def test_a_worker_keeps_its_database_session_between_tasks_and_replaces_one_that_died(tenant, transactional_db):
    """Persistent connections (settings.CONN_MAX_AGE, csplatform.celery.recycle_connections): the session outlives
    the task, and a session killed while the worker idles is replaced before the next task needs it, so that task
    neither fails nor counts an attempt against its event."""
    from django.db import connection

    name = f"e2e-reuse-{uuid.uuid4().hex[:8]}"
    first, second = AccountFactory.create_batch(2, tenant=tenant)
    WorkflowFactory(tenant=tenant, name="At risk", trigger_type="field_changed", model_type="account",
                    trigger_config={"field": "status", "to": "at_risk"},
                    actions=[{"type": "create_note", "config": {"body": "{{ account.name }} is at risk"}}])

    def worker_sessions() -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [name])
            return [pid for (pid,) in cursor.fetchall()]

    with celery_workers("reuse", PGAPPNAME=name) as start:
        [worker] = start(1)
        first.status = Account.Status.AT_RISK
        first.save()
        if not wait_for(lambda: Run.objects.filter(status=Run.Status.SUCCESS).count() == 1):
            worker.terminate()
            pytest.fail("no run within 60 s; worker output:\n" + worker.communicate(timeout=20)[0][-5000:])
        assert wait_for(lambda: len(worker_sessions()) == 1, timeout=5), "the worker closed its session after the task"

        with connection.cursor() as cursor:  # the session dies while the worker waits (a failover, an idle timeout)
            cursor.execute("SELECT pg_terminate_backend(%s)", worker_sessions())
        assert wait_for(lambda: not worker_sessions(), timeout=5)

        second.status = Account.Status.AT_RISK
        second.save()
        assert wait_for(lambda: Run.objects.filter(status=Run.Status.SUCCESS).count() == 2), "the next task failed"
        event = Event.objects.get(object_id=str(second.pk))
        assert (event.processed_at is not None, event.attempts, event.last_error) == (True, 1, "")
