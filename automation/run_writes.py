"""The engine's bookkeeping writes, batched: one engine batch (many events, many runs) writes its runs,
their steps and the rules' ``last_run_at`` in a few statements at its end instead of several per run.

A run needs its id while its actions run (outbox idempotency keys, ``trigger_workflow`` output,
playbook executions point at it). On PostgreSQL ids are reserved from the table's sequence a block at
a time, so the row itself can wait for the batch's end; elsewhere (SQLite, the embedded mode) the row
is inserted at once. Runs whose rule has a cooldown, rate limit or debounce are always inserted at
once: concurrent workers (and later events of the same batch) must see them when they count runs.
Foreign keys to runs are deferred to commit by Django on PostgreSQL, so a step or an outbox message
may point at a run that is inserted a moment later in the same transaction. Outbox messages are linked
to the step that wrote them with one UPDATE per batch, once the steps have ids.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager, nullcontext

from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, Value, When

from . import rule_index
from .models import Outbox, Run, RunStep, Workflow

FINAL_FIELDS = ["status", "skip_reason", "error", "result", "trace", "finished_at"]
MAX_RESERVE = 128


class Writes:
    def __init__(self):
        self.new_runs: list[Run] = []  # inserted at flush, with their reserved ids
        self.saved_runs: list[Run] = []  # inserted already; their outcome is saved at flush
        self.steps: list[RunStep] = []
        self.messages: list[tuple[int, RunStep]] = []
        self.last_run: dict = {}
        self._ids: list[int] = []
        self._block = 1  # ids reserved per trip to the sequence: doubles, so a lone run wastes none

    def expect(self, runs: int) -> None:
        """Reserve ids for about this many runs on the next trip to the sequence."""
        self._block = min(max(runs, 1), MAX_RESERVE)

    def add(self, run: Run, *, now: bool = False) -> None:
        """Record ``run`` (with whatever status it has at flush time); ``now`` inserts it immediately."""
        if run.pk is None and not now and (self._ids or self._reserve()):
            run.pk = self._ids.pop()
            self.new_runs.append(run)
            return
        if run.pk is None:
            run.save()
        self.saved_runs.append(run)

    def _reserve(self) -> bool:
        if connection.vendor != "postgresql":
            return False
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [Run._meta.db_table, Run._meta.pk.column, self._block])
            self._ids = [row[0] for row in reversed(cursor.fetchall())]
        self._block = min(self._block * 2, MAX_RESERVE)
        return True

    def add_step(self, step: RunStep, messages: list[int]) -> None:
        """A finished step, and the outbox messages its action wrote (linked to it once it has an id)."""
        self.steps.append(step)
        self.messages += [(message_pk, step) for message_pk in messages]

    def flush(self) -> None:
        if self.new_runs:
            Run.objects.bulk_create(self.new_runs)
        for run in self.saved_runs:
            run.save(update_fields=FINAL_FIELDS)
        if self.steps:
            RunStep.objects.bulk_create(self.steps)
        if self.messages:
            tenant_id = self.messages[0][1].tenant_id  # a batch is one tenant's
            Outbox.objects.for_tenant(tenant_id).filter(pk__in=[pk for pk, _ in self.messages]).update(run_step_id=Case(
                *[When(pk=pk, then=Value(step.pk)) for pk, step in self.messages], output_field=BigIntegerField()))
        for rule_pk, at in self.last_run.items():
            Workflow.objects.filter(pk=rule_pk).update(last_run_at=at)
        self.new_runs, self.saved_runs, self.steps, self.messages, self.last_run = [], [], [], [], {}


_current: contextvars.ContextVar[Writes | None] = contextvars.ContextVar("engine_writes", default=None)


def current() -> Writes:
    writes = _current.get()
    if writes is None:
        raise RuntimeError("engine bookkeeping outside batched_writes()")
    return writes


@contextmanager
def batched_writes():
    """Defer the engine's bookkeeping writes to the end of the block (nested blocks join the outer one).
    Everything is written before the outermost block ends, so its caller sees complete runs."""
    if _current.get() is not None:
        yield
        return
    writes = Writes()
    token = _current.set(writes)
    # Deferred rows must land in the same transaction as what points at them: open one if the caller has none.
    in_transaction = transaction.get_connection().in_atomic_block
    try:
        with nullcontext() if in_transaction else transaction.atomic(), rule_index.memoized():
            yield
            writes.flush()
    finally:
        _current.reset(token)


def flush() -> None:
    """Write what is deferred now (before reading runs back, e.g. for the circuit breaker)."""
    if (writes := _current.get()) is not None:
        writes.flush()
