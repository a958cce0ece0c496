"""The celery app. Tasks live in each app's ``tasks.py``; beat uses django-celery-beat's DatabaseScheduler."""

import os

from celery import Celery, signals
from django.db import close_old_connections

from . import logs  # noqa: F401  (signal receivers: task id as request id, workers log through settings.LOGGING)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")

app = Celery("csplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def task_named(name: str):
    """A registered task, by its name. Lets a service hand work to a task whose module imports that service
    (``tasks`` -> ``services``), without importing it back: the apps' ``ready()`` import their tasks."""
    return app.tasks[name]


@signals.task_prerun.connect(dispatch_uid="csplatform.celery.recycle_connections_before")
@signals.task_postrun.connect(dispatch_uid="csplatform.celery.recycle_connections_after")
def recycle_connections(sender=None, **kwargs) -> None:
    """Between tasks, what Django does between requests: close a connection that broke or outlived
    CONN_MAX_AGE, keep the others (the fixup keeps them too, settings.CELERY_DB_REUSE_MAX). Not for a task run
    eagerly: it runs inside its caller's request and transaction."""
    if not getattr(getattr(sender, "request", None), "is_eager", False):
        close_old_connections()
