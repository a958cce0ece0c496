"""Expansion Opportunity: healthy accounts that outgrow what they bought.

An account is affected when its health score is at least ``health_score_min`` (75; null: any) and at
least ``min_signals`` (1) of the active growth signals fire:

* ``seat_utilization_threshold`` (0.80): average daily active users in the last ``window_days`` (30)
  / licensed seats at or above it (accounts without licensed seats have no data);
* ``usage_growth_threshold`` (10): average daily active users grew at least that many percent, the
  recent half of the window against the half before it;
* ``nps_threshold`` (50): NPS (-100..100) of the last ``survey_window_days`` (90) at or above it.
"""

from __future__ import annotations

from itertools import combinations

from .. import selectors
from .base import (
    Check, Context, Evaluator, Setting, SettingsError, all_of, any_of, fmt, plural, threshold,
)
from .common import usage_trend_missing


class ExpansionEvaluator(Evaluator):
    type = "expansion"
    play = "Expansion Opportunity"
    settings = (
        Setting("seat_utilization_threshold", "number", 0.80, 0.01, 10, nullable=True,
                help="Signal: active users / licensed seats at or above this."),
        Setting("usage_growth_threshold", "number", 10, 0.1, 10_000, nullable=True,
                help="Signal: average daily active users up at least this many percent."),
        Setting("nps_threshold", "number", 50, -100, 100, nullable=True,
                help="Signal: NPS (-100..100) at or above this."),
        Setting("health_score_min", "number", 75, 0, 100, nullable=True,
                help="Only accounts with at least this health score (null: any)."),
        Setting("min_signals", "integer", 1, 1, 3, help="How many of the active signals must fire."),
        Setting("window_days", "integer", 30, 2, 365, help="Usage window (growth compares its two halves)."),
        Setting("survey_window_days", "integer", 90, 1, 730, help="NPS window."),
    )
    signal_settings = ("seat_utilization_threshold", "usage_growth_threshold", "nps_threshold")

    def validate_together(self, config: dict) -> None:
        active = sum(config[key] is not None for key in self.signal_settings)
        if config["min_signals"] > active:
            raise SettingsError({"min_signals": [
                f"is {config['min_signals']} but only {active} signal(s) are switched on"]})

    def build(self, signals, ctx: Context) -> None:
        c = ctx.config
        selectors.add_usage(signals, ctx.today, c["window_days"], trend=True)
        selectors.add_surveys(signals, ctx.since(c["survey_window_days"]))

    def checks(self, ctx: Context) -> list[Check]:
        c = ctx.config
        days, survey_days = c["window_days"], c["survey_window_days"]
        half = max(1, days // 2)

        def seats_missing(row, ctx):
            if not row["licensed_seats"]:
                return "No licensed seats recorded (seat utilisation unknown)"
            if row["active_users_avg"] is None:
                return f"No usage data in the last {days} days (seat utilisation unknown)"
            return None

        return [
            Check(
                "seat_utilization", "seat_utilization_threshold",
                **threshold("seat_utilisation", ">=", "seat_utilization_threshold"),
                reason=lambda row, ctx: (
                    f"Seat utilisation {fmt(row['seat_utilisation'] * 100)}% is at or above "
                    f"{fmt(c['seat_utilization_threshold'] * 100)}% ({fmt(row['active_users_avg'])} active users a "
                    f"day on {row['licensed_seats']} licensed seats in the last {days} days)"
                ),
                missing=seats_missing,
                columns=("seat_utilisation", "active_users_avg", "licensed_seats"),
            ),
            Check(
                "usage_growth", "usage_growth_threshold",
                **threshold("usage_change_pct", ">=", "usage_growth_threshold"),
                reason=lambda row, ctx: (
                    f"Active users up {fmt(row['usage_change_pct'])}% ({fmt(row['active_recent'])} a day in the last "
                    f"{half} days against {fmt(row['active_previous'])} in the {half} days before; "
                    f"threshold {fmt(c['usage_growth_threshold'], 2)}%)"
                ),
                missing=lambda row, ctx: usage_trend_missing(row, half),
                columns=("usage_change_pct", "active_recent", "active_previous"),
            ),
            Check(
                "nps", "nps_threshold",
                **threshold("nps", ">=", "nps_threshold"),
                reason=lambda row, ctx: (
                    f"NPS {fmt(row['nps'])} is at or above {fmt(c['nps_threshold'], 2)} "
                    f"({plural(row['nps_count'], 'response')} in the last {survey_days} days)"
                ),
                missing=lambda row, ctx: (None if row["nps"] is not None
                                          else f"No NPS responses in the last {survey_days} days"),
                columns=("nps", "nps_count"),
            ),
        ]

    def condition(self, ctx: Context, checks: list[Check]) -> tuple[str, list] | None:
        if not checks:
            return None
        gate = ctx.config["health_score_min"]
        # At least ``min_signals`` of the checks: an OR over each combination of that many (few checks).
        signals = any_of([all_of([check.condition(ctx) for check in combo])
                          for combo in combinations(checks, ctx.config["min_signals"])])
        if signals is None:
            return None
        return all_of([("{health_score} >= %s", [gate]), signals]) if gate is not None else signals

    def account_reasons(self, row: dict, ctx: Context, checks: list[Check], fired: list[Check]) -> list[str]:
        gate = ctx.config["health_score_min"]
        reasons = super().account_reasons(row, ctx, checks, fired)
        if gate is not None:
            reasons.insert(0, f"Health score {fmt(row['health_score'])} is at or above {fmt(gate, 2)}")
        return reasons
