"""When to try a message again.

Default schedule (that of well-known webhook senders, about a day in all): attempt 1 at once, then
5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after each failure; 8 attempts. A rule's seed 003
``retry_configuration`` (``max_retries``, ``delay_minutes``, ``backoff_multiplier``,
``max_delay_hours``) replaces it with an exponential one; a webhook action's seed 001 ``retry_count``
caps the number of retries. Every delay gets +-20 % jitter so failed messages do not retry in lock
step; a receiver's ``Retry-After`` (seconds or HTTP date) wins when it asks for longer.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

DEFAULT_SCHEDULE = [0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]
JITTER = 0.2
MAX_RETRY_AFTER = 24 * 3600


def policy_for(rule=None, config: dict | None = None) -> tuple[dict, int]:
    """(retry policy, max attempts) for a message caused by ``rule`` with action ``config``."""
    config = config or {}
    retry = (getattr(rule, "retry_configuration", None) or {}) if rule is not None else {}
    if rule is not None and getattr(rule, "allow_retries", False) and retry:
        policy = {
            "initial": float(retry.get("delay_minutes", 15)) * 60,
            "multiplier": float(retry.get("backoff_multiplier", 2)),
            "max": float(retry.get("max_delay_hours", 24)) * 3600,
        }
        attempts = int(retry.get("max_retries", 3)) + 1
    else:
        policy = {"schedule": DEFAULT_SCHEDULE[1:]}
        attempts = len(DEFAULT_SCHEDULE)
    if config.get("retry_count") is not None:
        attempts = min(attempts, int(config["retry_count"]) + 1)
    return policy, max(1, attempts)


def base_delay(policy: dict, attempts_done: int) -> float:
    """Seconds to wait after the ``attempts_done``-th attempt failed (no jitter)."""
    if "schedule" in policy:
        schedule = policy["schedule"] or DEFAULT_SCHEDULE[1:]
        return float(schedule[min(attempts_done - 1, len(schedule) - 1)])
    delay = policy["initial"] * policy["multiplier"] ** (attempts_done - 1)
    return float(min(delay, policy["max"]))


def next_delay(policy: dict, attempts_done: int, retry_after: float | None = None, rand=random.random) -> float:
    delay = base_delay(policy, attempts_done) * (1 + JITTER * (2 * rand() - 1))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return max(0.0, delay)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def describe(policy: dict, attempts: int) -> list[timedelta]:
    """The delays before attempts 2..n (for docs and admin)."""
    return [timedelta(seconds=base_delay(policy, n)) for n in range(1, attempts)]
