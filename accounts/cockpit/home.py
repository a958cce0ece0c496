"""The home page's reads: which accounts of my book need me today, and why.

The *book* is the accounts a CSM owns (``owner = user``), or all of the tenant's for tenant admins (either
can switch). Figures come from one aggregate query over the book; lists are the first few rows of an
ordered, indexed query; the plays come from the registered sources. The number of queries does not grow
with the book (tests/accounts/test_cockpit_queries.py).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Avg, Count, DecimalField, JSONField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from csplatform import charts

from ..models import Account, HealthScore, RiskLevel, Task, Tenant
from ..selectors import accounts_with_trend
from . import sources
from .scores import AT_RISK_LEVELS, BAND_COLOURS, UNSCORED_COLOUR, Trend, band_zones, top_driver

LIST_SIZE = 10
RENEWAL_WINDOW = 90
PLAY_WINDOW = 7
TREND_WEEKS = 13
TREND_CACHE_SECONDS = 3600


@dataclass
class Book:
    tenant: Tenant
    user: object
    role: str
    mine: bool  # the user's own accounts (else the whole tenant's)

    @property
    def accounts(self) -> QuerySet[Account]:
        accounts = Account.objects.for_tenant(self.tenant)
        return accounts.filter(owner=self.user) if self.mine else accounts

    def rows_of(self, queryset: QuerySet) -> QuerySet:
        """``queryset`` (rows with an ``account``, already of the tenant) limited to the book's accounts."""
        return queryset.filter(account__owner=self.user) if self.mine else queryset


def figures(book: Book, today: datetime.date) -> dict:
    """Counts and sums of the book in one query."""
    at_risk = Q(risk_level__in=AT_RISK_LEVELS)
    renewing = Q(renewal_date__gte=today, renewal_date__lte=today + datetime.timedelta(days=RENEWAL_WINDOW))
    money = DecimalField(max_digits=16, decimal_places=2)
    return book.accounts.aggregate(
        accounts=Count("pk"), total_arr=Sum("arr", output_field=money),
        at_risk=Count("pk", filter=at_risk), arr_at_risk=Sum("arr", filter=at_risk, output_field=money),
        renewals=Count("pk", filter=renewing), arr_renewing=Sum("arr", filter=renewing, output_field=money),
        **{f"band_{level}": Count("pk", filter=Q(risk_level=level)) for level in RiskLevel.values},
        band_none=Count("pk", filter=Q(risk_level="")),
    )


def _latest_breakdown():
    latest = HealthScore.objects.filter(account=OuterRef("pk")).order_by("-calculated_at", "-id")
    return Subquery(latest.values("breakdown")[:1], output_field=JSONField())


def at_risk_accounts(book: Book) -> list[dict]:
    """The lowest-scored accounts at risk or critical, with their 30-day trend and top driver."""
    rows = (accounts_with_trend(book.accounts.filter(risk_level__in=AT_RISK_LEVELS))
            .annotate(latest_breakdown=_latest_breakdown()).select_related("owner")
            .order_by("health_score", "name")[:LIST_SIZE])
    return [{"account": a, "trend": Trend(a.health_trend), "driver": top_driver(a.latest_breakdown)} for a in rows]


def renewals(book: Book, today: datetime.date) -> list[dict]:
    rows = (book.accounts.filter(renewal_date__gte=today, renewal_date__lte=today + datetime.timedelta(days=RENEWAL_WINDOW))
            .select_related("owner").order_by("renewal_date", "name")[:LIST_SIZE])
    return [{"account": a, "in": days_words((a.renewal_date - today).days)} for a in rows]


def days_words(days: int) -> str:
    if days == 0:
        return "today"
    return f"in {days} day{'s' if days != 1 else ''}" if days > 0 else f"{-days} days ago"


def my_tasks(book: Book, today: datetime.date) -> dict:
    """The user's open tasks due today or earlier (in the tenant, whoever owns the account)."""
    tasks = Task.objects.for_tenant(book.tenant).filter(assignee=book.user, status__in=Task.OPEN_STATUSES,
                                                        due_date__lte=today)
    counts = tasks.aggregate(today=Count("pk", filter=Q(due_date=today)), overdue=Count("pk", filter=Q(due_date__lt=today)))
    return {**counts, "rows": list(tasks.select_related("account").order_by("due_date", "priority", "pk")[:LIST_SIZE])}


def plays(book: Book, now: datetime.datetime) -> dict:
    """Plays fired for the book in the last week, from every source the user may read."""
    since = now - datetime.timedelta(days=PLAY_WINDOW)
    fired = failed = 0
    latest: list[sources.Play] = []
    for source in sources.readable(book.role):
        found = source.plays(book.tenant, book.accounts, since=since, limit=LIST_SIZE)
        if found is None:
            continue
        fired, failed = fired + found.fired, failed + found.delivery_failed
        latest += found.latest
    latest.sort(key=lambda p: p.at, reverse=True)
    return {"fired": fired, "delivery_failed": failed, "rows": latest[:LIST_SIZE + 5], "days": PLAY_WINDOW}


def band_chart(numbers: dict):
    bars = [charts.Bar(label, numbers[f"band_{level}"], BAND_COLOURS[level])
            for level, label in reversed(RiskLevel.choices)]
    bars.append(charts.Bar("Not scored", numbers["band_none"], UNSCORED_COLOUR))
    return charts.bar_chart(bars, title="Accounts by risk band", x_name="Risk band", y_name="Accounts")


def _start_of(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=timezone.get_current_timezone())


def weekly_averages(book: Book, since: datetime.date, until: datetime.date | None = None) -> dict:
    """``{monday: average}`` of the scores recorded for the book from ``since`` (until ``until``)."""
    rows = book.rows_of(HealthScore.objects.for_tenant(book.tenant).filter(calculated_at__gte=_start_of(since)))
    if until is not None:
        rows = rows.filter(calculated_at__lt=_start_of(until))
    rows = rows.annotate(week=TruncWeek("calculated_at")).order_by().values("week").annotate(average=Avg("overall_score"))
    return {timezone.localdate(r["week"]) if isinstance(r["week"], datetime.datetime) else r["week"]: r["average"]
            for r in rows}


def trend_chart(book: Book, now: datetime.datetime):
    """The average of the scores recorded in each of the last 13 weeks across the book. The finished weeks
    are read once an hour (cached: on a large book they are most of the rows), the current week every time."""
    this_week = timezone.localdate(now) - datetime.timedelta(days=timezone.localdate(now).weekday())
    first = this_week - datetime.timedelta(weeks=TREND_WEEKS - 1)  # weeks start on Monday, as TruncWeek's do
    key = f"cockpit:book-trend:{book.tenant.pk}:{book.user.pk if book.mine else 'all'}:{first.isoformat()}"
    past = cache.get(key)
    if past is None:
        past = weekly_averages(book, first, this_week)
        cache.set(key, past, TREND_CACHE_SECONDS)
    by_week = {**past, **weekly_averages(book, this_week)}
    weeks = [first + datetime.timedelta(weeks=i) for i in range(TREND_WEEKS)]
    values, carried = [], None
    for week in weeks:  # a week without new scores keeps the last average (no score changed)
        carried = by_week.get(week, carried)
        values.append(round(float(carried), 1) if carried is not None else None)
    return charts.line_chart(
        [charts.Series("Average health score", values, "#1f6fb2")], labels=[f"{w:%d %b}" for w in weeks],
        title="Health of the book, weekly average of recorded scores", y_min=0, y_max=100, x_name="Week of",
        zones=band_zones(book.tenant))


def home(book: Book, *, now: datetime.datetime | None = None) -> dict:
    now = now or timezone.now()
    today = timezone.localdate(now)
    numbers = figures(book, today)
    return {
        "book": book, "today": today, "figures": numbers,
        "at_risk": at_risk_accounts(book), "renewals": renewals(book, today), "tasks": my_tasks(book, today),
        "plays": plays(book, now), "band_chart": band_chart(numbers), "trend_chart": trend_chart(book, now),
        "renewal_window": RENEWAL_WINDOW,
    }
