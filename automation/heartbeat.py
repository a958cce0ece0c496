"""The scheduler's heartbeat: is anything still driving the periodic work?

Beat sends ``scheduler_heartbeat_task`` every 30 s and a worker runs it, so a recent heartbeat says beat *and* a
worker are alive; every ``tick`` (cron, the embedded loop) writes it too. The time is kept in the database
(``Heartbeat``), so ``/readyz`` (an advisory check: reported, never a 503) and ``/metrics``
(``scheduler_heartbeat_age_seconds``) read the same value in every process. Imported by
``automation.apps.AutomationConfig.ready``.
"""

from __future__ import annotations

import datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from csplatform.health import register_check

from .models import Heartbeat
from .periodic import register_periodic_task
from .scheduling import register_due_work

SCHEDULER = "scheduler"
TASK = "automation.heartbeat.scheduler_heartbeat_task"
EVERY = 30  # s


def heartbeat_record(name: str = SCHEDULER, *, now: datetime.datetime | None = None) -> None:
    """Stamp ``name`` with ``now``: one UPDATE (an INSERT the first time)."""
    now = now or timezone.now()
    if not Heartbeat.objects.filter(name=name).update(beat_at=now):
        Heartbeat.objects.get_or_create(name=name, defaults={"beat_at": now})


def heartbeat_age(name: str = SCHEDULER, *, now: datetime.datetime | None = None) -> float | None:
    """Seconds since ``name`` last beat, or None if it never did."""
    beat_at = Heartbeat.objects.filter(name=name).values_list("beat_at", flat=True).first()
    return None if beat_at is None else max(0.0, ((now or timezone.now()) - beat_at).total_seconds())


def scheduler_check() -> str:
    """``/readyz``'s advisory "scheduler" check."""
    age = heartbeat_age()
    if age is None:
        return "no heartbeat yet (celery beat or tick not running)"
    if age > settings.SCHEDULER_SILENT_AFTER:
        return f"silent for {age:.0f} s (celery beat, its workers or tick stopped)"
    return "ok"


@shared_task(name=TASK, ignore_result=True)
def scheduler_heartbeat_task() -> None:
    heartbeat_record()


@register_due_work("automation.heartbeat")
def _tick_heartbeat(*, now: datetime.datetime) -> None:
    heartbeat_record(now=now)  # returns nothing: a heartbeat alone does not make a tick "busy"


register_periodic_task(
    "automation: scheduler heartbeat", TASK, every_seconds=EVERY, expire_seconds=EVERY,
    description="Writes the time to the Heartbeat table: /readyz and the scheduler_heartbeat_age_seconds metric "
                "tell whether beat and its workers are alive (automation/heartbeat.py).")
register_check("scheduler", scheduler_check, advisory=True)
