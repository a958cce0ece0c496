"""The celery app. Tasks live in each app's ``tasks.py``; beat uses django-celery-beat's DatabaseScheduler."""

import os

from celery import Celery

from . import logs  # noqa: F401  (signal receivers: task id as request id, workers log through settings.LOGGING)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")

app = Celery("csplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def task_named(name: str):
    """A registered task, by its name. Lets a service hand work to a task whose module imports that service
    (``tasks`` -> ``services``), without importing it back: the apps' ``ready()`` import their tasks."""
    return app.tasks[name]
