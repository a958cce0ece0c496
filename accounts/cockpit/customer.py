"""The customer 360's reads (apart from the timeline): the header, "why" (the score's components and what
moved them), the evidence behind the drivers (usage, surveys, tickets), "what's next" and the hierarchy.

Each part is a fixed number of queries over one account's rows (indexed by account and time).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Avg, Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from csplatform import charts

from ..models import COMPONENTS, Account, HealthScore, SupportTicket, SurveyResponse, UsageMetric
from ..selectors import DEFAULT_TREND_WINDOW, account_health_rollup
from . import sources
from .home import days_words
from .scores import BAND_COLOURS, COMPONENT_LABELS, Trend, band_zones, drivers, gauge_bands

TREND_DAYS = 90
USAGE_DAYS = 90
CHILDREN_SHOWN = 20
OPEN_TICKET_STATUSES = (SupportTicket.Status.OPEN, SupportTicket.Status.PENDING)


def _days(end: datetime.date, count: int) -> list[datetime.date]:
    return [end - datetime.timedelta(days=count - 1 - i) for i in range(count)]


# --- header: gauge and trend ---------------------------------------------------------------------

def score_trend(account: Account, today: datetime.date) -> list[float | None]:
    """The account's score on each of the last 90 days: the day's average of recorded scores, carried
    forward over days without one (the score stays what it was until a new one is recorded)."""
    days = _days(today, TREND_DAYS)
    scores = HealthScore.objects.for_tenant(account.tenant_id).filter(account=account)
    start = datetime.datetime.combine(days[0], datetime.time(), tzinfo=timezone.get_current_timezone())
    daily = {row["day"]: row["average"] for row in scores.filter(calculated_at__gte=start)
             .annotate(day=TruncDate("calculated_at")).order_by().values("day").annotate(average=Avg("overall_score"))}
    carried = scores.filter(calculated_at__lt=start).order_by("-calculated_at", "-id").values_list(
        "overall_score", flat=True).first()
    values = []
    for day in days:
        if daily.get(day) is not None:
            carried = daily[day]
        values.append(round(float(carried), 1) if carried is not None else None)
    return values


def header(account: Account, today: datetime.date) -> dict:
    trend = score_trend(account, today)
    band = account.get_risk_level_display() if account.risk_level else "Not scored"
    return {
        "gauge": charts.gauge(float(account.health_score) if account.health_score is not None else None,
                              title="Health score", bands=gauge_bands(account.tenant), label=band),
        "band": band, "band_colour": BAND_COLOURS.get(account.risk_level, "#78909c"),
        "trend_chart": charts.line_chart(
            [charts.Series("Health score", trend, "#1f6fb2")],
            labels=[f"{d:%d %b}" for d in _days(today, TREND_DAYS)], title="Health score, last 90 days",
            y_min=0, y_max=100, zones=band_zones(account.tenant), width=560, height=170),
        "renewal_in": days_words((account.renewal_date - today).days) if account.renewal_date else "",
    }


# --- why: the components ---------------------------------------------------------------------------

@dataclass
class ComponentRow:
    name: str
    label: str
    score: float | None
    weight: float | None  # percent of the overall score
    contribution: float | None
    points_lost: float | None
    change_previous: float | None
    change_30_days: float | None
    top: bool = False
    dropped: bool = False  # fell 10 points or more in 30 days
    links: list[tuple[str, str]] = field(default_factory=list)

    @property
    def drop(self) -> float | None:
        return -self.change_30_days if self.change_30_days is not None else None


def _change(now, then) -> float | None:
    if now is None or then is None:
        return None
    return round(float(now) - float(then), 1)


def _why_scores(account: Account, since: datetime.datetime):
    """The latest score, the one before it and the score of a month ago (the latest recorded before ``since``,
    else the earliest after it, as ``accounts_with_trend`` takes it), in one query of at most four rows."""
    scores = HealthScore.objects.for_tenant(account.tenant_id).filter(account=account)
    newest, oldest = ("-calculated_at", "-id"), ("calculated_at", "id")
    picks = (Q(pk__in=scores.order_by(*newest).values("pk")[:2])
             | Q(pk__in=scores.filter(calculated_at__lte=since).order_by(*newest).values("pk")[:1])
             | Q(pk__in=scores.filter(calculated_at__gt=since).order_by(*oldest).values("pk")[:1]))
    rows = list(scores.filter(picks).order_by(*newest))
    latest, previous = (rows + [None, None])[:2]
    month_ago = next((r for r in rows if r.calculated_at <= since), rows[-1] if rows else None)
    return latest, previous, month_ago


def why(account: Account, now: datetime.datetime) -> dict:
    since = now - DEFAULT_TREND_WINDOW
    latest, previous, month_ago = _why_scores(account, since)
    if latest is None:
        return {"latest": None, "rows": [], "missing": [], "trend": Trend(None)}
    ranked = {d.component: d for d in drivers(latest.breakdown)}
    top = next(iter(ranked), None)
    rows = []
    for name in COMPONENTS:
        value, driver = getattr(latest, name), ranked.get(name)
        old = getattr(month_ago, name) if month_ago is not None and month_ago.pk != latest.pk else None
        change_30 = _change(value, old)
        rows.append(ComponentRow(
            name, COMPONENT_LABELS[name], float(value) if value is not None else None,
            round(driver.weight * 100, 1) if driver else None, driver.contribution if driver else None,
            driver.points_lost if driver else None, _change(value, getattr(previous, name, None)), change_30,
            top=name == top, dropped=change_30 is not None and change_30 <= -10, links=evidence_links(account, name)))
    rows.sort(key=lambda r: (r.points_lost is None, -(r.points_lost or 0)))
    baseline = month_ago.overall_score if month_ago is not None and month_ago.pk != latest.pk else None
    return {"latest": latest, "previous": previous, "rows": rows,
            "missing": [COMPONENT_LABELS[n] for n in (latest.breakdown or {}).get("missing", [])],
            "adjustment": (latest.breakdown or {}).get("adjustment"),
            "change_previous": _change(latest.overall_score, previous.overall_score if previous else None),
            "trend": Trend(latest.overall_score - baseline if baseline is not None else None)}


def evidence_links(account: Account, component: str) -> list[tuple[str, str]]:
    """Where the data behind a component is: a section of this page, or the admin list of its rows."""
    by_account = f"?account__id__exact={account.pk}"
    lists = {
        "usage_score": [("Usage chart", "#usage"), ("Usage rows", "accounts_usagemetric")],
        "engagement_score": [("Engagements", "accounts_engagement"), ("Usage chart", "#usage")],
        "support_sentiment_score": [("Open tickets", "#tickets"), ("NPS and CSAT", "#surveys"),
                                    ("All tickets", "accounts_supportticket")],
        "adoption_score": [("Features used", "#usage"), ("Goals", "accounts_goal")],
    }
    links = []
    for label, target in lists.get(component, []):
        if target.startswith("#"):
            links.append((label, target))
        else:
            url = sources.admin_url(f"admin:{target}_changelist")
            if url:
                links.append((label, url + by_account))
    return links


# --- evidence: usage, surveys, tickets ----------------------------------------------------------------

def usage(account: Account, today: datetime.date) -> dict:
    days = _days(today, USAGE_DAYS)
    rows = {row["date"]: row for row in UsageMetric.objects.for_tenant(account.tenant_id)
            .filter(account=account, date__gte=days[0], date__lte=today)
            .values("date", "active_users", "logins", "session_minutes", "features_used")}
    latest = max(rows, default=None)

    def series(name: str, column: str, colour: str) -> charts.Series:
        return charts.Series(name, [rows[d][column] if d in rows else None for d in days], colour)

    chart = charts.line_chart(
        [series("Active users", "active_users", "#1f6fb2"), series("Logins", "logins", "#e65100")],
        labels=[f"{d:%d %b}" for d in days], title="Usage, last 90 days", y_min=0, width=560, height=170)
    seats = account.licensed_seats
    active = rows[latest]["active_users"] if latest else None
    return {"chart": chart, "has_data": bool(rows), "latest": rows.get(latest), "latest_date": latest,
            "features": (rows[latest]["features_used"] or []) if latest else [],
            "seat_use": round(100 * active / seats) if seats and active is not None else None}


def feedback(account: Account) -> dict:
    surveys = list(SurveyResponse.objects.for_tenant(account.tenant_id).filter(account=account)
                   .select_related("contact").order_by("-responded_at", "-pk")[:5])
    tickets = SupportTicket.objects.for_tenant(account.tenant_id).filter(account=account,
                                                                          status__in=OPEN_TICKET_STATUSES)
    shown = list(tickets.order_by("-opened_at", "-pk")[:6])  # a sixth says "count them"
    return {"surveys": surveys, "open_tickets": shown[:5],
            "open_ticket_count": len(shown) if len(shown) < 6 else tickets.count()}


# --- what's next and the hierarchy ---------------------------------------------------------------------

def upcoming(account: Account, *, role: str, now: datetime.datetime) -> list[sources.Upcoming]:
    items = [item for source in sources.readable(role) for item in source.upcoming(account, now=now)]

    def when(item):
        at = item.at
        if isinstance(at, datetime.datetime):
            return at
        if isinstance(at, datetime.date):
            return datetime.datetime.combine(at, datetime.time(), tzinfo=datetime.timezone.utc)
        return datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)

    return sorted(items, key=when)


def hierarchy(account: Account) -> dict:
    children = Account.objects.for_tenant(account.tenant_id).filter(parent=account)
    shown = list(children.order_by("name")[:CHILDREN_SHOWN])
    count = len(shown) if len(shown) < CHILDREN_SHOWN else children.aggregate(n=Count("pk"))["n"]
    rollup = account_health_rollup(account) if shown else None
    return {"parent": account.parent, "children": shown, "child_count": count, "rollup": rollup}
