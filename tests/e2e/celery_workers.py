"""Real celery worker processes for end-to-end tests: the test PostgreSQL database, the Redis broker and a
queue of the test's own (overlapping test runs sharing one Redis never take each other's tasks)."""

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from csplatform.celery import app

ROOT = Path(__file__).resolve().parents[2]

MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql" or not settings.REDIS_URL,
                       reason="needs PostgreSQL and Redis (scripts/test.sh)"),
]

# The worker also publishes (the on-commit hand-over of what its runs write, retries): to the test's queue
# too, so its default queue is set before it starts.
WORKER = (
    "import sys; from csplatform.celery import app; app.conf.task_default_queue = sys.argv[1]; "
    "app.worker_main(['worker', '--pool=solo', '-Q', sys.argv[1], '-n', sys.argv[2], '--without-gossip', "
    "'--without-mingle', '--without-heartbeat', '--loglevel=INFO'])"
)


def database_url() -> str:
    s = connection.settings_dict  # the test database, once pytest-django has created it
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def celery_workers(name: str, **extra_env):
    """Yields ``start(n)``, which starts n ``celery worker --pool=solo`` processes (and returns all started so
    far); this process publishes to their queue meanwhile. Stops them and drops the queue at the end."""
    queue = f"test-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
           "CELERY_TASK_ALWAYS_EAGER": "false", "DJANGO_SETTINGS_MODULE": "csplatform.settings_test", **extra_env}
    processes = []

    def start(n=1):
        for _ in range(n):
            processes.append(subprocess.Popen(
                [sys.executable, "-c", WORKER, queue, f"w{len(processes)}-{queue}@%h"],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        return processes

    saved = app.conf.task_always_eager, app.conf.task_default_queue
    app.conf.task_always_eager, app.conf.task_default_queue = False, queue
    try:
        yield start
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = saved
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with app.connection_for_write() as conn:  # drop the queue and anything left in it
            conn.default_channel.queue_delete(queue)
