"""The 360 timeline: every source's entries for one account, newest first, filtered by kind, in pages.

Pages are keyed by time (``before``: the time of the last entry shown), not by offset: each kind is read
with one indexed query of at most ``size + 1`` rows older than ``before``, whatever the page, so page 40
costs what page 1 costs. A page never ends inside a group of entries with the very same time (the next
page would skip the rest of the group), unless one group fills the whole page.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import sources

PAGE_SIZE = 25


@dataclass
class TimelinePage:
    entries: list[sources.Entry]
    kinds: list[sources.Kind]  # what the filter offers
    chosen: set[str]  # what is shown (all kinds when the filter is empty)
    before: datetime.datetime | None
    next_before: datetime.datetime | None  # the cursor of the next (older) page; None on the last page
    labels: dict[str, str] = field(default_factory=dict)  # kind -> what one entry of it is called

    @property
    def rows(self) -> list[tuple[str, sources.Entry]]:
        return [(self.labels.get(e.kind, e.kind), e) for e in self.entries]


def parse_before(value: str | None) -> datetime.datetime | None:
    """The ``before`` cursor from a query string (an ISO time); None when missing or malformed."""
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, datetime.timezone.utc)
    return parsed


def _at(entry: sources.Entry) -> datetime.datetime:
    at = entry.at
    if not isinstance(at, datetime.datetime):  # a date: the start of that day
        at = datetime.datetime.combine(at, datetime.time(), tzinfo=datetime.timezone.utc)
    return at


def timeline_page(account, *, role: str, kinds: set[str] | None = None, before: datetime.datetime | None = None,
                  size: int = PAGE_SIZE) -> TimelinePage:
    readable = sources.readable(role)
    offered = sources.kinds_of(readable)
    known = {k.key for k in offered}
    chosen = (set(kinds or ()) & known) or known
    entries: list[sources.Entry] = []
    for source in readable:
        wanted = chosen & {k.key for k in source.kinds}
        if wanted:
            entries += source.timeline(account, kinds=wanted, before=before, limit=size + 1)
    entries.sort(key=_at, reverse=True)
    page, more = entries[:size], len(entries) > size
    if more and _at(entries[size]) == _at(page[-1]):
        tied = _at(page[-1])
        cut = [e for e in page if _at(e) != tied]
        page = cut or [e for e in entries if _at(e) == tied]
    next_before = _at(page[-1]) if more and page else None
    return TimelinePage(page, offered, chosen if kinds else set(), before, next_before,
                        {k.key: k.one for k in offered})
