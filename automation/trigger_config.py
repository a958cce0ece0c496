"""Reading a trigger's settings: ``ConfigError`` (names the setting), numbers, choices, lists, durations and
account statuses, shared by the trigger types (``automation.triggers``) and the actions that take durations."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from accounts.models import Account


class ConfigError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message



def number(config: dict, key: str, *, required: bool = False, minimum: float | None = None) -> Decimal | None:
    if config.get(key) is None:
        if required:
            raise ConfigError(key, "is required")
        return None
    try:
        value = Decimal(str(config[key]))
    except (InvalidOperation, ValueError):
        raise ConfigError(key, "must be a number") from None
    if minimum is not None and value < minimum:
        raise ConfigError(key, f"must be at least {minimum}")
    return value


def choice(config: dict, key: str, choices, default=None):
    value = config.get(key, default)
    if value not in choices:
        raise ConfigError(key, f"must be one of {', '.join(map(str, choices))}")
    return value


def string_list(config: dict, key: str) -> list[str]:
    value = config.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, "must be a list of strings")
    return value


DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$")
UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


MAX_DURATION = timedelta(days=3660)  # ten years: longer is a typo, and '99999999999w' overflows timedelta


def parse_duration(value: str, field: str) -> timedelta:
    """'15m', '1h', '1d', '1w' (seed 001's time_window), at most ten years."""
    match = DURATION.match(str(value or ""))
    if not match:
        raise ConfigError(field, "must be a duration like 15m, 1h, 1d or 1w")
    amount = int(match.group(1))
    if amount > 10 ** 7:
        raise ConfigError(field, "must be at most ten years")
    duration = timedelta(**{UNITS[match.group(2)]: amount})
    if duration > MAX_DURATION:
        raise ConfigError(field, "must be at most ten years")
    return duration


def statuses(config: dict, key: str, *, required: bool = False):
    """An account status or a non-empty list of them (``None``/"" = any, unless ``required``); ConfigError."""
    value, statuses = config.get(key), Account.Status.values
    if isinstance(value, list):
        if not value or any(v not in statuses for v in value):
            raise ConfigError(key, f"must be one of {', '.join(statuses)}, or a list of them")
    elif (value not in (None, "") or required) and value not in statuses:
        raise ConfigError(key, f"must be one of {', '.join(statuses)}, or a list of them")
    return value


def any_of(value) -> list:
    """A config value that is one value or a list of them, as a list (empty for none)."""
    if isinstance(value, list):
        return value
    return [value] if value not in (None, "") else []
