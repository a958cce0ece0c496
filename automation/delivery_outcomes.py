"""Honest outcomes: what became of the outbox messages a run's steps wrote (docs/automation.md).

A step's action only hands a message to the outbox; whether it got through is the delivery layer's to
tell. Outbox rows keep the run and step that wrote them as plain ids, so the state is read from them
when a run is shown (one query for a page of runs, none written on the engine's path):

* ``queued`` (pending or being sent), ``retrying`` (failed, another attempt is due), ``delivered``,
  ``dead`` (delivery gave up; the CSM is told, see below). A step with several messages shows the worst.
* A run that succeeded but one of whose messages is dead shows ``delivery_failed``. ``Run.status`` itself
  stays ``success``: cooldowns, rate limits and the circuit breaker count what the rule did, not how a
  receiver answered. A re-queued message that is then delivered makes the run honest again by itself.

``dead_delivery_task`` is how SuccessPlays and CRM journeys (their receivers of
``delivery.signals.outbox_message_finished``) tell the account owner that a message died: one task per
rule or journey, account and day, however many messages die.
"""

from __future__ import annotations

import hashlib

from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Membership, Role, Task
from delivery.models import Outbox

from .models import Run

QUEUED, RETRYING, DELIVERED, DEAD = "queued", "retrying", "delivered", "dead"
DELIVERY_FAILED = "delivery_failed"
STATES = (QUEUED, RETRYING, DELIVERED, DEAD)
_STATE_OF = {Outbox.Status.PENDING: QUEUED, Outbox.Status.SENDING: QUEUED, Outbox.Status.FAILED: RETRYING,
             Outbox.Status.DELIVERED: DELIVERED, Outbox.Status.DEAD: DEAD}
_WORST_FIRST = (DEAD, RETRYING, QUEUED, DELIVERED)
_FIELDS = ("run_id", "run_step_id", "status", "error", "attempts", "max_attempts", "next_attempt_at",
           "delivered_at", "last_status_code")


def dead_messages(tenant_id):
    """The tenant's dead outbox messages (filter on ``run_id`` for one run's)."""
    return Outbox.objects.for_tenant(tenant_id).filter(status=Outbox.Status.DEAD)


def has_dead_message(run_field: str = "pk") -> Exists:
    """For annotating rows that name a run in ``run_field`` (runs: ``pk``; executions: ``run_id``): one of
    the run's outbox messages is dead. An indexed EXISTS in the same query, no query per row."""
    return Exists(Outbox.objects.for_tenant(OuterRef("tenant_id"))
                  .filter(run_id=OuterRef(run_field), status=Outbox.Status.DEAD))


def _step_state(rows: list[dict]) -> dict:
    """The worst state of one step's messages, with that message's last error and attempt figures."""
    worst = min(rows, key=lambda r: _WORST_FIRST.index(_STATE_OF[r["status"]]))
    state = _STATE_OF[worst["status"]]
    return {"status": state, "messages": len(rows), "error": worst["error"], "attempts": worst["attempts"],
            "max_attempts": worst["max_attempts"], "last_status_code": worst["last_status_code"],
            "next_attempt_at": worst["next_attempt_at"] if state == RETRYING else None,
            "delivered_at": worst["delivered_at"] if state == DELIVERED else None}


class Deliveries:
    """The delivery state of the messages of some runs of one tenant, read with one query (none without runs)."""

    def __init__(self, tenant_id, run_ids):
        self.run_ids = {pk for pk in run_ids if pk is not None}
        self.by_step: dict[int, dict] = {}
        self.by_run: dict[int, dict] = {}
        if not self.run_ids:
            return
        rows = (Outbox.objects.for_tenant(tenant_id).filter(run_id__in=self.run_ids)
                .order_by("run_step_id", "id").values(*_FIELDS))
        steps: dict[int, list[dict]] = {}
        for row in rows:
            counts = self.by_run.setdefault(row["run_id"], dict.fromkeys(STATES, 0))
            counts[_STATE_OF[row["status"]]] += 1
            if row["run_step_id"] is not None:
                steps.setdefault(row["run_step_id"], []).append(row)
        self.by_step = {step_id: _step_state(rows) for step_id, rows in steps.items()}

    def step(self, step) -> dict | None:
        """``{"status", "messages", "error", "attempts", …}`` of a step, None if it wrote no message."""
        return self.by_step.get(step.pk)

    def run(self, run) -> dict | None:
        """How many of the run's messages are queued, retrying, delivered and dead (None: it wrote none)."""
        return self.by_run.get(run.pk)

    def dead(self, run_id) -> bool:
        return bool(self.by_run.get(run_id, {}).get(DEAD))

    def status(self, run) -> str:
        """The run's status as a person should read it: ``delivery_failed`` for a success with a dead message."""
        return DELIVERY_FAILED if run.status == Run.Status.SUCCESS and self.dead(run.pk) else run.status


# --- telling the owner ----------------------------------------------------------------------------

def _lock(key: str) -> None:
    """Serialise the check-then-create of one task key until commit (two workers may record two dead
    messages of one rule and account at the same moment). SQLite serialises writers by itself."""
    if connection.vendor == "postgresql":
        number = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])


def dead_delivery_task(*, tenant_id, account, key: str, title: str, description: str) -> list[Task]:
    """One high-priority task about a dead message for the account's owner (the tenant admins when it has
    none), unless ``key`` (e.g. ``journey:7``) already made one for this account today. Returns the tasks
    created (none when deduplicated). Runs in the caller's transaction."""
    today = timezone.localdate()
    source = f"dead-delivery:{key}:{today.isoformat()}"[:100]
    _lock(f"{tenant_id}:{getattr(account, 'pk', None)}:{source}")
    if Task.objects.for_tenant(tenant_id).filter(account=account, source=source).exists():
        return []
    owners = [account.owner_id] if account is not None and account.owner_id else list(
        Membership.objects.filter(tenant_id=tenant_id, role=Role.TENANT_ADMIN).order_by("pk")
        .values_list("user_id", flat=True))
    return [Task.objects.create(tenant_id=tenant_id, account=account, assignee_id=user_id, title=title[:255],
                                description=description, priority=Task.Priority.HIGH, due_date=today, source=source)
            for user_id in owners or [None]]


def dead_message_text(message: Outbox) -> str:
    """What a task says about a dead message: where it went, why it died, how to send it again."""
    return (f"the {message.channel} message {message.message_id} to {message.target[:200]} was not delivered "
            f"after {message.attempts} attempt(s): {(message.error or 'no error recorded')[:500]}. Fix the cause, "
            f"then re-queue it (Outbox admin, or POST /api/outbox/{message.pk}/requeue).")

