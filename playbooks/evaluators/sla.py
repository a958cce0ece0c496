"""SLA Escalation: accounts whose support experience is slipping.

Affected when any active check fires:

* ``sla_breach_threshold`` (1): at least that many tickets opened in the last ``window_days`` (30)
  breached a target: first response later than ``first_response_hours`` (4) after opening (or
  still unanswered past it), or resolution later than ``resolution_hours`` (72) (or still open or
  pending past it). A ticket breaching both counts once. Null targets are not checked;
* ``open_urgent_threshold`` (1): at least that many urgent tickets are open or pending now,
  whatever their age.
"""

from __future__ import annotations

from datetime import timedelta

from .. import selectors
from .base import Check, Context, Evaluator, Setting, SettingsError, fmt, plural, threshold


class SlaEvaluator(Evaluator):
    type = "sla"
    play = "SLA Escalation"
    settings = (
        Setting("first_response_hours", "number", 4, 0.1, 720, nullable=True,
                help="First-response target in hours (null: not checked)."),
        Setting("resolution_hours", "number", 72, 0.1, 8760, nullable=True,
                help="Resolution target in hours (null: not checked)."),
        Setting("sla_breach_threshold", "integer", 1, 1, 1000, nullable=True,
                help="Affected when at least this many tickets of the window breached a target."),
        Setting("open_urgent_threshold", "integer", 1, 1, 1000, nullable=True,
                help="Affected when at least this many urgent tickets are open or pending."),
        Setting("window_days", "integer", 30, 1, 365, help="Tickets opened in this window are checked for breaches."),
    )

    def validate_together(self, config: dict) -> None:
        if (config["sla_breach_threshold"] is not None and config["first_response_hours"] is None
                and config["resolution_hours"] is None):
            raise SettingsError({"sla_breach_threshold": [
                "needs first_response_hours or resolution_hours (or set it to null)"]})

    def build(self, signals, ctx: Context) -> None:
        c = ctx.config
        hours = lambda key: timedelta(hours=c[key]) if c[key] is not None else None  # noqa: E731
        selectors.add_tickets(signals, ctx.now, ctx.since(c["window_days"]), hours("first_response_hours"),
                              hours("resolution_hours"))

    def checks(self, ctx: Context) -> list[Check]:
        c = ctx.config
        days = c["window_days"]

        def breach_reason(row, ctx):
            parts = []
            if c["first_response_hours"] is not None:
                parts.append(f"{row['first_response_breaches']} past the {fmt(c['first_response_hours'], 2)}h "
                             "first-response target")
            if c["resolution_hours"] is not None:
                parts.append(f"{row['resolution_breaches']} past the {fmt(c['resolution_hours'], 2)}h "
                             "resolution target")
            return (f"{plural(row['sla_breaches'], 'ticket')} opened in the last {days} days breached the SLA "
                    f"({', '.join(parts)}; threshold {c['sla_breach_threshold']})")

        return [
            Check(
                "sla_breaches", "sla_breach_threshold",
                **threshold("sla_breaches", ">=", "sla_breach_threshold"),
                reason=breach_reason,
                missing=lambda row, ctx: (f"No support tickets opened in the last {days} days"
                                          if not row["tickets_in_window"] else None),
                columns=("sla_breaches", "first_response_breaches", "resolution_breaches", "tickets_in_window"),
            ),
            Check(
                "open_urgent", "open_urgent_threshold",
                **threshold("open_urgent", ">=", "open_urgent_threshold"),
                reason=lambda row, ctx: (f"{plural(row['open_urgent'], 'urgent ticket')} open or pending "
                                         f"(threshold {c['open_urgent_threshold']})"),
                columns=("open_urgent",),
            ),
        ]
