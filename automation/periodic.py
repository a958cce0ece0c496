"""The platform's periodic tasks, as django-celery-beat ``PeriodicTask`` rows (beat runs with the
DatabaseScheduler, so the schedule lives in the database and shows in the admin).

``ensure_periodic_tasks()`` creates or updates each registered entry by its name with
``update_or_create``; it never deletes rows, so tasks an admin added stay, and an admin who disabled
one of ours keeps it disabled (``enabled`` is only set when the row is created). Other apps add their
entries with ``register_periodic_task(...)`` from their ``AppConfig.ready``. Run it after ``migrate``:
``python manage.py setup_periodic_tasks``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from celery.signals import task_postrun
from django.db import transaction

from csplatform.logs import log_summary

EVERY_MINUTE = "*"


@dataclass(frozen=True)
class PeriodicSpec:
    name: str
    task: str
    description: str
    cron_minute: str | None = None  # a crontab minute field in UTC, e.g. "*" or "*/5"
    every_seconds: int | None = None  # or a fixed interval
    kwargs: dict = field(default_factory=dict)
    # A tick still queued after this long is dropped: when workers come back after an outage they run
    # the next tick, not a pile of stale ones (every task here catches up by itself).
    expire_seconds: int | None = 60


_specs: dict[str, PeriodicSpec] = {}


def register_periodic_task(name: str, task: str, *, description: str = "", cron_minute: str | None = None,
                           every_seconds: int | None = None, kwargs: dict | None = None,
                           expire_seconds: int | None = 60) -> PeriodicSpec:
    """Declare one periodic task (exactly one of ``cron_minute`` / ``every_seconds``); duplicate names fail."""
    if (cron_minute is None) == (every_seconds is None):
        raise ValueError(f"periodic task '{name}' needs exactly one of cron_minute and every_seconds")
    if name in _specs:
        raise ValueError(f"periodic task '{name}' is already registered")
    spec = PeriodicSpec(name=name, task=task, description=description, cron_minute=cron_minute,
                        every_seconds=every_seconds, kwargs=dict(kwargs or {}), expire_seconds=expire_seconds)
    _specs[name] = spec
    return spec


def periodic_specs() -> list[PeriodicSpec]:
    return list(_specs.values())


log = logging.getLogger("automation.periodic")


@task_postrun.connect(dispatch_uid="automation.periodic.summary")
def _summarize(task_id=None, task=None, retval=None, state=None, **kwargs) -> None:
    """One INFO line per run of a registered periodic task that did something, DEBUG when it was idle (beat
    sends most of them every minute); a failure is celery's to log."""
    names = {spec.task: spec.name for spec in _specs.values()}
    if state == "SUCCESS" and getattr(task, "name", None) in names:
        log_summary(log, names[task.name], retval, request_id=task_id)


register_periodic_task(
    "automation: scheduled and time-based rules", "automation.tasks.run_scheduled_rules_task",
    cron_minute=EVERY_MINUTE,  # on the minute, so a 09:00 rule fires at 09:00:0x
    description="Fires scheduled rules at their time in their timezone and checks time-based rules; "
                "each slot fires once (automation/scheduling.py).")
register_periodic_task(
    "automation: sweep unprocessed events", "automation.tasks.sweep_events_task",
    every_seconds=60, kwargs={"grace_seconds": 30},
    description="Re-dispatches events whose on-commit dispatch was lost (broker down, worker killed).")
register_periodic_task(
    "automation: delayed and retried runs", "automation.tasks.run_due_runs_task", cron_minute=EVERY_MINUTE,
    description="Executes queued runs whose delay_minutes or retry backoff has passed.")


def _schedule(spec: PeriodicSpec) -> dict:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    if spec.cron_minute is not None:
        wanted = {"minute": spec.cron_minute, "hour": "*", "day_of_week": "*", "day_of_month": "*",
                  "month_of_year": "*", "timezone": "UTC"}
        # filter().first(), not get_or_create: schedules have no unique constraint, an admin may have made twins.
        crontab = CrontabSchedule.objects.filter(**wanted).order_by("pk").first() or CrontabSchedule.objects.create(**wanted)
        return {"crontab": crontab, "interval": None, "solar": None, "clocked": None}
    wanted = {"every": spec.every_seconds, "period": IntervalSchedule.SECONDS}
    interval = IntervalSchedule.objects.filter(**wanted).order_by("pk").first() or IntervalSchedule.objects.create(**wanted)
    return {"interval": interval, "crontab": None, "solar": None, "clocked": None}


@transaction.atomic
def ensure_periodic_tasks() -> list[tuple[str, bool]]:
    """Create or update the registered periodic tasks; returns ``[(name, created), ...]``."""
    from django_celery_beat.models import PeriodicTask

    done = []
    for spec in periodic_specs():
        defaults = {"task": spec.task, "kwargs": json.dumps(spec.kwargs, sort_keys=True), "args": "[]",
                    "description": spec.description, "expire_seconds": spec.expire_seconds, "expires": None,
                    "one_off": False, **_schedule(spec)}
        _, created = PeriodicTask.objects.update_or_create(
            name=spec.name, defaults=defaults, create_defaults={**defaults, "enabled": True})
        done.append((spec.name, created))
    return done
