"""Recording a health score for many accounts at once (a nightly import): the bulk path of ``health_score_record``.

Each account gets what ``accounts.services.health_score_record`` gives it (the same scoring, bands, carried
adjustment, ``previous_score``, and the account's mirrors moved only when the new score is the latest), but a
chunk of accounts costs a constant number of queries instead of about ten per account: lock the chunk's accounts
(one SELECT … FOR UPDATE that also finds each one's preceding score and whether a later one exists), read those
preceding scores (one SELECT), insert the new scores (one INSERT) and move the mirrors (one UPDATE). A second row
for an account already in the chunk starts a new chunk, so it follows the first as a second recording would.

Events. ``accounts`` knows nothing of automation (DESIGN.md), so it raises them with signals, as the single-score
path does. When a receiver listens to ``health_scores_imported`` (one signal per chunk, for a bulk writer of
events: ``automation.signals``), only that signal is sent; otherwise each account gets the signals the single path
sends: ``post_save`` of the new score, ``post_save`` of its mirrors (``model_updated`` with the old and new
``health_score`` / ``risk_level``) and ``health_score_recorded``. Rules see the same events either way.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
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
    batch: dict[uuid.UUID, Mapping[str, Any]] = {}
    for account_id, components in rows:
        try:
            key = account_id if isinstance(account_id, uuid.UUID) else uuid.UUID(str(account_id))
        except ValueError:
            result.errors[str(account_id)] = {"account": [f"'{account_id}' is not an account id."]}
            continue
        if len(batch) >= chunk or key in batch:
            result.recorded += _import_chunk(tenant, list(batch.items()), calculated_at, result.errors)
            batch = {}
        batch[key] = components
    if batch:
        result.recorded += _import_chunk(tenant, list(batch.items()), calculated_at, result.errors)
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
    memo: dict = {}
    for account_id, components in rows:
        account = accounts.get(str(account_id))
        if account is None:
            errors[str(account_id)] = {"account": ["No such account in this tenant."]}
            continue
        try:
            imported.append(_score(tenant, account, components, previous.get(account.previous_id), at, memo))
        except ValidationError as exc:
            errors[str(account_id)] = exc.message_dict if hasattr(exc, "error_dict") else {"score": exc.messages}
    _insert([row.score for row in imported])
    _mirror([row.account for row in imported if row.mirrored])
    _raise_events(tenant, imported)
    return len(imported)


class _ExactJSONEncoder(DjangoJSONEncoder):
    """Times to the microsecond (DjangoJSONEncoder keeps milliseconds, as events do): the rows keep what a save keeps."""

    def default(self, o):
        return o.isoformat() if isinstance(o, datetime) else super().default(o)


def _insert(scores: list[HealthScore]) -> None:
    """The new scores with one INSERT; each object gets its id, as ``bulk_create`` gives it."""
    now = timezone.now()
    for score in scores:
        score.created_at = now
    if not scores or connection.vendor != "postgresql":
        HealthScore.objects.bulk_create(scores)
        return
    # Rows as one JSON document typed by the table's row type: bulk_create's escaping of each column of each row
    # cost as much as the rest of the import.
    fields = [f for f in HealthScore._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f.column for f in fields)
    document = json.dumps([{f.column: f.value_from_object(score) for f in fields} for score in scores],
                          cls=_ExactJSONEncoder)
    table = HealthScore._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_populate_recordset("
                       f"NULL::{table}, %s::jsonb) RETURNING id, account_id", [document])
        ids = dict((account_id, pk) for pk, account_id in cursor.fetchall())  # one score per account in a chunk
    for score in scores:
        score.pk = ids[score.account_id]
        score._state.adding, score._state.db = False, HealthScore.objects.db


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
           at: datetime, memo: dict) -> ImportedScore:
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
    _clean_components(score, memo)
    old_health, old_risk = account.health_score, account.risk_level
    mirrored = not account.has_later
    if mirrored:
        account.health_score, account.risk_level = overall, score.risk_level
    return ImportedScore(score, previous, account, mirrored, old_health, old_risk)


COMPONENT_FIELDS = [HealthScore._meta.get_field(name) for name in COMPONENTS]


def _clean_components(score: HealthScore, memo: dict) -> None:
    """``full_clean`` of what a caller gives (the components: the rest is computed, or read from the account's
    stored scores), each distinct value cleaned once per chunk (``memo``): a nightly file repeats its values."""
    errors = {}
    for field in COMPONENT_FIELDS:
        raw = getattr(score, field.attname)
        if raw in field.empty_values:  # blank=True: left alone, as clean_fields leaves it
            continue
        key = (field.attname, type(raw), repr(raw))  # repr: Decimal("35.000") == Decimal("35") but is refused
        cleaned = memo[key] if key in memo else memo.setdefault(key, _clean(field, raw, score))
        if isinstance(cleaned, ValidationError):
            errors[field.name] = cleaned.error_list
        else:
            setattr(score, field.attname, cleaned)
    if errors:
        raise ValidationError(errors)


def _clean(field, raw, score: HealthScore) -> Any:
    try:
        return field.clean(raw, score)
    except ValidationError as exc:
        return exc


def _raise_events(tenant: Tenant, imported: list[ImportedScore]) -> None:
    if not imported:
        return
    if health_scores_imported.has_listeners(HealthScore):
        health_scores_imported.send(sender=HealthScore, tenant_id=tenant.pk, imported=imported)
        return
    for row in imported:  # what ``_health_score_write`` sends for one score
        post_save.send(sender=HealthScore, instance=row.score, created=True, update_fields=None, raw=False,
                       using=HealthScore.objects.db)
        if row.mirrored:
            post_save.send(sender=Account, instance=row.account, created=False, update_fields=frozenset(MIRRORS),
                           raw=False, using=Account.objects.db)
        signals.health_score_recorded.send(sender=HealthScore, score=row.score, previous=row.previous)
