"""Recording a health score for many accounts at once (a nightly import): the bulk path of ``health_score_record``.

Each account gets what ``accounts.services.health_score_record`` gives it (the same scoring, bands, carried
adjustment, ``previous_score``, and the account's mirrors moved only when the new score is the latest), but a
chunk of accounts costs a constant number of queries instead of about ten per account: lock the chunk's accounts
(one SELECT … FOR UPDATE that also finds each one's preceding score and whether a later one exists), read those
preceding scores (one SELECT), insert the new scores (one INSERT) and move the mirrors (one UPDATE).

Events. ``accounts`` knows nothing of automation (DESIGN.md), so it raises them with signals, as the single-score
path does. When a receiver listens to ``health_scores_imported`` (one signal per chunk, for a bulk writer of
events), only that signal is sent; otherwise each account gets the signals the single path sends: ``post_save``
of its mirrors (``model_updated`` with the old and new ``health_score`` / ``risk_level``) and
``health_score_recorded``. Rules see the same events either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.db.models.signals import post_save
from django.dispatch import Signal
from django.utils import timezone

from . import signals
from .models import COMPONENTS, Account, HealthScore, Tenant
from .services import _Adjustment, _apply_adjustment, health_score_compute, risk_level_for

CHUNK = 2000
MIRRORS = ["health_score", "risk_level", "updated_at"]

# One per chunk: ``tenant_id`` and ``imported``, a list of ``ImportedScore`` (sender=HealthScore).
health_scores_imported = Signal()


@dataclass(frozen=True)
class ImportedScore:
    score: HealthScore
    previous: HealthScore | None
    account: Account  # its mirrors as they are now (``score.account`` is the same object)
    mirrored: bool  # the score is the account's latest: its mirrors moved
    old_health_score: Decimal | None
    old_risk_level: str


@dataclass
class ImportResult:
    recorded: int = 0
    errors: dict[str, Any] | None = None  # account id -> the ValidationError's messages


def health_scores_import(*, tenant: Tenant, rows: Iterable[tuple[Any, Mapping[str, Any]]],
                         calculated_at: datetime | None = None, chunk: int = CHUNK) -> ImportResult:
    """Record ``(account_id, components)`` for each row, ``chunk`` accounts per transaction. A row that is invalid
    (unknown account, bad components) is left out and reported in ``errors``; the others are recorded.
    The caller is in the tenant's context."""
    calculated_at = calculated_at or timezone.now()
    result = ImportResult(errors={})
    batch: list[tuple[Any, Mapping[str, Any]]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            result.recorded += _import_chunk(tenant, batch, calculated_at, result.errors)
            batch = []
    if batch:
        result.recorded += _import_chunk(tenant, batch, calculated_at, result.errors)
    return result


@transaction.atomic
def _import_chunk(tenant: Tenant, rows: list[tuple[Any, Mapping[str, Any]]], at: datetime, errors: dict) -> int:
    scores = HealthScore.objects.filter(account=OuterRef("pk"))
    accounts = {str(a.pk): a for a in Account.objects.for_tenant(tenant).select_for_update(of=("self",))
                .filter(pk__in=[account_id for account_id, _ in rows]).order_by("pk")  # one lock order: no deadlocks
                .annotate(previous_id=Subquery(scores.filter(calculated_at__lte=at)
                                               .order_by("-calculated_at", "-id").values("pk")[:1]),
                          has_later=Exists(scores.filter(calculated_at__gt=at)))}
    previous = HealthScore.objects.for_tenant(tenant).in_bulk(
        [a.previous_id for a in accounts.values() if a.previous_id is not None])
    imported: list[ImportedScore] = []
    for account_id, components in rows:
        account = accounts.get(str(account_id))
        if account is None:
            errors[str(account_id)] = {"account": ["No such account in this tenant."]}
            continue
        try:
            imported.append(_score(tenant, account, components, previous.get(account.previous_id), at))
        except ValidationError as exc:
            errors[str(account_id)] = exc.message_dict if hasattr(exc, "error_dict") else {"score": exc.messages}
    HealthScore.objects.bulk_create([row.score for row in imported])
    _mirror([row.account for row in imported if row.mirrored])
    _raise_events(tenant, imported)
    return len(imported)


def _mirror(accounts: list[Account]) -> None:
    """The accounts' ``health_score`` / ``risk_level`` (already set on the objects) written with one UPDATE."""
    now = timezone.now()
    for account in accounts:
        account.updated_at = now
    if not accounts:
        return
    if connection.vendor != "postgresql":
        Account.objects.bulk_update(accounts, MIRRORS)
        return
    # bulk_update's CASE WHEN per row and field costs more in Python than the whole import: the rows travel as
    # one JSON document instead.
    rows = json.dumps([[str(a.pk), str(a.health_score), a.risk_level] for a in accounts])
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Account._meta.db_table} AS a SET health_score = (r.value ->> 1)::numeric, "
                       "risk_level = r.value ->> 2, updated_at = %s FROM jsonb_array_elements(%s::jsonb) AS r(value) "
                       "WHERE a.id = (r.value ->> 0)::uuid", [now, rows])


def _score(tenant: Tenant, account: Account, components: Mapping[str, Any], previous: HealthScore | None,
           at: datetime) -> ImportedScore:
    """The new score of one account as ``health_score_record`` computes it (not saved yet)."""
    weighted, breakdown = health_score_compute(tenant=tenant, components=components)
    adjustment = _Adjustment.of(previous, at)
    overall, breakdown = _apply_adjustment(weighted, breakdown, adjustment)
    score = HealthScore(
        tenant=tenant, account=account, overall_score=overall, breakdown=breakdown,
        risk_level=risk_level_for(tenant=tenant, score=overall),
        previous_score=previous.overall_score if previous else None, calculated_at=at,
        adjustment=adjustment.value, adjustment_reason=adjustment.reason if adjustment.value else "",
        adjustment_expires_at=adjustment.expires_at if adjustment.value else None,
        **{name: components.get(name) for name in COMPONENTS},
    )
    # The accounts are known to exist (locked above): only the values need checking, not the foreign keys.
    score.full_clean(exclude=["tenant", "account"], validate_unique=False, validate_constraints=False)
    old_health, old_risk = account.health_score, account.risk_level
    mirrored = not account.has_later
    if mirrored:
        account.health_score, account.risk_level = overall, score.risk_level
    return ImportedScore(score, previous, account, mirrored, old_health, old_risk)


def _raise_events(tenant: Tenant, imported: list[ImportedScore]) -> None:
    if not imported:
        return
    if health_scores_imported.has_listeners(HealthScore):
        health_scores_imported.send(sender=HealthScore, tenant_id=tenant.pk, imported=imported)
        return
    for row in imported:  # what ``_health_score_write`` sends for one score
        if row.mirrored:
            post_save.send(sender=Account, instance=row.account, created=False, update_fields=frozenset(MIRRORS),
                           raw=False, using=Account.objects.db)
        signals.health_score_recorded.send(sender=HealthScore, score=row.score, previous=row.previous)
