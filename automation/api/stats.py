"""Run figures for the rule APIs, computed in the database (a handful of aggregate queries, whatever the
number of runs). ``run_count`` counts runs that acted (skipped runs are reported apart, by reason) and
``success_rate`` is successes over finished runs that acted: ``None`` when nothing has run yet."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from automation.models import Run, Workflow

S = Run.Status
ACTED = (S.QUEUED, S.RUNNING, S.SUCCESS, S.FAILED)


def rate(success: int, failed: int) -> float | None:
    finished = success + failed
    return round(success / finished, 4) if finished else None


def with_run_figures(rules: QuerySet) -> QuerySet:
    """Rules annotated with run_count, success_count, failed_count and skipped_count (one grouped query)."""
    return rules.annotate(
        run_count=Count("runs", filter=Q(runs__status__in=ACTED)),
        success_count=Count("runs", filter=Q(runs__status=S.SUCCESS)),
        failed_count=Count("runs", filter=Q(runs__status=S.FAILED)),
        skipped_count=Count("runs", filter=Q(runs__status=S.SKIPPED)),
    )


def _status_counts() -> dict:
    return {name: Count("id", filter=Q(status=value)) for name, value in
            (("success", S.SUCCESS), ("failed", S.FAILED), ("skipped", S.SKIPPED), ("running", S.RUNNING),
             ("queued", S.QUEUED))}


def automation_stats(tenant, *, days: int = 14, now: datetime.datetime | None = None) -> dict:
    rules = Workflow.objects.for_tenant(tenant).aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(status=Workflow.Status.ACTIVE, enabled=True)),  # live: they fire
        draft=Count("id", filter=Q(status=Workflow.Status.DRAFT)),
        paused=Count("id", filter=Q(status=Workflow.Status.PAUSED)),
        disabled=Count("id", filter=Q(enabled=False)),
    )
    runs = Run.objects.for_tenant(tenant)
    totals = runs.aggregate(total=Count("id"), **_status_counts())
    skipped = dict(runs.filter(status=S.SKIPPED).order_by().values_list("skip_reason").annotate(n=Count("id")))
    return {
        "total_workflows": rules["total"],
        "active_workflows": rules["active"],
        "workflows": rules,
        "run_count": totals["total"] - totals["skipped"],
        "runs": totals,
        "success_rate": rate(totals["success"], totals["failed"]),
        "skipped_by_reason": {reason: skipped.get(reason, 0) for reason in Run.SkipReason.values},
        "runs_per_day": runs_per_day(runs, tenant, days=days, now=now),
    }


def runs_per_day(runs: QuerySet, tenant, *, days: int, now: datetime.datetime | None = None) -> list[dict]:
    """The last ``days`` days in the tenant's timezone, oldest first, days without runs included."""
    zone = ZoneInfo(getattr(tenant, "timezone", "") or "UTC")
    today = timezone.localtime(now or timezone.now(), zone).date()
    first = today - datetime.timedelta(days=days - 1)
    since = datetime.datetime.combine(first, datetime.time(), tzinfo=zone)
    rows = (runs.filter(created_at__gte=since).annotate(day=TruncDate("created_at", tzinfo=zone))
            .order_by().values("day").annotate(total=Count("id"), **_status_counts()))
    by_day = {row.pop("day"): row for row in rows}
    empty = {"total": 0, "success": 0, "failed": 0, "skipped": 0, "running": 0, "queued": 0}
    return [{"date": (first + datetime.timedelta(days=i)).isoformat(),
             **by_day.get(first + datetime.timedelta(days=i), empty)} for i in range(days)]
