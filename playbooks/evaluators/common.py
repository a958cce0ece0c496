"""Sentences shared by several evaluators."""

from __future__ import annotations


def usage_trend_missing(row: dict, half: int) -> str | None:
    """Why the usage trend of an account is unknown, or None when it is known."""
    recent, previous = row["active_recent"], row["active_previous"]
    if recent is None and previous is None:
        return f"No usage data in the last {half * 2} days (usage trend unknown)"
    if previous is None or previous == 0:
        return f"No usage in the {half} days before the last {half} (usage trend unknown)"
    if recent is None:
        return f"No usage data in the last {half} days (usage trend unknown)"
    return None
