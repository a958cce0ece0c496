"""End to end with a real celery worker process: a committed change -> Redis -> worker -> Run."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import Account
from automation.models import Event, Run, Workflow
from automation.services import workflow_save
from csplatform.celery import app
from tests.factories import AccountFactory

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql" or not settings.REDIS_URL,
                       reason="needs PostgreSQL and Redis (scripts/test.sh)"),
]


def _database_url() -> str:
    s = connection.settings_dict  # the test database, once pytest-django has created it
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def worker(transactional_db):
    """A ``celery worker --pool=solo`` on the test database, consuming a queue of its own (so overlapping
    test runs sharing one Redis never take each other's tasks); this process publishes to that queue."""
    queue = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "CELERY_TASK_ALWAYS_EAGER": "false", "DJANGO_SETTINGS_MODULE": "csplatform.settings_test"}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "csplatform", "worker", "--pool=solo", "-Q", queue,
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    saved = app.conf.task_always_eager, app.conf.task_default_queue
    app.conf.task_always_eager, app.conf.task_default_queue = False, queue
    try:
        yield process
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = saved
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with app.connection_for_write() as conn:  # drop the queue and anything left in it
            conn.default_channel.queue_delete(queue)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_it_processes_a_committed_change_in_a_real_worker(tenant, worker):
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    workflow_save(rule=Workflow(tenant=tenant), data={
        "name": "At risk", "status": "active", "trigger_type": "field_changed", "model_type": "account",
        "trigger_config": {"field": "status", "to": "at_risk"},
        "actions": [{"type": "create_note", "config": {"body": "{{ account.name }} is at risk"}}]})

    account.status = Account.Status.AT_RISK
    account.save()  # autocommit: the on-commit dispatch publishes to Redis at once

    if not wait_for(lambda: Run.objects.filter(status=Run.Status.SUCCESS).exists()):
        worker.terminate()
        pytest.fail("no run within 60 s; worker output:\n" + worker.communicate(timeout=20)[0][-5000:])
    run = Run.objects.get()
    assert (run.account_id, run.steps.get().action_type) == (account.pk, "create_note")
    assert Event.objects.get().processed_at is not None
