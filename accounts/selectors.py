"""Reads of the customer data model that are more than a filter."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Account, HealthScore

DEFAULT_TREND_WINDOW = timedelta(days=30)


def accounts_with_trend(queryset: QuerySet[Account], *, window: timedelta = DEFAULT_TREND_WINDOW) -> QuerySet:
    """Annotate ``health_trend``: the current score minus the latest score recorded before the window
    started (or, failing that, the earliest score inside it). One subquery, no per-row query."""
    since = timezone.now() - window
    before = HealthScore.objects.filter(account=OuterRef("pk"), calculated_at__lte=since).order_by("-calculated_at")
    earliest = HealthScore.objects.filter(account=OuterRef("pk"), calculated_at__gt=since).order_by("calculated_at")
    baseline = Coalesce(
        Subquery(before.values("overall_score")[:1]), Subquery(earliest.values("overall_score")[:1])
    )
    return queryset.annotate(
        health_trend=ExpressionWrapper(F("health_score") - baseline, output_field=DecimalField(max_digits=6, decimal_places=2))
    )


def account_health_rollup(account: Account) -> dict:
    """ARR-weighted health of an account and everything below it (accounts without a score are listed)."""
    # The root is re-read with its children (same query): the caller's object may predate its latest score.
    tenant_accounts = Account.objects.for_tenant(account.tenant_id)
    first_level = list(tenant_accounts.filter(Q(pk=account.pk) | Q(parent_id=account.pk)))
    account = next(a for a in first_level if a.pk == account.pk)
    children = [a for a in first_level if a.pk != account.pk]
    members = [account, *children]
    level = [child.pk for child in children]
    while level:
        found = list(tenant_accounts.filter(parent_id__in=level))
        members.extend(found)
        level = [a.pk for a in found]
    scored = [a for a in members if a.health_score is not None]
    total_arr = sum((a.arr for a in scored), Decimal("0"))
    if scored and total_arr > 0:
        score = sum((a.health_score * a.arr for a in scored), Decimal("0")) / total_arr
    elif scored:
        score = sum((a.health_score for a in scored), Decimal("0")) / len(scored)
    else:
        score = None
    return {
        "account_id": str(account.pk),
        "accounts_included": len(members),
        "accounts_scored": len(scored),
        "total_arr": float(sum((a.arr for a in members), Decimal("0"))),
        "rollup_score": float(score.quantize(Decimal("0.01"), ROUND_HALF_UP)) if score is not None else None,
        "unscored_accounts": [{"id": str(a.pk), "name": a.name} for a in members if a.health_score is None],
    }
