"""Reads of the automation app that are more than a filter: score windows, the rule an inbound webhook
names, run figures and statistics, backtests.

Run figures are computed in the database (a handful of aggregate queries, whatever the number of runs).
``run_count`` counts runs that acted (skipped runs are reported apart, by reason) and ``success_rate`` is
successes over finished runs that acted: ``None`` when nothing has run yet.

A backtest answers "how often would this rule have run over the stored events?": the rule's trigger and
conditions are replayed over the tenant's events of the window, nothing is run. Two limits, reported in the
answer: conditions read the subjects as they are now (only the events' own changes are historical), and
events are only stored while some live rule listens to them, so a kind of change nobody listened to left
nothing to replay.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter, defaultdict
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db.models import (Count, ExpressionWrapper, F, FloatField, IntegerField, OuterRef, Prefetch, Q, QuerySet,
                              Subquery, Value)
from django.db.models.functions import Coalesce, NullIf, TruncDate
from django.utils import timezone

from accounts.models import Account, HealthScore
from csplatform.tenancy import system_context

from . import conditions
from .models import Event, Run, RunStep, Workflow
from .subjects import model_for
from .triggers import parse_duration, triggers

WINDOWS = ("1h", "1d", "1w")


def window_scores(score: HealthScore) -> dict:
    """The account's score at the start of each standard window (for health_score_change time_window)."""
    return window_scores_many(score.tenant_id, [score])[0]


def window_scores_many(tenant_id, scores: list[HealthScore]) -> list[dict]:
    """``window_scores`` of each score, in order: one query per distinct ``calculated_at`` (an import's scores
    share theirs), each account's latest score at or before every window's start found through its
    ``(account, -calculated_at)`` index."""
    found: dict = {}
    for at in {score.calculated_at for score in scores}:
        before = {window: HealthScore.objects.filter(
            account=OuterRef("pk"), calculated_at__lte=at - parse_duration(window, "time_window"))
            .order_by("-calculated_at", "-id").values("overall_score")[:1] for window in WINDOWS}
        rows = (Account.objects.for_tenant(tenant_id)
                .filter(pk__in={score.account_id for score in scores if score.calculated_at == at})
                .order_by().values_list("pk", *(Subquery(query) for query in before.values())))
        for pk, *values in rows:
            found[(pk, at)] = {window: float(value) if value is not None else None
                               for window, value in zip(WINDOWS, values)}
    return [found.get((score.account_id, score.calculated_at)) or dict.fromkeys(WINDOWS) for score in scores]


WEBHOOK_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


def live_webhook_rule(token: str) -> Workflow | None:
    """The live (active, enabled) webhook rule owning ``token``, or None. The caller knows no tenant yet, so
    the lookup runs in a system context (logged); anything that is not one of our tokens costs no query."""
    if not WEBHOOK_TOKEN.fullmatch(token):
        return None
    with system_context("inbound webhook: find the rule by its token"):
        return (Workflow.objects.select_related("tenant")
                .filter(webhook_token=token, trigger_type="webhook", status=Workflow.Status.ACTIVE, enabled=True)
                .first())


# --- runs and their figures ---------------------------------------------------------------------------------

S = Run.Status
ACTED = (S.QUEUED, S.RUNNING, S.SUCCESS, S.FAILED)


def runs_of(tenant) -> QuerySet:
    """The tenant's runs with their rule and their steps in order."""
    return (Run.objects.for_tenant(tenant).select_related("workflow")
            .prefetch_related(Prefetch("steps", queryset=RunStep.objects.order_by("position"))))


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


def with_recent_run_figures(rules: QuerySet, *, days: int) -> QuerySet:
    """Rules annotated with their runs of the last ``days`` days, in the one list query: runs_7d, ok_7d
    (successes), done_7d (success or failed) and success_rate_7d (percent, None while nothing finished). The
    names keep their ``_7d`` suffix whatever ``days`` is."""
    since = timezone.now() - datetime.timedelta(days=days)
    recent = Run.objects.filter(workflow=OuterRef("pk"), created_at__gte=since).order_by().values("workflow")

    def count(**filters):
        runs = recent.filter(**filters).annotate(n=Count("pk")).values("n")[:1]
        return Coalesce(Subquery(runs, output_field=IntegerField()), Value(0))

    return rules.annotate(
        runs_7d=count(),
        ok_7d=count(status=S.SUCCESS),
        done_7d=count(status__in=[S.SUCCESS, S.FAILED]),
    ).annotate(
        success_rate_7d=ExpressionWrapper(F("ok_7d") * 100.0 / NullIf(F("done_7d"), 0), output_field=FloatField()),
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


# --- backtest -----------------------------------------------------------------------------------------------

MAX_BACKTEST_EVENTS = 10_000
# Triggers started by the clock, by hand or by a caller: no stored events tell when they would have run.
NOT_EVENT_DRIVEN = ("manual", "scheduled", "time_based", "webhook")


def backtest(rule: Workflow, days: int, now=None) -> dict:
    """The rule's trigger and conditions over the tenant's events of the last ``days`` days (at most
    ``MAX_BACKTEST_EVENTS``): how many matched, how many would have run, for which accounts. A rule no stored
    event starts: ValidationError on ``backtest_days``."""
    if rule.trigger_type in NOT_EVENT_DRIVEN or rule.trigger_type not in triggers:
        raise ValidationError({"backtest_days": [f"'{rule.trigger_type}' rules are not started by stored events."]})
    trigger = triggers.get(rule.trigger_type)
    since = (now or timezone.now()) - datetime.timedelta(days=days)
    types = {event_type for event_type, _ in trigger.listens_to(rule.trigger_config, rule.model_type)}
    events = list(Event.objects.for_tenant(rule.tenant_id).filter(created_at__gte=since, type__in=types)
                  .order_by("created_at", "id")[:MAX_BACKTEST_EVENTS + 1])
    truncated = len(events) > MAX_BACKTEST_EVENTS
    matched = [e for e in events[:MAX_BACKTEST_EVENTS] if trigger.matches(rule.trigger_config, rule.model_type, e)]
    subjects = _backtest_subjects(rule, matched)
    runs: Counter = Counter()
    for event in matched:
        subject = subjects.get((rule.model_type or event.model or "account", event.object_id))
        target = subject if subject is not None else subjects.get(("account", str(event.account_id)))
        if _passes(rule, target, event):
            runs[str(event.account_id) if event.account_id else ""] += 1
    names = {str(pk): name for pk, name in Account.objects.for_tenant(rule.tenant_id)
             .filter(pk__in=[a for a in runs if a]).values_list("pk", "name")}
    return {
        "days": days, "events_scanned": min(len(events), MAX_BACKTEST_EVENTS), "truncated": truncated,
        "trigger_matched": len(matched), "would_run": sum(runs.values()),
        "accounts": [{"id": account or None, "name": names.get(account), "runs": n}
                     for account, n in runs.most_common()],
    }


def _backtest_subjects(rule: Workflow, events: list[Event]) -> dict:
    """Every subject the events name, a query per model instead of one per event."""
    wanted = defaultdict(set)
    for event in events:
        if event.object_id and event.type != "model_deleted":
            wanted[rule.model_type or event.model or "account"].add(event.object_id)
        if event.account_id:
            wanted["account"].add(str(event.account_id))
    found = {}
    for model_name, ids in wanted.items():
        rows = model_for(model_name).objects.for_tenant(rule.tenant_id).filter(pk__in=list(ids))
        found.update({(model_name, str(row.pk)): row for row in rows})
    return found


def _passes(rule: Workflow, target, event: Event) -> bool:
    if not rule.conditions or not rule.conditions.get("conditions"):
        return True
    if target is None:  # deleted since: nothing to read
        return False
    try:
        return conditions.evaluate(rule.conditions, target, changes=event.changes, now=event.created_at)
    except conditions.ConditionError:
        return False
