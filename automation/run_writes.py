"""The engine's bookkeeping writes, batched: one engine batch (many events, many runs) writes its runs,
their steps and the rules' ``last_run_at`` in a few statements at its end instead of several per run.

A run needs its id while its actions run (outbox idempotency keys, ``trigger_workflow`` output,
playbook executions point at it). On PostgreSQL ids are reserved from the table's sequence a block at
a time, so the row itself can wait for the batch's end; elsewhere (SQLite, the embedded mode) the row
is inserted at once. Runs whose rule has a cooldown, rate limit or debounce are always inserted at
once: concurrent workers (and later events of the same batch) must see them when they count runs.
Foreign keys to runs are deferred to commit by Django on PostgreSQL, so a step or an outbox message
may point at a run that is inserted a moment later in the same transaction. Outbox messages are linked
to the step that wrote them with one UPDATE per batch, once the steps have ids. Nothing is written
before the batch ends: the circuit breaker reads this batch's outcomes from memory (``outcomes``),
and a failed action forgets what it recorded (``mark`` / ``rewind``), as its savepoint forgets its rows.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager, nullcontext
from functools import partial

from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, Q, Value, When

from . import rule_index
from .delivery import services as delivery
from .models import Outbox, Run, RunStep, Workflow

FINAL_FIELDS = ["status", "skip_reason", "error", "result", "trace", "finished_at"]
MAX_RESERVE = 128
COUNTED = (Run.Status.SUCCESS, Run.Status.FAILED)


class Redo(BaseException):
    """An action failed in a batch run without savepoints: its partial writes cannot be undone alone. A
    BaseException, so no ``except Exception`` in an action can swallow it and carry on."""


class Writes:
    def __init__(self, savepoints: str = "action"):
        self.savepoints = savepoints  # per "action", per "event" (engine._fire_event) or "none"
        self.refired = False  # an event failed under "event" and was fired again with "action"
        self.new_runs: list[Run] = []  # inserted at flush, with their reserved ids
        self.saved_runs: list[Run] = []  # inserted already; their outcome is saved at flush
        self.steps: list[RunStep] = []
        self.outbox: list[Outbox] = []  # messages with a new key: inserted at flush, with their reserved ids
        self.links: list[tuple[int, RunStep]] = []  # messages inserted already, to link to their step
        self.last_run: dict = {}
        self.paused: set = set()  # rules the circuit breaker paused in this batch
        self._ids: dict = {}
        self._block: dict = {}  # ids reserved per trip to a sequence: doubles, so a lone run wastes none

    @contextmanager
    def with_savepoints(self):
        previous, self.savepoints = self.savepoints, "action"
        try:
            yield
        finally:
            self.savepoints = previous

    def expect(self, runs: int) -> None:
        """Reserve ids for about this many runs on the next trip to the sequence."""
        self._block[Run] = min(max(runs, 1), MAX_RESERVE)

    def add(self, run: Run, *, now: bool = False) -> None:
        """Record ``run`` (with whatever status it has at flush time); ``now`` inserts it immediately."""
        if run.pk is None and not now and (pk := self._next_id(Run)) is not None:
            run.pk = pk
            self.new_runs.append(run)
            return
        if run.pk is None:
            run.save()
        self.saved_runs.append(run)

    def defer_message(self, message: Outbox) -> None:
        """An outbox message whose key cannot exist yet (delivery.services.outbox_enqueue): it gets its id now,
        its row at flush."""
        message.pk = self._next_id(Outbox)
        self.outbox.append(message)

    def _next_id(self, model) -> int | None:
        """A reserved id of ``model`` (PostgreSQL), or None: insert the row now."""
        if not self._ids.get(model):
            if connection.vendor != "postgresql":
                return None
            block = self._block.get(model, 1)
            with connection.cursor() as cursor:
                cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                               [model._meta.db_table, model._meta.pk.column, block])
                self._ids[model] = [row[0] for row in reversed(cursor.fetchall())]
            self._block[model] = min(block * 2, MAX_RESERVE)
        return self._ids[model].pop()

    def add_step(self, step: RunStep, messages: list[Outbox]) -> None:
        """A finished step, and the outbox messages its action wrote (linked to it once it has an id)."""
        self.steps.append(step)
        for message in messages:
            if message._state.adding:
                message.run_step = step
            else:
                self.links.append((message.pk, step))

    def outcomes(self, rule_pk) -> list[str]:
        """Statuses of this batch's finished automatic runs of a rule, newest first (not on disk yet)."""
        runs = sorted((r for r in self.new_runs + self.saved_runs
                       if r.workflow_id == rule_pk and not r.manual and r.status in COUNTED),
                      key=lambda r: (r.created_at, r.pk or 0), reverse=True)
        return [r.status for r in runs]

    def mark(self) -> tuple:
        return (len(self.new_runs), len(self.saved_runs), len(self.steps), len(self.outbox), len(self.links),
                dict(self.last_run), set(self.paused))

    def rewind(self, mark: tuple) -> None:
        """Forget what was recorded since ``mark``: its database work was rolled back (a failed action)."""
        runs, saved, steps, outbox, links, self.last_run, self.paused = mark
        del self.new_runs[runs:], self.saved_runs[saved:], self.steps[steps:], self.outbox[outbox:]
        del self.links[links:]

    def flush(self) -> None:
        """Write everything; called once, when the outermost block ends."""
        if self.new_runs:
            Run.objects.bulk_create(self.new_runs)
        for run in self.saved_runs:
            run.save(update_fields=FINAL_FIELDS)
        if self.steps:
            RunStep.objects.bulk_create(self.steps)
        if self.outbox:
            Outbox.objects.bulk_create(self.outbox)
        if self.links:
            tenant_id = self.links[0][1].tenant_id  # a batch is one tenant's
            Outbox.objects.for_tenant(tenant_id).filter(pk__in=[pk for pk, _ in self.links]).update(run_step_id=Case(
                *[When(pk=pk, then=Value(step.pk)) for pk, step in self.links], output_field=BigIntegerField()))
        if self.last_run:
            transaction.on_commit(partial(_touch_rules, dict(self.last_run)))


def _touch_rules(last_run: dict) -> None:
    """``last_run_at`` after commit, one short statement per rule: inside the batch, these row locks, taken in
    whatever order the batch met its rules, could deadlock two workers. Never moves backwards."""
    for rule_pk, at in sorted(last_run.items()):
        Workflow.objects.filter(Q(last_run_at__isnull=True) | Q(last_run_at__lt=at), pk=rule_pk).update(last_run_at=at)


_current: contextvars.ContextVar[Writes | None] = contextvars.ContextVar("engine_writes", default=None)


def current() -> Writes:
    writes = _current.get()
    if writes is None:
        raise RuntimeError("engine bookkeeping outside batched_writes()")
    return writes


@contextmanager
def batched_writes(*, savepoints: str = "action"):
    """Defer the engine's bookkeeping writes to the end of the block (nested blocks join the outer one).
    Everything is written before the outermost block ends, so its caller sees complete runs.
    ``savepoints`` other than "action": actions run without their savepoint, and a failing one raises
    ``Redo``; the engine rolls back and does the work again with savepoints (``engine._process``)."""
    if (outer := _current.get()) is not None:
        mark = outer.mark()
        try:
            yield
        except BaseException:
            outer.rewind(mark)  # the caller's savepoint drops this block's rows: drop their records too
            raise
        return
    writes = Writes(savepoints)
    token = _current.set(writes)
    # Deferred rows must land in the same transaction as what points at them: open one if the caller has none.
    in_transaction = transaction.get_connection().in_atomic_block
    deferring = delivery.deferring(writes.defer_message) if connection.vendor == "postgresql" else nullcontext()
    try:
        with nullcontext() if in_transaction else transaction.atomic(), rule_index.memoized(), deferring:
            yield
            writes.flush()
    finally:
        _current.reset(token)
        delivery.forget_messages()  # what a rolled-back batch's actions noted for their steps
