"""Renewal Readiness: renewals coming up on accounts that are not in shape for them.

An account is affected when its ``renewal_date`` is within the next ``days_to_renewal`` (90) days
and, with ``require_risk_signal`` (true), at least one active risk check fires:

* ``health_score_threshold`` (70): its health score is below it;
* ``usage_decline_threshold`` (20): its average daily active users fell by at least that many
  percent: the recent half of ``usage_window_days`` (30) against the half before it.

With ``require_risk_signal`` false every account renewing in the window is affected (renewal prep).
Accounts without a renewal date are never affected; the summary counts them.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q

from .. import selectors
from .base import Check, Context, Evaluator, Setting, SettingsError, all_of, fmt, threshold
from .common import usage_trend_missing


class RenewalEvaluator(Evaluator):
    type = "renewal"
    play = "Renewal Readiness"
    settings = (
        Setting("days_to_renewal", "integer", 90, 1, 730, help="Accounts renewing within this many days."),
        Setting("health_score_threshold", "number", 70, 0, 100, nullable=True,
                help="Risk signal: health score below this."),
        Setting("usage_decline_threshold", "number", 20, 0.1, 100, nullable=True,
                help="Risk signal: average daily active users down at least this many percent."),
        Setting("usage_window_days", "integer", 30, 2, 365,
                help="Usage trend: its recent half against the half before."),
        Setting("require_risk_signal", "boolean", True,
                help="Only accounts with a risk signal (false: every account renewing in the window)."),
    )

    def validate_together(self, config: dict) -> None:
        if (config["require_risk_signal"] and config["health_score_threshold"] is None
                and config["usage_decline_threshold"] is None):
            raise SettingsError({"require_risk_signal": [
                "needs health_score_threshold or usage_decline_threshold (or set it to false)"]})

    def renewal_window(self, ctx: Context) -> tuple[str, list]:
        return ("{renewal_date} >= %s AND {renewal_date} <= %s",
                [ctx.today, ctx.today + timedelta(days=ctx.config["days_to_renewal"])])

    def build(self, signals, ctx: Context) -> None:
        selectors.add_usage(signals, ctx.today, ctx.config["usage_window_days"], trend=True)

    def checks(self, ctx: Context) -> list[Check]:
        c = ctx.config
        half = max(1, c["usage_window_days"] // 2)
        return [
            Check(
                "health_score", "health_score_threshold",
                **threshold("health_score", "<", "health_score_threshold"),
                reason=lambda row, ctx: (f"Health score {fmt(row['health_score'])} is below "
                                         f"{fmt(c['health_score_threshold'], 2)}"),
                missing=lambda row, ctx: "No health score recorded" if row["health_score"] is None else None,
            ),
            Check(
                "usage_decline", "usage_decline_threshold",
                **threshold("usage_change_pct", "<=", "usage_decline_threshold", sign=-1),
                reason=lambda row, ctx: (
                    f"Active users down {fmt(-row['usage_change_pct'])}% ({fmt(row['active_recent'])} a day in the "
                    f"last {half} days against {fmt(row['active_previous'])} in the {half} days before; "
                    f"threshold {fmt(c['usage_decline_threshold'], 2)}%)"
                ),
                missing=lambda row, ctx: usage_trend_missing(row, half),
                columns=("usage_change_pct", "active_recent", "active_previous"),
            ),
        ]

    def condition(self, ctx: Context, checks: list[Check]) -> tuple[str, list] | None:
        if not ctx.config["require_risk_signal"]:
            return self.renewal_window(ctx)
        risk = super().condition(ctx, checks)
        return all_of([self.renewal_window(ctx), risk]) if risk is not None else None

    def columns(self, ctx: Context, checks: list[Check]) -> list[str]:
        return ["renewal_date", *super().columns(ctx, checks)]

    def account_reasons(self, row: dict, ctx: Context, checks: list[Check], fired: list[Check]) -> list[str]:
        days = (row["renewal_date"] - ctx.today).days
        due = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
        due = f"Renews {due} ({row['renewal_date'].isoformat()})"
        return [due, *super().account_reasons(row, ctx, checks, fired)]

    def metrics(self, row: dict, ctx: Context, columns: list[str]) -> dict:
        values = super().metrics(row, ctx, columns)
        values["renewal_date"] = row["renewal_date"].isoformat()
        values["days_to_renewal"] = (row["renewal_date"] - ctx.today).days
        return values

    def summary(self, ctx: Context, rows: list[dict]) -> dict:
        soon = ctx.today + timedelta(days=ctx.config["days_to_renewal"])
        return selectors.evaluated_accounts(ctx.tenant).aggregate(
            accounts_renewing=Count("pk", filter=Q(renewal_date__gte=ctx.today, renewal_date__lte=soon)),
            accounts_without_renewal_date=Count("pk", filter=Q(renewal_date__isnull=True)),
        )
