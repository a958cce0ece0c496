"""The state of one engine batch, in one object passed down explicitly (``ctx.batch`` for actions).

An engine batch (many events of one tenant, or one manual/scheduled firing) writes its bookkeeping in a few
statements at its end instead of several per run: runs, their steps, the outbox messages the steps wrote
and the rules' ``last_run_at``. The ``Batch`` carries everything that decides how that happens:

* **ids reserved** from the runs' and the outbox's sequences (PostgreSQL), so a run or message has its id
  while its actions run (idempotency keys, ``trigger_workflow`` output, playbook executions point at it),
  and its row can wait for the end. Elsewhere (SQLite, the embedded mode) rows are inserted at once.
  Runs whose rule has a cooldown, rate limit or debounce are always inserted at once: concurrent workers
  (and later events of the same batch) must see them when they count runs.
* **rows to write**: runs, steps, messages, message-to-step links, ``last_run_at`` per rule, rules the
  circuit breaker paused, and rows an action made that no rule watches being created (a run's note:
  ``defer_row``; its ``post_save`` is sent when it is inserted). Nothing is written before the end: the
  breaker reads this batch's outcomes from memory (``outcomes``), and a failed action forgets what it
  recorded (``mark`` / ``rewind``), as its savepoint forgets its rows.
* **memos**: the tenants' rule index (``rule_index``) and the accounts' latest health scores
  (``payloads``), read once per batch.
* **the savepoint mode**: per "action" (safe, one subtransaction per action), per "event" or "none" (fast;
  a failing action raises ``Redo`` and the engine rolls back and does the work again more carefully).

Foreign keys to runs are deferred to commit by Django on PostgreSQL, so a step may point at a run that
is inserted a moment later in the same transaction. Outbox rows keep the run/step ids as plain columns.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import partial
from itertools import groupby

from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, Q, Value, When
from django.db.models.signals import post_save

from delivery.models import Outbox

from .events import batch_running
from .models import Run, RunStep, Workflow

FINAL_FIELDS = ["status", "skip_reason", "error", "result", "trace", "finished_at", "scheduled_for", "start_position"]
MAX_RESERVE = 128
COUNTED = (Run.Status.SUCCESS, Run.Status.FAILED)
SAVEPOINT_MODES = ("action", "event", "none")


class Redo(BaseException):
    """An action failed in a batch run without savepoints: its partial writes cannot be undone alone. A
    BaseException, so no ``except Exception`` in an action can swallow it and carry on."""


class ScoreMemo:
    """The latest health score per account, read for a batch's accounts in one query when first asked
    (``automation.payloads.latest_score``). A score recorded meanwhile drops its account (``forget``)."""

    def __init__(self, account_ids=()):
        self.wanted = {pk for pk in account_ids if pk}
        self.found: dict = {}

    def forget(self, account_id=None) -> None:
        if account_id is None:
            self.found.clear()
        else:
            self.found.pop(account_id, None)


class Batch:
    def __init__(self, savepoints: str = "action"):
        if savepoints not in SAVEPOINT_MODES:
            raise ValueError(f"savepoints must be one of {SAVEPOINT_MODES}")
        self.savepoints = savepoints
        self.refired = False  # an event failed under "event" and was fired again with "action"
        self.new_runs: list[Run] = []  # inserted at flush, with their reserved ids
        self.saved_runs: list[Run] = []  # inserted already; their outcome is saved at flush
        self.steps: list[RunStep] = []
        self.outbox: list[Outbox] = []  # messages with a new key: inserted at flush, with their reserved ids
        self.links: list[tuple[Outbox, RunStep]] = []  # each message a step wrote, linked to it at flush
        self.rows: list = []  # other rows the actions made, with reserved ids: inserted at flush (defer_row)
        self.last_run: dict = {}
        self.paused: set = set()  # rules the circuit breaker paused in this batch
        self.rule_index: dict = {}  # tenant id -> the live rules' index, read once per batch (rule_index)
        # Only PostgreSQL batches memoise scores (one DISTINCT ON query); elsewhere each payload asks.
        self.scores: ScoreMemo | None = ScoreMemo() if connection.vendor == "postgresql" else None
        self._ids: dict = {}
        self._block: dict = {}  # ids reserved per trip to a sequence: doubles, so a lone run wastes none
        self._expected = 1  # the first trip's size for a sequence: the runs this batch expects (expect)

    # --- savepoints -------------------------------------------------------------------------------

    @contextmanager
    def with_savepoints(self):
        previous, self.savepoints = self.savepoints, "action"
        try:
            yield
        finally:
            self.savepoints = previous

    @contextmanager
    def nested(self):
        """A block inside this batch (a firing within a firing): if it fails, forget what it recorded, as the
        caller's savepoint forgets its rows."""
        mark = self.mark()
        try:
            yield self
        except BaseException:
            self.rewind(mark)
            raise

    # --- recording --------------------------------------------------------------------------------

    def expect(self, runs: int) -> None:
        """Reserve ids for about this many runs on the next trip to the sequence."""
        self._expected = self._block[Run] = min(max(runs, 1), MAX_RESERVE)

    def add(self, run: Run, *, now: bool = False) -> None:
        """Record ``run`` (with whatever status it has at flush time); ``now`` inserts it immediately."""
        if run.pk is None and not now and (pk := self._next_id(Run)) is not None:
            run.pk = pk
            self.new_runs.append(run)
            return
        if run.pk is None:
            run.save()
        self.saved_runs.append(run)

    @property
    def defer(self):
        """What ``outbox_enqueue`` may hand a message with a new key to (its id now, its row at flush), or
        None where ids cannot be reserved (SQLite)."""
        return self._defer_message if connection.vendor == "postgresql" else None

    def _defer_message(self, message: Outbox) -> None:
        message.pk = self._next_id(Outbox)
        self.outbox.append(message)

    def _next_id(self, model) -> int | None:
        """A reserved id of ``model`` (PostgreSQL), or None: insert the row now."""
        if not self._ids.get(model):
            if connection.vendor != "postgresql":
                return None
            block = self._block.get(model, self._expected)
            with connection.cursor() as cursor:
                cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                               [model._meta.db_table, model._meta.pk.column, block])
                self._ids[model] = [row[0] for row in reversed(cursor.fetchall())]
            self._block[model] = min(block * 2, MAX_RESERVE)
        return self._ids[model].pop()

    def defer_row(self, row) -> bool:
        """Give a new ``row`` its reserved id now and insert it when the batch ends, one INSERT per model, then send
        the ``post_save`` its ``save()`` would have sent. False where ids cannot be reserved (SQLite): save it."""
        if (pk := self._next_id(type(row))) is None:
            return False
        row.pk = pk
        self.rows.append(row)
        return True

    def add_step(self, step: RunStep, messages: list[Outbox]) -> None:
        """A finished step, and the outbox messages its action wrote (linked to it once it has an id)."""
        self.steps.append(step)
        self.links.extend((message, step) for message in messages)

    def outcomes(self, rule_pk) -> list[str]:
        """Statuses of this batch's finished automatic runs of a rule, newest first (not on disk yet)."""
        runs = sorted((r for r in self.new_runs + self.saved_runs
                       if r.workflow_id == rule_pk and not r.manual and r.status in COUNTED),
                      key=lambda r: (r.created_at, r.pk or 0), reverse=True)
        return [r.status for r in runs]

    def mark(self) -> tuple:
        return (len(self.new_runs), len(self.saved_runs), len(self.steps), len(self.outbox), len(self.links),
                len(self.rows), dict(self.last_run), set(self.paused))

    def rewind(self, mark: tuple) -> None:
        """Forget what was recorded since ``mark``: its database work was rolled back (a failed action)."""
        runs, saved, steps, outbox, links, rows, self.last_run, self.paused = mark
        del self.new_runs[runs:], self.saved_runs[saved:], self.steps[steps:], self.outbox[outbox:]
        del self.links[links:], self.rows[rows:]

    # --- writing ----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything; called once, when the batch ends."""
        for model, rows in groupby(self.rows, key=type):  # runs of one model in a row; usually one group
            rows = list(rows)
            model.objects.bulk_create(rows)
            for row in rows:
                row._state.adding = False
                post_save.send(sender=model, instance=row, created=True, update_fields=None, raw=False,
                               using=row._state.db)
        if self.new_runs:
            Run.objects.bulk_create(self.new_runs)
        for run in self.saved_runs:
            run.save(update_fields=FINAL_FIELDS)
        if self.steps:
            RunStep.objects.bulk_create(self.steps)
        saved = []  # messages inserted already: one UPDATE; deferred ones get the step id before their insert
        for message, step in self.links:
            if message._state.adding:
                message.run_step_id = step.pk
            else:
                saved.append((message.pk, step))
        if self.outbox:
            Outbox.objects.bulk_create(self.outbox)
        if saved:
            tenant_id = saved[0][1].tenant_id  # a batch is one tenant's
            Outbox.objects.for_tenant(tenant_id).filter(pk__in=[pk for pk, _ in saved]).update(run_step_id=Case(
                *[When(pk=pk, then=Value(step.pk)) for pk, step in saved], output_field=BigIntegerField()))
        if self.last_run:
            transaction.on_commit(partial(_touch_rules, dict(self.last_run)))


def _touch_rules(last_run: dict) -> None:
    """``last_run_at`` after commit, one short statement per rule: inside the batch, these row locks, taken in
    whatever order the batch met its rules, could deadlock two workers. Never moves backwards."""
    for rule_pk, at in sorted(last_run.items()):
        Workflow.objects.filter(Q(last_run_at__isnull=True) | Q(last_run_at__lt=at), pk=rule_pk).update(last_run_at=at)


@contextmanager
def open_batch(*, savepoints: str = "action"):
    """A new batch, written when the block ends, in the caller's transaction (or one of its own: deferred
    rows must land in the same transaction as what points at them). Its caller sees complete runs."""
    batch = Batch(savepoints)
    with nullcontext() if transaction.get_connection().in_atomic_block else transaction.atomic(), \
            batch_running(batch):
        yield batch
        batch.flush()


@contextmanager
def joined(batch: Batch | None, **options):
    """``batch`` as a nested block if the caller has one, else a batch of its own."""
    if batch is not None:
        with batch.nested():
            yield batch
    else:
        with open_batch(**options) as own:
            yield own
