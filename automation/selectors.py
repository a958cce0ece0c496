"""Reads of the automation app that are more than a filter."""

from __future__ import annotations

from accounts.models import HealthScore

from .triggers import parse_duration

WINDOWS = ("1h", "1d", "1w")


def window_scores(score: HealthScore) -> dict:
    """The account's score at the start of each standard window (for health_score_change time_window)."""
    result = {}
    for window in WINDOWS:
        since = score.calculated_at - parse_duration(window, "time_window")
        before = (HealthScore.objects.for_tenant(score.tenant_id)
                  .filter(account_id=score.account_id, calculated_at__lte=since)
                  .order_by("-calculated_at").values_list("overall_score", flat=True).first())
        result[window] = float(before) if before is not None else None
    return result
