"""Seed 001's per-action ``delay`` (``"1h"``, ``"3d"``): the run stops before that action and waits as a
queued row (``scheduled_for``, ``start_position``); when it is due, ``engine.run_due_runs`` resumes it there.
The action then works with the data of that moment: a welcome email sent an hour after ``account_created``
finds the contact added meanwhile. Nothing is lost if a worker dies while it waits (it is a row).

A waiting run has ``started_at`` set (a debounced or delayed run that never started has not), and counts
for cooldowns and rate limits like a running one. Runs a person starts (run now, dry runs, replays) do not
wait; runs another rule starts (``trigger_workflow``, depth > 0) do.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from .models import Run
from .triggers import parse_duration

NO_DELAY = (None, "", "0h", "0m", "0d")


def check_delay(value) -> str | None:
    """A rule's ``delay`` setting, checked when it is saved (ConfigError): the duration, or None for none."""
    if value in NO_DELAY:
        return None
    parse_duration(value, "delay")
    return value


def wait_before(run: Run, position: int, spec: dict) -> timedelta | None:
    """How long ``run`` waits before the action at ``position``; None to run it now (no delay, a run a person
    started, or the run is resuming at this very action)."""
    delay = (spec.get("config") or {}).get("delay")
    if delay in NO_DELAY or (run.manual and not run.depth) or (run.result or {}).get("waiting_at") == position:
        return None
    try:
        return parse_duration(delay, "delay")
    except ValueError:  # a setting stored before delays were checked at save: run the action now
        return None


def wait(run: Run, position: int, delay: timedelta, result: dict) -> None:
    run.status, run.scheduled_for, run.start_position = Run.Status.QUEUED, timezone.now() + delay, position
    run.result = {**result, "waiting_at": position}


def waiting() -> Q:
    """Runs that started and wait before an action (``wait``)."""
    return Q(status=Run.Status.QUEUED, started_at__isnull=False)
