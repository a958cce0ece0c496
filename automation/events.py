"""Turning changes into Event rows, in the caller's transaction, and handing them on after commit.

``emit()`` is the one way to raise a domain event; ``record_model_change()`` is what the thin
signal receivers call. Both write nothing when no live rule of the tenant listens (rule index).
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
from typing import TYPE_CHECKING, Any, Callable

from django.core.serializers.json import DjangoJSONEncoder
from kombu.exceptions import OperationalError as BrokerError
from django.db import transaction

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
    """Field values as loaded; kept on the instance so updates can report old values without a query."""
    return {f.attname: getattr(instance, f.attname, None) for f in instance._meta.concrete_fields}


def diff(old: dict, instance) -> dict:
    changes = {}
    for field in instance._meta.concrete_fields:
        if field.attname in ("updated_at",):
            continue
        before, after = old.get(field.attname), getattr(instance, field.attname, None)
        if before != after:
            changes[field.name] = {"old": before, "new": after}
    return json_safe(changes)


def payload_of(instance) -> dict:
    """Every column by field name (foreign keys as ids), the non-editable ones too (the account's health score,
    risk level and stage, timestamps): the event's snapshot of the row (``chains.as_described``)."""
    data = {f.name: f.value_from_object(instance) for f in instance._meta.concrete_fields}
    data["id"] = instance.pk
    return json_safe(data)


def emit(*, tenant_id, type: str, model: str = "account", object_id: Any = "", account=None,
         payload: dict | Callable[[], dict] | None = None, changes: dict | None = None) -> Event | None:
    """Record a domain event (payment_failed, health_score_change, …) if any live rule listens.
    ``payload`` may be a callable, so costly payloads are only built when someone listens."""
    cause = _running.get()
    if not rule_index.interested(tenant_id, type, model, memo=cause.batch.rule_index if cause else None):
        return None
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


def record_model_change(instance, *, created: bool = False, deleted: bool = False) -> Event | None:
    model = name_of(type(instance))
    if model is None:
        return None
    if deleted:
        event_type, changes = "model_deleted", {}
    elif created:
        event_type, changes = "model_created", {}
    else:
        event_type = "model_updated"
        changes = diff(getattr(instance, "_automation_snapshot", {}), instance)
        if not changes:
            return None
    account = account_of(instance)
    event = emit(
        tenant_id=instance.tenant_id, type=event_type, model=model, object_id=instance.pk,
        account=None if deleted and model == "account" else account, payload=payload_of(instance), changes=changes,
    )
    instance._automation_snapshot = snapshot(instance)
    return event


PROCESS_EVENT_TASK = "automation.tasks.process_event"


def dispatch(event: Event) -> None:
    dispatch_ids(event.tenant_id, event.pk)


def dispatch_ids(tenant_id, event_id) -> None:
    """Hand one event to a worker (by task name: the tasks module imports the engine, which imports this one).
    A broker outage only delays it: the event stays pending and the sweeper hands it out again."""
    try:
        task_named(PROCESS_EVENT_TASK).delay(str(tenant_id), event_id)
    except (BrokerError, OSError):
        log.exception("could not hand event %s of tenant %s to celery; the sweeper will", event_id, tenant_id)
