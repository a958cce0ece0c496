"""The virtual engagement fields of an account (seed 001's engagement_history), in memory and in SQL.

``engagements.last_days``: whole days (rounded down) since the latest engagement that has happened
(``occurred_at <= now``), of the option's ``kinds`` and ``outcomes``; None when there is none.
``engagements.count``: how many such engagements, within the last ``within_days`` days when given.
"""

import datetime
from functools import reduce
from operator import or_

from django.db.models import Count, Max, Q

from .compare import matches
from .operands import Prepared
from .tree import NEGATIONS
from .typed import ENGAGEMENT_COUNT

DAY = datetime.timedelta(days=1)
NOTHING = Q(pk__in=[])  # a Q no row matches
_MAX_DAYS = 100_000  # beyond any engagement; keeps date arithmetic inside datetime's range
_HAVING = {"equals": "n", "in": "n__in", "greater_than": "n__gt", "less_than": "n__lt", "gte": "n__gte",
           "lte": "n__lte"}


def value(obj, p: Prepared, now: datetime.datetime) -> int | None:
    rows = getattr(obj, p.res.reverse.get_accessor_name()).filter(_rows(p.options, now))
    if p.res.virtual == ENGAGEMENT_COUNT:
        return rows.count()
    last = rows.aggregate(last=Max("occurred_at"))["last"]
    return None if last is None else (now - last) // DAY


def to_q(p: Prepared, now: datetime.datetime) -> Q:
    if p.op in NEGATIONS:  # the values are whole numbers or None, so "not" is exact
        return ~to_q(Prepared(p.res, NEGATIONS[p.op], p.expected, p.options), now)
    related, fk = p.res.reverse.related_model, p.res.reverse.field.name
    rows = related._default_manager.filter(_rows(p.options, now)).order_by()
    with_rows = Q(pk__in=rows.values(fk))
    if p.res.virtual == ENGAGEMENT_COUNT:
        if p.op == "is_empty":
            return NOTHING  # a count is a number, never empty
        counts = rows.values(fk).annotate(n=Count("pk"))
        q = Q(pk__in=counts.filter(**{_HAVING[p.op]: p.expected}).values(fk))
        # Accounts without any such engagement have no group in the subquery: their count is 0.
        return q | ~with_rows if matches(p.op, "integer", False, 0, p.expected) else q
    if p.op == "is_empty":
        return ~with_rows
    lasts = rows.values(fk).annotate(last=Max("occurred_at"))
    return Q(pk__in=lasts.filter(_days_since(p.op, p.expected, now)).values(fk))


def _rows(options: dict, now: datetime.datetime) -> Q:
    q = Q(occurred_at__lte=now)
    if options.get("kinds"):
        q &= Q(kind__in=options["kinds"])
    if options.get("outcomes"):
        q &= Q(outcome__in=options["outcomes"])
    if options.get("within_days") is not None:
        q &= Q(occurred_at__gte=_edge(now, options["within_days"]))
    return q


def _days_since(op: str, n, now: datetime.datetime) -> Q:
    """``floor((now - last) / day) <op> n`` as a range of ``last``: floor(d) >= n  <=>  last <= now - n days."""
    if op == "in":
        return reduce(or_, (_days_since("equals", item, now) for item in n), NOTHING)
    at_least = {"equals": n, "gte": n, "greater_than": n + 1}.get(op)
    below = {"equals": n + 1, "less_than": n, "lte": n + 1}.get(op)
    q = Q()
    if at_least is not None:
        q &= Q(last__lte=_edge(now, at_least))
    if below is not None:
        q &= Q(last__gt=_edge(now, below))
    return q


def _edge(now: datetime.datetime, days: int) -> datetime.datetime:
    return now - max(-_MAX_DAYS, min(days, _MAX_DAYS)) * DAY
