"""Celery tasks: thin, ids in, service call."""

from celery import shared_task

from . import engine


@shared_task(acks_late=True)
def process_event(tenant_id: str, event_id: int) -> int:
    return len(engine.process_event(tenant_id, event_id))
