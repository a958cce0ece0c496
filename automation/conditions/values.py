"""Turning a condition's value into a Python value of the field's kind; relative dates.

Relative dates, resolved against ``now`` in the current timezone: ``now``, ``today``, ``yesterday``,
``tomorrow``, ``N <unit>(s) ago``, ``in N <unit>(s)``, ``N <unit>(s) from now`` with unit minute, hour,
day, week, month or year. On a date field they give a date (``today`` is today's date); on a datetime
field an instant (``today`` is midnight, ``7 days ago`` is exactly 7 x 24 hours before ``now``).
"""

import calendar
import datetime
import re
import uuid
from decimal import Decimal

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime, parse_time

from .errors import ConditionError

_UNITS = {"minute": datetime.timedelta(minutes=1), "hour": datetime.timedelta(hours=1),
          "day": datetime.timedelta(days=1), "week": datetime.timedelta(weeks=1), "month": None, "year": None}
_AGO = re.compile(r"(\d{1,5}) (minute|hour|day|week|month|year)s? ago")
_IN = re.compile(r"in (\d{1,5}) (minute|hour|day|week|month|year)s?|(\d{1,5}) (minute|hour|day|week|month|year)s? "
                 r"from now")
_WORDS = {"today": 0, "yesterday": -1, "tomorrow": 1}
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


def coerce(kind: str, value, now: datetime.datetime):
    """``value`` as the kind's Python type; raises ConditionError (path "value") when it cannot be."""
    if value is None:
        return None
    convert = _CONVERTERS[kind]
    try:
        result = convert(value, now)
    except (TypeError, ValueError, ArithmeticError):
        result = None
    if result is None:
        raise ConditionError("value", f"{value!r} is not {_EXPECTED[kind]}.")
    return result


def relative(text: str, now: datetime.datetime, kind: str):
    """A relative date as a date (``kind`` "date") or an aware datetime; None when ``text`` is not one."""
    words = " ".join(text.lower().split())
    local = timezone.localtime(now)
    if words == "now":
        return local.date() if kind == "date" else now
    if words in _WORDS:
        day = local.date() + datetime.timedelta(days=_WORDS[words])
        return day if kind == "date" else _midnight(day)
    ago, ahead = _AGO.fullmatch(words), _IN.fullmatch(words)
    if not (ago or ahead):
        return None
    if ago:
        count, unit, sign = int(ago[1]), ago[2], -1
    else:
        count, unit, sign = int(ahead[1] or ahead[3]), ahead[2] or ahead[4], 1
    if _UNITS[unit] is None:  # months and years move on the calendar: 31 March + 1 month = 30 April
        moved = _add_months(local, sign * count * (12 if unit == "year" else 1))
        return moved.date() if kind == "date" else moved
    moved = now + sign * count * _UNITS[unit]  # exact durations, whatever the daylight saving
    return timezone.localtime(moved).date() if kind == "date" else moved


def _add_months(moment: datetime.datetime, months: int) -> datetime.datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _midnight(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time()))


def _text(value, now):
    if isinstance(value, bool):
        return None
    return str(value) if isinstance(value, (str, int, float, Decimal)) else None


def _integer(value, now):
    number = _number(value, now)
    if number is None or number != number.to_integral_value():
        return None  # SQL would round 7.5 on an integer column while Python compares exactly: refuse it
    return int(number)


def _number(value, now):
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    number = Decimal(str(value).strip())
    return number if number.is_finite() else None


def _bool(value, now):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _date(value, now):
    if isinstance(value, datetime.datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    if isinstance(value, datetime.date):
        return value
    if not isinstance(value, str):
        return None
    found = relative(value, now, "date") or parse_date(value.strip())
    if found is None and (moment := parse_datetime(value.strip())) is not None:
        found = _date(moment, now)
    return found


def _datetime(value, now):
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime.combine(value, datetime.time())
    elif isinstance(value, str):
        text = value.strip()
        found = relative(text, now, "datetime")
        if found is not None:
            return found
        moment = parse_datetime(text)
        if moment is None and (day := parse_date(text)) is not None:
            moment = datetime.datetime.combine(day, datetime.time())  # a bare date means its midnight
    else:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _time(value, now):
    if isinstance(value, datetime.time):
        return value
    return parse_time(value.strip()) if isinstance(value, str) else None


def _uuid(value, now):
    if isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(value.strip()) if isinstance(value, str) else None


def _json(value, now):
    return value


_CONVERTERS = {"text": _text, "integer": _integer, "number": _number, "bool": _bool, "date": _date,
               "datetime": _datetime, "time": _time, "uuid": _uuid, "json": _json}
_EXPECTED = {
    "text": "text", "integer": "a whole number", "number": "a number", "bool": "true or false",
    "date": "a date such as '2025-01-31', 'today' or '7 days ago'",
    "datetime": "a date or time such as '2025-01-31T09:00:00Z', 'today' or '3 hours ago'",
    "time": "a time such as '09:30'", "uuid": "an id", "json": "a JSON value",
}
