"""Quiet hours: when a customer-facing step may not be sent, and until when it waits.

A window is a start and an end wall-clock time in the contact's timezone (the contact's own
``timezone``, else the tenant's, else UTC). ``start < end`` is a window inside one day (12:00-14:00);
``start > end`` crosses midnight (22:00-08:00); ``start == end`` is no window. The contact's own
``quiet_hours_start/end`` win over the tenant default (``CRMSettings``). Owner notifications are not
subject to quiet hours (the caller decides that; see ``crm.models.CUSTOMER_CHANNELS``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = datetime.timezone.utc


@dataclass(frozen=True)
class QuietWindow:
    start: datetime.time
    end: datetime.time
    tz: datetime.tzinfo

    def until(self, now: datetime.datetime) -> datetime.datetime | None:
        """The end of the window ``now`` falls in (an aware UTC datetime), or None when ``now`` is outside."""
        return quiet_until(now, self.start, self.end, self.tz)


def zone(name: str | None) -> datetime.tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def window_for(contact, crm_settings=None) -> QuietWindow | None:
    """The quiet window of ``contact``: its own hours, else the tenant default; None when it has none."""
    start, end = contact.quiet_hours_start, contact.quiet_hours_end
    if start is None or end is None:
        start = getattr(crm_settings, "quiet_hours_start", None)
        end = getattr(crm_settings, "quiet_hours_end", None)
    if start is None or end is None or start == end:
        return None
    tenant = getattr(contact, "tenant", None)
    tz = zone(contact.timezone) or zone(getattr(tenant, "timezone", None)) or UTC
    return QuietWindow(start=start, end=end, tz=tz)


def _at(day: datetime.date, t: datetime.time, tz: datetime.tzinfo) -> datetime.datetime:
    """``day`` at wall-clock ``t`` in ``tz``; a time skipped by a DST jump resolves to the later offset."""
    local = datetime.datetime.combine(day, t).replace(tzinfo=tz)
    # Round-trip through UTC: a non-existent local time (spring forward) comes back normalised.
    return local.astimezone(UTC)


def quiet_until(now: datetime.datetime, start: datetime.time, end: datetime.time,
                tz: datetime.tzinfo) -> datetime.datetime | None:
    """If ``now`` is inside the window ``start``-``end`` (wall clock in ``tz``), when the window ends (UTC)."""
    if start == end:
        return None
    if now.tzinfo is None:
        raise ValueError("quiet_until needs an aware datetime")
    local = now.astimezone(tz)
    t, today = local.time().replace(tzinfo=None), local.date()
    if start < end:  # inside one day
        if start <= t < end:
            return _at(today, end, tz)
        return None
    # crossing midnight: [start, 24:00) of today or [00:00, end) of today
    if t >= start:
        return _at(today + datetime.timedelta(days=1), end, tz)
    if t < end:
        return _at(today, end, tz)
    return None
