"""Real celery worker processes for end-to-end tests: the test PostgreSQL database, the Redis broker and queues
of the test's own (overlapping test runs sharing one Redis never take each other's tasks).

The project routes its tasks to four lanes (``CELERY_TASK_ROUTES``: events, delivery, bulk, default). Here each
lane becomes a queue of the test's own, ``test-<name>-<pid>-<random>-<lane>``, in this process (which
publishes) and in the workers (which publish too: the on-commit hand-over of what their runs write, retries),
so a test keeps the real routing. ``start(n)`` starts workers on every lane; ``start(1, lanes=["bulk"])``
one on the bulk lane only.
"""

import json
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
LANES = ("events", "delivery", "bulk", "default")

MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql" or not settings.REDIS_URL,
                       reason="needs PostgreSQL and Redis (scripts/test.sh)"),
]

# argv: a JSON spec (queues to consume, routes, default queue, an optional module to import first) and the
# node name. The routes are set before the worker starts, so its own publishing uses the test's queues too.
WORKER = (
    "import importlib, json, sys; spec = json.loads(sys.argv[1]); "
    "from csplatform.celery import app; "
    "app.conf.task_default_queue = spec['default']; app.conf.task_routes = spec['routes']; "
    "spec['preload'] and (__import__('django').setup(), importlib.import_module(spec['preload'])); "
    "app.worker_main(['worker', '--pool=solo', '-Q', ','.join(spec['queues']), '-n', sys.argv[2], "
    "'--without-gossip', '--without-mingle', '--without-heartbeat', '--loglevel=INFO'])"
)


def database_url() -> str:
    s = connection.settings_dict  # the test database, once pytest-django has created it
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _use_routes(routes, default_queue: str) -> None:
    """Route this process's publishing: celery caches its router on first use, so it is rebuilt."""
    app.conf.task_routes, app.conf.task_default_queue = routes, default_queue
    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)


@contextmanager
def celery_workers(name: str, **extra_env):
    """Yields ``start(n=1, lanes=LANES, preload=None)``, which starts n ``celery worker --pool=solo`` processes on
    those lanes (``preload``: a module the worker imports before it starts, e.g. to slow a task down) and returns
    all started so far; this process publishes to the test's queues meanwhile. Stops the workers and drops the
    queues at the end."""
    prefix = f"test-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}-"
    queues = {lane: prefix + lane for lane in LANES}
    routes = {task: {**route, "queue": queues[route["queue"]]} for task, route in settings.CELERY_TASK_ROUTES.items()}
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
           "CELERY_BROKER_URL": settings.REDIS_URL, "CELERY_TASK_ALWAYS_EAGER": "false",
           "DJANGO_SETTINGS_MODULE": "csplatform.settings_test", **extra_env}
    processes = []

    def start(n=1, lanes=LANES, preload=None):
        spec = json.dumps({"queues": [queues[lane] for lane in lanes], "routes": routes,
                           "default": queues["default"], "preload": preload})
        for _ in range(n):
            processes.append(subprocess.Popen(
                [sys.executable, "-c", WORKER, spec, f"w{len(processes)}-{prefix}@%h"],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        return processes

    saved = app.conf.task_always_eager, app.conf.task_routes, app.conf.task_default_queue
    app.conf.task_always_eager = False
    _use_routes(routes, queues["default"])
    try:
        yield start
    finally:
        app.conf.task_always_eager = saved[0]
        _use_routes(saved[1], saved[2])
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with app.connection_for_write() as conn:  # drop the queues and anything left in them
            for queue in queues.values():
                conn.default_channel.queue_delete(queue)
