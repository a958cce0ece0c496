"""Turning changes into Event rows, in the caller's transaction, and handing them on after commit.

``emit()`` is the one way to raise a domain event and ``emit_many()`` its bulk form (one INSERT, one message to
celery per ``AUTOMATION_EVENT_BATCH`` events); ``record_model_change()`` is what the thin signal receivers call.
All write nothing when no live rule of the tenant listens (rule index).
Events raised while a rule's actions run carry that run's depth + 1 (the recursion guard).

``running`` is the engine's one context variable, because Django calls signal receivers with no way to pass
them anything: while a run's actions write, it names the depth of the events they raise and the batch they
belong to (whose rule-index and health-score memos the receivers use). Everything else the engine decides
with is passed explicitly (``automation.batch.Batch``, carried on the action context as ``ctx.batch``).
"""

from __future__ import annotations

import contextvars
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from . import rule_index
from csplatform.celery import task_named

from .models import Event
from .subjects import account_of, name_of

if TYPE_CHECKING:
    from .batch import Batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cause:
    """What the writes in progress were caused by: a run at ``depth - 1`` of ``batch``, in the chain of runs
    that ``chain`` (the first event's id) started."""

    depth: int
    batch: Batch
    chain: int | None = None


_running: contextvars.ContextVar[Cause | None] = contextvars.ContextVar("automation_running", default=None)


def json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def chain_of(event: Event | None) -> int | None:
    """The chain an event belongs to: the id of the event that started it (its own, for a first event)."""
    return None if event is None else (event.chain_id or event.pk)


@contextmanager
def actions_running(depth: int, batch: Batch, chain: int | None = None):
    """Events written inside this block were caused by a run at ``depth`` of ``batch`` in ``chain``."""
    token = _running.set(Cause(depth + 1, batch, chain))
    try:
        yield
    finally:
        _running.reset(token)


@contextmanager
def batch_running(batch: Batch):
    """Writes inside this block belong to ``batch`` (depth 0 outside its actions): they use its rule-index
    memo, so a rebuild inside a transaction that may still roll back never reaches the shared cache."""
    token = _running.set(Cause(0, batch))
    try:
        yield
    finally:
        _running.reset(token)


def running() -> Cause | None:
    """The run whose actions are writing now, if any (for signal receivers)."""
    return _running.get()


def snapshot(instance) -> dict:
    """Field values as loaded; kept on the instance so updates can report old values without a query. Fields
    deferred by ``only()`` / ``defer()`` are left out: reading one would load it (a query each, and each load
    would take a snapshot again)."""
    loaded = instance.__dict__
    return {f.attname: loaded[f.attname] for f in instance._meta.concrete_fields if f.attname in loaded}


def _changes(old: dict, instance) -> dict:
    changes = {}
    for field in instance._meta.concrete_fields:
        if field.attname == "updated_at" or (old and field.attname not in old):  # not loaded: its old value is unknown
            continue
        before, after = old.get(field.attname), getattr(instance, field.attname, None)
        if before != after:
            changes[field.name] = {"old": before, "new": after}
    return changes


def _row(instance) -> dict:
    data = {f.name: f.value_from_object(instance) for f in instance._meta.concrete_fields}
    data["id"] = instance.pk
    return data


def payload_of(instance) -> dict:
    """Every column by field name (foreign keys as ids), the non-editable ones too (the account's health score,
    risk level and stage, timestamps): the event's snapshot of the row (``chains.as_described``)."""
    return json_safe(_row(instance))


def listening(tenant_id, type: str, model: str = "account") -> bool:
    """Whether a live rule of the tenant listens to ``type`` events of ``model`` (the run's memo inside a batch)."""
    cause = _running.get()
    return rule_index.interested(tenant_id, type, model, memo=cause.batch.rule_index if cause else None)


def emit(*, tenant_id, type: str, model: str = "account", object_id: Any = "", account=None,
         payload: dict | Callable[[], dict] | None = None, changes: dict | None = None) -> Event | None:
    """Record a domain event (payment_failed, health_score_change, …) if any live rule listens.
    ``payload`` may be a callable, so costly payloads are only built when someone listens."""
    if not listening(tenant_id, type, model):
        return None
    cause = _running.get()
    if callable(payload):
        payload = payload()
    event = Event.objects.create(
        tenant_id=tenant_id, type=type, model=model, object_id=str(object_id or ""),
        account_id=account.pk if account is not None else None,
        payload=json_safe(payload or {}), changes=json_safe(changes or {}), depth=cause.depth if cause else 0,
        chain_id=cause.chain if cause else None,
    )
    transaction.on_commit(lambda: dispatch(event))
    return event


@dataclass(frozen=True)
class NewEvent:
    """One event for ``emit_many``: ``emit``'s arguments but the tenant (the payload, or a callable building it)."""

    type: str
    model: str = "account"
    object_id: Any = ""
    account: Any = None
    payload: dict | Callable[[], dict] | None = None
    changes: dict | None = None


def emit_many(*, tenant_id, events: Iterable[NewEvent]) -> list[int]:
    """``emit`` for many events of one tenant: those a live rule listens to are written in order with one INSERT,
    and handed to celery after commit with one message per ``AUTOMATION_EVENT_BATCH`` events (the worker's
    ``process_event`` takes that many of the tenant's pending events). Returns the new events' ids, ascending."""
    cause = _running.get()
    interest: dict[tuple[str, str], bool] = {}
    rows = []
    for event in events:
        key = (event.type, event.model)
        if key not in interest:
            interest[key] = listening(tenant_id, *key)
        if interest[key]:
            rows.append(event)
    if not rows:
        return []
    common = [tenant_id, cause.depth if cause else 0, cause.chain if cause else None, timezone.now()]
    ids = sorted(_insert_events(rows, common))
    step = max(1, settings.AUTOMATION_EVENT_BATCH)
    transaction.on_commit(lambda: dispatch_many(tenant_id, ids[::step]))
    return ids


def _insert_events(rows: list[NewEvent], common: list) -> list[int]:
    """The rows with ``common`` = tenant id, depth, chain id and time written; their ids."""
    values = [{"type": e.type, "model": e.model, "object_id": str(e.object_id or ""),
               "account_id": e.account.pk if e.account is not None else None,
               "payload": (e.payload() if callable(e.payload) else e.payload) or {}, "changes": e.changes or {}}
              for e in rows]
    if connection.vendor != "postgresql":
        shared = dict(zip(("tenant_id", "depth", "chain_id", "created_at"), common))
        return [event.pk for event in Event.objects.bulk_create([Event(**shared, **json_safe(row)) for row in values])]
    # The rows travel as one JSON document (what json_safe makes of each payload), typed by the table's own row
    # type: model instances and bulk_create's escaping of every column cost more than the INSERT itself.
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, depth, chain_id, created_at, attempts, last_error, type, model, "
            "object_id, account_id, payload, changes) SELECT %s, %s, %s, %s, 0, '', e.type, e.model, e.object_id, "
            f"e.account_id, e.payload, e.changes FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb) AS e "
            "RETURNING id", [*common, json.dumps(values, cls=DjangoJSONEncoder)])
        return [row[0] for row in cursor.fetchall()]


def model_change(instance, *, created: bool = False, deleted: bool = False) -> NewEvent | None:
    """The event a save or delete of ``instance`` raises: None for a model no rule can watch, or an update that
    changed nothing since it was loaded (its snapshot, ``remember_loaded_values``)."""
    model = name_of(type(instance))
    if model is None:
        return None
    if deleted:
        event_type, changes = "model_deleted", {}
    elif created:
        event_type, changes = "model_created", {}
    else:
        event_type = "model_updated"
        changes = _changes(getattr(instance, "_automation_snapshot", {}), instance)
        if not changes:
            return None
    return NewEvent(type=event_type, model=model, object_id=instance.pk,
                    account=None if deleted and model == "account" else account_of(instance),
                    payload=partial(_row, instance), changes=changes)  # built only if a rule listens


def record_model_change(instance, *, created: bool = False, deleted: bool = False) -> Event | None:
    change = model_change(instance, created=created, deleted=deleted)
    if change is None:
        return None
    event = emit(tenant_id=instance.tenant_id, type=change.type, model=change.model, object_id=change.object_id,
                 account=change.account, payload=change.payload, changes=change.changes)
    instance._automation_snapshot = snapshot(instance)
    return event


PROCESS_EVENT_TASK = "automation.tasks.process_event"


def dispatch(event: Event) -> None:
    dispatch_ids(event.tenant_id, event.pk)


def dispatch_ids(tenant_id, event_id) -> bool:
    """Hand one event to a worker (by task name: the tasks module imports the engine, which imports this one).
    A broker outage only delays it: the event stays pending and the sweeper hands it out again (False)."""
    try:
        task_named(PROCESS_EVENT_TASK).delay(str(tenant_id), event_id)
    except (BrokerError, OSError):
        log.exception("could not hand event %s of tenant %s to celery; the sweeper will", event_id, tenant_id)
        return False
    return True


def dispatch_many(tenant_id, event_ids: list[int]) -> None:
    """One message per id; each worker batch drains the tenant's pending events, the given one first. After a
    failed hand-over the rest wait for the sweeper too (one error logged, not thousands)."""
    for event_id in event_ids:
        if not dispatch_ids(tenant_id, event_id):
            return
