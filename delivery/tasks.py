"""Celery tasks of the delivery layer: thin, ids in, service call."""

from celery import shared_task
from django.conf import settings

from . import services
from .services import DELIVER_MESSAGES_TASK, DELIVER_OUTBOX_TASK


@shared_task(name=DELIVER_MESSAGES_TASK, acks_late=True, ignore_result=True)
def deliver_messages(ids: list[int]) -> dict:
    """Deliver these messages now if they are still due (handed over in ``transaction.on_commit``).

    On a real worker it then takes a few more due batches while it is at it: under load the queued
    tasks of messages already delivered that way find nothing and return at once, so a backlog drains
    in batches instead of one claim per task. (Not in eager mode: that would send from a web request.)"""
    stats = services.deliver(ids=ids)
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        more = services.deliver(limit=settings.OUTBOX_DRAIN_LIMIT, budget=settings.OUTBOX_DRAIN_BUDGET)
        for name in ("claimed", "delivered", "failed", "dead", "released"):
            setattr(stats, name, getattr(stats, name) + getattr(more, name))
    return stats.as_dict()


@shared_task(name=DELIVER_OUTBOX_TASK, ignore_result=True)
def deliver_outbox() -> dict:
    """The periodic pass (beat): re-claim stuck messages, deliver everything due within a time budget
    that leaves room for one batch before the task's soft time limit."""
    return services.deliver_outbox_pass(budget=settings.OUTBOX_PASS_BUDGET)
