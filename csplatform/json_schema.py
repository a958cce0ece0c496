"""Short constructors for the JSON-schema fragments a registry item declares for its settings, and durations.

A trigger or action type declares, next to the names of the settings it reads, what each one holds::

    settings_schema = {"threshold": number(minimum=0), "direction": enum(DIRECTIONS), "time_window": duration()}

``automation.schemas.config_schema`` turns those declarations into the JSON schema of a config, and
``csplatform.schema_forms`` renders form inputs from it. Plain JSON schema (draft 2020-12) plus a few ``x-``
keywords the form reads: ``x-template`` (text that may use ``{{ }}``), ``x-duration`` (how a duration is
stored: ``"text"`` for ``"3d"``, else the unit of a number: ``"minutes"``, ``"hours"``, ...), ``x-one-or-many``
(one value or a list of them), ``x-aliases`` (other accepted names), ``x-closed`` (an object whose other keys
the inputs cannot show: it is then edited as JSON).

``duration_words`` is the one place a duration becomes words ("14 days", "3 hours") for the admin.
"""

from __future__ import annotations

import re
from decimal import Decimal

# Seconds per unit, largest first: what durations are shown in and entered with.
UNITS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
#: The short text form ("15m", "1h", "3d", "1w"): its letters and their units.
TEXT_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TEXT_LETTER = {"minutes": "m", "hours": "h", "days": "d", "weeks": "w"}
_TEXT = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$")


def _with(schema: dict, **extra) -> dict:
    return {**schema, **{k: v for k, v in extra.items() if v is not None}}


def text(*, description: str | None = None, fmt: str | None = None, pattern: str | None = None,
         nullable: bool = False) -> dict:
    return _with({"type": ["string", "null"] if nullable else "string"}, description=description, format=fmt,
                 pattern=pattern)


def template(*, description: str | None = None) -> dict:
    """Text that may use ``{{ variables }}``."""
    return _with({"type": "string", "x-template": True}, description=description)


def number(*, minimum=None, maximum=None, nullable: bool = False, description: str | None = None,
           integer: bool = False) -> dict:
    kind = "integer" if integer else "number"
    return _with({"type": [kind, "null"] if nullable else kind}, minimum=minimum, maximum=maximum,
                 description=description)


def integer(**kwargs) -> dict:
    return number(integer=True, **kwargs)


def boolean(*, description: str | None = None) -> dict:
    return _with({"type": "boolean"}, description=description)


def enum(values, *, description: str | None = None, nullable: bool = False) -> dict:
    values = [str(v) if not isinstance(v, (int, float)) else v for v in values]
    return _with({"enum": [*values, None] if nullable else values}, description=description)


def many(items: dict, *, description: str | None = None, one_or_many: bool = False) -> dict:
    """A list of ``items`` (an ``enum`` for a choice of several, ``text()`` for free names); ``one_or_many``: a
    single item is accepted too."""
    schema = {"anyOf": [items, {"type": "array", "items": items}], "x-one-or-many": True} if one_or_many else \
        {"type": "array", "items": items}
    return _with(schema, description=description)


def one_or_many(values, *, description: str | None = None) -> dict:
    """One of ``values`` or a list of them (``"churned"`` or ``["churned", "cancelled"]``)."""
    return many(enum(values), one_or_many=True, description=description)


def alias(of: str) -> dict:
    """Another name of the setting ``of`` (seed 003's spelling): accepted, not offered."""
    return {"type": "string", "deprecated": True, "x-alias-of": of}


def duration(stored_as: str = "text", *, minimum=None, maximum=None, nullable: bool = False,
             description: str | None = None, integer: bool = False) -> dict:
    """A duration: ``"3d"`` text (``stored_as="text"``), or a number of ``stored_as`` units ("hours")."""
    if stored_as == "text":
        return _with({"type": ["string", "null"] if nullable else "string", "pattern": _TEXT.pattern,
                      "x-duration": "text"}, description=description)
    schema = number(minimum=minimum, maximum=maximum, nullable=nullable, description=description, integer=integer)
    return {**schema, "x-duration": stored_as}


def json_object(*, description: str | None = None) -> dict:
    return _with({"type": "object"}, description=description)


def any_json(*, description: str | None = None) -> dict:
    return _with({}, description=description)


# --- durations in words ----------------------------------------------------------------------------

def text_duration_seconds(value) -> int | None:
    """``"3d"`` -> 259200; None when ``value`` is not a short text duration."""
    match = _TEXT.match(str(value or ""))
    if not match:
        return None
    return int(match.group(1)) * UNITS[TEXT_UNITS[match.group(2)]]


def to_seconds(value, unit: str = "hours") -> Decimal | None:
    """A duration as seconds: a number of ``unit`` or a short text ("3d"); None when it is neither."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, str) and not re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        seconds = text_duration_seconds(value)
        return None if seconds is None else Decimal(seconds)
    try:
        return Decimal(str(value).strip()) * UNITS[unit]
    except ArithmeticError:
        return None


def split_duration(seconds: Decimal | int) -> tuple[Decimal, str]:
    """The largest unit that shows ``seconds`` as a whole amount: 1209600 -> (2, "weeks"), 5400 -> (90, "minutes")."""
    seconds = Decimal(seconds)
    for unit, size in UNITS.items():
        if seconds and seconds % size == 0:
            return seconds / size, unit
    return seconds, "seconds"


def _plural(amount, unit: str) -> str:
    shown = f"{amount.normalize():f}" if isinstance(amount, Decimal) else str(amount)
    return f"{shown} {unit[:-1] if Decimal(amount) == 1 else unit}"


def duration_words(value, unit: str = "hours", *, zero: str = "none") -> str:
    """A duration as a CSM reads it: ``duration_words(336) == "2 weeks"``, ``duration_words(36) == "1 day 12 hours"``,
    ``duration_words(90, "minutes") == "1 hour 30 minutes"``, ``duration_words("3d") == "3 days"``; ``zero`` for
    none, "-" for no value, and the value itself when it is not a duration."""
    seconds = to_seconds(value, unit)
    if seconds is None:
        return "-" if value in (None, "") else str(value)
    if seconds == 0:
        return zero
    sign, seconds = ("minus " if seconds < 0 else ""), abs(seconds)
    parts, rest = [], seconds
    for name, size in UNITS.items():
        if name == "weeks" and rest % UNITS["weeks"]:
            continue  # 10 days reads better than 1 week 3 days
        count = rest // size
        if count:
            parts.append(_plural(int(count), name))
            rest -= count * size
    if rest:  # under a second
        parts.append(_plural(rest, "seconds"))
    return sign + " ".join(parts[:3])
