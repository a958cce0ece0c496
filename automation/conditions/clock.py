"""Seed 001's time_condition: is ``now`` inside the allowed window?

Days of the week are ISO numbers, 1 = Monday .. 7 = Sunday. 0 is also accepted as Sunday, so a list
written with JavaScript's ``getDay()`` numbering (0 = Sunday .. 6 = Saturday) means the same days.
``business_hours_only`` means 09:00-17:00 (end excluded) on Monday-Friday; when ``days_of_week`` is
given it decides the days instead. A blank timezone means the tenant's, else the server's.
"""

import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

from .errors import ConditionError

BUSINESS_HOURS = (datetime.time(9, 0), datetime.time(17, 0))
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
_KEYS = ("business_hours_only", "timezone", "excluded_dates", "days_of_week")


def window_config(config, path: str = "") -> dict:
    """The checked, complete form of a time_condition config (every key present)."""
    if not isinstance(config, dict):
        raise ConditionError(path, "A time condition needs an object with business_hours_only, timezone, "
                                   "excluded_dates and days_of_week.")
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise ConditionError(f"{path}.{unknown[0]}" if path else unknown[0], "Unknown time condition setting.")
    def at(key):
        return (f"{path}.{key}" if path else key)
    business = config.get("business_hours_only") or False
    if not isinstance(business, bool):
        raise ConditionError(at("business_hours_only"), "Must be true or false.")
    tz = config.get("timezone") or ""
    if not isinstance(tz, str) or (tz and not _zone(tz)):
        raise ConditionError(at("timezone"), f"'{tz}' is not an IANA timezone such as 'Europe/Paris'.")
    dates = config.get("excluded_dates") or []
    if not isinstance(dates, list) or not all(isinstance(d, str) and _date(d) for d in dates):
        raise ConditionError(at("excluded_dates"), "Must be a list of dates written YYYY-MM-DD.")
    days = config.get("days_of_week") or []
    if not isinstance(days, list) or not all(type(d) is int and 0 <= d <= 7 for d in days):
        raise ConditionError(at("days_of_week"), "Must be a list of day numbers, 1 = Monday .. 7 = Sunday "
                                                 "(0 is also Sunday).")
    return {"business_hours_only": business, "timezone": tz, "excluded_dates": list(dates),
            "days_of_week": list(days)}


def window_open(config: dict, now: datetime.datetime, default_tz: str = "") -> tuple[bool, datetime.datetime]:
    """(is ``now`` inside the window, ``now`` in the window's timezone)."""
    local = now.astimezone(_zone(config["timezone"] or default_tz) or timezone.get_default_timezone())
    day = local.isoweekday()
    allowed = {7 if d == 0 else d for d in config["days_of_week"]} or (WEEKDAYS if config["business_hours_only"]
                                                                        else None)
    if local.date().isoformat() in config["excluded_dates"] or (allowed and day not in allowed):
        return False, local
    if config["business_hours_only"] and not BUSINESS_HOURS[0] <= local.time() < BUSINESS_HOURS[1]:
        return False, local
    return True, local


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10
