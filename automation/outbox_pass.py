"""Delivery's periodic pass, handed to the two clocks (delivery sits below automation and knows neither):
``tick`` (cron, the embedded loop) runs it as due work, celery beat as the ``automation.delivery.deliver_outbox``
task. The pass re-claims messages stuck in sending and delivers everything due (retries, delayed sends,
dispatches lost while the broker was down). Imported by ``automation.apps.AutomationConfig.ready``.
"""

from __future__ import annotations

from django.conf import settings

from delivery import services
from delivery.services import DELIVER_OUTBOX_TASK

from .periodic import register_periodic_task
from .scheduling import register_due_work


@register_due_work("automation.deliver_outbox")
def deliver_outbox_due(*, now):
    return services.deliver_outbox_pass(now=now, budget=settings.OUTBOX_PASS_BUDGET)


register_periodic_task(
    "automation: deliver outbox", DELIVER_OUTBOX_TASK, every_seconds=settings.OUTBOX_PASS_EVERY,
    expire_seconds=max(settings.OUTBOX_PASS_EVERY * 2, 30),
    description="Delivers due outbox messages (retries, delayed sends, lost dispatches) and re-claims "
                "messages stuck in sending (delivery/services.py).")
