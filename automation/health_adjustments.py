"""Temporary health score adjustments (``update_health_score`` with ``temporary``) expire by themselves.

``accounts.services.health_adjustments_expire`` does the work (one candidate query across tenants, then
tenant by tenant); this module hands it to the two clocks: ``tick`` (cron, the embedded loop) as due
work, and celery beat as a periodic task. Imported by ``automation.apps.AutomationConfig.ready``.
"""

from __future__ import annotations

import datetime

from celery import shared_task

from accounts import services as account_services

from .periodic import EVERY_MINUTE, register_periodic_task
from .scheduling import register_due_work

DUE_WORK = "automation.health_adjustments_expire"
TASK = "automation.health_adjustments.expire_health_adjustments_task"


def expire(*, now: datetime.datetime | None = None) -> int:
    """Record a score without its adjustment for every account whose temporary adjustment has ended."""
    return account_services.health_adjustments_expire(now)


@shared_task(name=TASK, ignore_result=True)
def expire_health_adjustments_task() -> int:
    return expire()


register_due_work(DUE_WORK)(expire)
register_periodic_task(
    "automation: expire health score adjustments", TASK, cron_minute=EVERY_MINUTE,
    description="Records a new health score without a temporary adjustment once its duration has passed "
                "(update_health_score with temporary; accounts.services.health_adjustments_expire).")
