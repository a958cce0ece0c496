"""Retention: history older than its tenant's policy is deleted, in small batches, never pending work.

What is purged, by ``created_at`` against ``RetentionPolicy`` (a null field: ``settings.RETENTION_DEFAULTS``):

    runs                 finished runs (success, failed, skipped) and their steps; never queued or running ones
    events               processed events; never pending ones, nor ones set aside after failing
    delivered_messages   delivered outbox messages; never pending, sending or failed (retrying) ones
    dead_messages        dead outbox messages
    audit_log            audit log entries

Tenant by tenant in ``tenant_context`` (row-level security binds every statement), oldest rows first: each batch
selects up to ``RETENTION_BATCH`` (5,000) ids from the (tenant, created_at) index, starting where the last one
ended, and deletes them in its own short transaction (``lock_timeout`` 5 s on PostgreSQL: a batch that would
wait behind another lock gives up instead of queueing other writers behind it). Rows that point at a deleted
row are handled as their foreign key says, without loading them and without model signals: SET_NULL is one
UPDATE (a run's ``event``, a play's ``run``), CASCADE one DELETE (a run's steps). Called by
``manage.py purge_history`` and an hourly beat task with a time budget; the next run goes on where this one
stopped. docs/scaling.md has the numbers.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

from accounts.models import AuditLog, Tenant
from accounts.tokens import api_token_purge
from csplatform.tenancy import system_context, tenant_context
from delivery.models import Outbox

from .models import Event, RetentionPolicy, Run
from .periodic import register_periodic_task

log = logging.getLogger("automation.retention")

TASK = "automation.retention.purge_history_task"
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class History:
    key: str  # RetentionPolicy's field prefix and the RETENTION_DEFAULTS key
    model: type[models.Model]
    purgeable: models.Q  # beyond its age, what may go: never pending work


HISTORY = (
    History("runs", Run, models.Q(status__in=[Run.Status.SUCCESS, Run.Status.FAILED, Run.Status.SKIPPED])),
    History("events", Event, models.Q(processed_at__isnull=False)),
    History("delivered_messages", Outbox, models.Q(status=Outbox.Status.DELIVERED)),
    History("dead_messages", Outbox, models.Q(status=Outbox.Status.DEAD)),
    History("audit_log", AuditLog, models.Q()),
)


@dataclass
class PurgeResult:
    deleted: Counter = field(default_factory=Counter)  # by history key, plus cascaded tables (run_steps)
    by_tenant: dict[str, Counter] = field(default_factory=dict)
    seconds: float = 0.0
    finished: bool = True  # False: the budget ran out (the next run goes on)
    errors: list[str] = field(default_factory=list)


def policies(tenants) -> dict:
    """Days kept per history key, for each tenant (its policy over the defaults)."""
    with system_context("retention: policies of the tenants"):
        rows = {p.tenant_id: p for p in RetentionPolicy.objects.filter(tenant__in=[t.pk for t in tenants])}
    return {t.pk: (rows.get(t.pk) or RetentionPolicy()).effective() for t in tenants}


def purgeable(history: History, tenant, *, days: int, now: datetime.datetime) -> models.QuerySet:
    """The tenant's rows of ``history`` that may be deleted at ``now``."""
    cutoff = now - datetime.timedelta(days=days)
    return history.model.objects.for_tenant(tenant).filter(history.purgeable, created_at__lt=cutoff)


def purge_history(*, now: datetime.datetime | None = None, tenants=None, dry_run: bool = False,
                  batch: int | None = None, budget: float | None = None) -> PurgeResult:
    """Delete (or, ``dry_run``, count) every tenant's history older than its retention; stop starting new
    batches after ``budget`` seconds."""
    now = now or timezone.now()
    batch = batch or settings.RETENTION_BATCH
    started = time.monotonic()
    deadline = started + budget if budget else None
    if tenants is None:
        with system_context("retention: list tenants"):
            tenants = list(Tenant.objects.order_by("pk"))
    result = PurgeResult()
    days = policies(tenants)
    for tenant in tenants:
        counts = result.by_tenant.setdefault(tenant.slug, Counter())
        with tenant_context(tenant):
            for history in HISTORY:
                qs = purgeable(history, tenant, days=days[tenant.pk][history.key], now=now)
                try:
                    if dry_run:
                        counts.update(_count(history, qs))
                    else:
                        _purge(history, qs, batch, deadline, counts)
                except DatabaseError as exc:  # a lock timeout, a cancelled statement: the next run goes on
                    log.warning("retention: %s of tenant %s stopped: %s", history.key, tenant.slug, exc)
                    result.errors.append(f"{tenant.slug} {history.key}: {type(exc).__name__}")
                    continue
                if deadline and time.monotonic() >= deadline:
                    result.finished = False
                    break
        result.deleted.update(counts)
        if not result.finished:
            break
    result.seconds = time.monotonic() - started
    return result


def _count(history: History, qs: models.QuerySet) -> Counter:
    counts = Counter({history.key: qs.count()})
    for rel in _relations(history.model):
        if rel.on_delete is models.CASCADE:
            counts[_label(rel.related_model)] += rel.related_model._base_manager.filter(
                **{f"{rel.field.name}__in": qs.values("pk")}).count()
    return counts


def _purge(history: History, qs: models.QuerySet, batch: int, deadline: float | None, counts: Counter) -> Counter:
    """Delete ``qs`` in batches, oldest first, adding what went to ``counts`` as each batch commits."""
    since = None
    while True:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    # No waiting behind other locks; no waiting for the WAL flush either (a batch lost in a crash
                    # is deleted again by the next run).
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    cursor.execute("SET LOCAL synchronous_commit = off")
            page = qs if since is None else qs.filter(created_at__gte=since)  # every earlier row is gone
            rows = list(page.order_by("created_at", "pk").values_list("created_at", "pk")[:batch])
            if not rows:
                return counts
            deleted = _delete(history.model, [pk for _, pk in rows])
        gone = deleted.pop(_label(history.model), 0)
        counts[history.key] += gone
        counts.update(deleted)
        if not gone:  # deleted meanwhile by another run (or not deletable): stop rather than select them again
            log.warning("retention: %s: %d rows selected, none deleted; stopping", history.key, len(rows))
            return counts
        since = rows[-1][0]
        if len(rows) < batch or (deadline and time.monotonic() >= deadline):
            return counts


def _relations(model) -> list:
    """The foreign keys that point at ``model`` (reverse relations), as Django knows them: another app's
    included without importing it, and hidden ones (``related_name="+"``, e.g. a play's ``run``) too."""
    return [f for f in model._meta.get_fields(include_hidden=True)
            if f.auto_created and not f.concrete and (f.one_to_many or f.one_to_one)]


def _label(model) -> str:
    return {"runstep": "run_steps"}.get(model._meta.model_name, model._meta.model_name)


def _delete(model, ids: list) -> Counter:
    """Delete rows by id: their dependants first, as each foreign key's ``on_delete`` says, in one statement
    each, with no model loaded and no signal sent (history rows raise no events)."""
    counts: Counter = Counter()
    for rel in _relations(model):
        related = rel.related_model._base_manager.filter(**{f"{rel.field.attname}__in": ids})
        if rel.on_delete is models.SET_NULL:
            related.update(**{rel.field.attname: None})
        elif rel.on_delete is models.CASCADE:
            if _relations(rel.related_model):
                counts.update(_delete(rel.related_model, list(related.values_list("pk", flat=True))))
            else:
                counts[_label(rel.related_model)] += related._raw_delete(related.db)
        elif rel.on_delete is not models.DO_NOTHING:
            raise ValueError(f"retention cannot delete {model.__name__} rows: {rel.related_model.__name__}."
                             f"{rel.field.name} is {rel.on_delete.__name__}")
    query = model._base_manager.filter(pk__in=ids)
    counts[_label(model)] += query._raw_delete(query.db)  # one DELETE, no collector, no signals
    return counts


@shared_task(name=TASK, ignore_result=True, soft_time_limit=settings.RETENTION_PURGE_BUDGET + 120,
             time_limit=settings.RETENTION_PURGE_BUDGET + 180)
def purge_history_task() -> dict:
    outcome = purge_history(budget=settings.RETENTION_PURGE_BUDGET)
    tokens = api_token_purge()  # users' dead API tokens: not tenant history, but the same hourly sweep
    return ({key: n for key, n in outcome.deleted.items() if n} | ({"api tokens": tokens} if tokens else {})
            | ({} if outcome.finished else {"finished": False}))


register_periodic_task(
    "automation: purge old history", TASK, cron_minute="17", expire_seconds=3000,
    description="Deletes history older than each tenant's retention (events, runs, delivered and dead outbox "
                "messages, audit log) in batches, never pending work (automation/retention.py).")
