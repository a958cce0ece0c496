"""Celery tasks: thin, ids in, service call. Beat's entries for the periodic ones: ``automation/periodic.py``."""

import datetime

from celery import shared_task
from django.conf import settings

from . import engine, scheduling
from .events import PROCESS_EVENT_TASK


@shared_task(name=PROCESS_EVENT_TASK, acks_late=True, ignore_result=True)  # nobody reads it: one Redis write less
def process_event(tenant_id: str, event_id: int) -> int:
    return len(engine.process_event(tenant_id, event_id, batch=settings.AUTOMATION_EVENT_BATCH))


@shared_task(ignore_result=True)
def sweep_events_task(grace_seconds: int = 30) -> int:
    return scheduling.sweep_events(grace=datetime.timedelta(seconds=grace_seconds))


@shared_task(ignore_result=True)
def run_scheduled_rules_task() -> dict:
    return scheduling.run_scheduled_rules().as_dict()


@shared_task(ignore_result=True)
def run_due_runs_task() -> int:
    return scheduling.run_due_runs()


@shared_task(ignore_result=True)
def tick_task() -> dict:
    """All due work once (what the ``tick`` command does), for a beat entry or a one-off call."""
    outcome = scheduling.tick()
    return {"results": outcome.results, "errors": outcome.errors}
