"""Activation Blitz: accounts that bought the product but do not use it (seed 000).

All signals come from the account's usage metrics of the last ``window_days`` (30). An account
with no usage row in the window has no data: it is not affected by these checks. Affected when any
active check fires:

* ``adoption_index_threshold`` (60): adoption index below it. Adoption index (0..100) = the average
  of feature breadth (share of the known features the account used in the window) and seat
  activation (average daily active users / licensed seats, capped at 100 %); without licensed seats
  it is feature breadth alone, without known features seat activation alone;
* ``active_users_threshold`` (50): average daily active users in the window below it;
* ``dau_mau_threshold`` (0.25): DAU/MAU (sum of daily DAU / sum of daily MAU in the window) below it;
* ``unused_feature_check`` (true): at least ``unused_features_threshold`` (1) of the known features
  unused in the window.

The known features are ``target_features`` when set (seed 000's "Feature X, Feature Y"), else every
feature any account of the tenant used in the window (all computed in the same statement).
"""

from __future__ import annotations

from .. import selectors
from .base import Check, Context, Evaluator, Setting, fmt, threshold


class ActivationEvaluator(Evaluator):
    type = "activation"
    play = "Activation Blitz"
    settings = (
        Setting("adoption_index_threshold", "number", 60, 0, 100, nullable=True,
                help="Affected when the adoption index (0..100) is below this."),
        Setting("active_users_threshold", "number", 50, 0, 10_000_000, nullable=True,
                help="Affected when average daily active users in the window are below this."),
        Setting("dau_mau_threshold", "number", 0.25, 0, 1, nullable=True,
                help="Affected when DAU/MAU over the window is below this."),
        Setting("unused_feature_check", "boolean", True,
                help="Affected when known features went unused in the window (see unused_features_threshold)."),
        Setting("unused_features_threshold", "integer", 1, 1, 1000,
                help="With unused_feature_check: how many known features must be unused."),
        Setting("target_features", "names", [], 0, 200,
                help="The features that matter (list or comma-separated); empty = every feature in use."),
        Setting("window_days", "integer", 30, 1, 365, help="Usage window."),
    )

    def build(self, signals, ctx: Context) -> None:
        c = ctx.config
        selectors.add_usage(signals, ctx.today, c["window_days"], features=True,
                            target_features=c["target_features"] or None)
        signals.define("feature_breadth", "CASE WHEN {usage_days} > 0 AND {known_features_count} > 0 "
                                          "THEN {features_used_count} * 100.0 / {known_features_count} ELSE NULL END")
        signals.define("seat_pct", "CASE WHEN {seat_utilisation} > 1 THEN 100.0 ELSE {seat_utilisation} * 100.0 END")
        signals.define("adoption_index", "CASE WHEN {usage_days} = 0 THEN NULL "
                                         "WHEN {seat_utilisation} IS NULL THEN {feature_breadth} "
                                         "WHEN {feature_breadth} IS NULL THEN {seat_pct} "
                                         "ELSE ({feature_breadth} + {seat_pct}) / 2.0 END")

    def known(self, row: dict, ctx: Context) -> list[str]:
        """The known features of this evaluation (the same on every row)."""
        targets = ctx.config["target_features"]
        if targets:
            return list(targets)
        if "catalog" not in ctx.cache:
            ctx.cache["catalog"] = selectors.features_list(row.get("known_features"))
        return ctx.cache["catalog"]

    @staticmethod
    def used(row: dict) -> list[str]:
        """The features the account used (parsed once per row)."""
        if "features_used" not in row:
            row["features_used"] = selectors.features_list(row.get("features_used_list"))
        return row["features_used"]

    def checks(self, ctx: Context) -> list[Check]:
        c = ctx.config
        days = c["window_days"]
        unused_needed = c["unused_features_threshold"]

        def adoption_reason(row, ctx):
            parts = []
            if row["feature_breadth"] is not None:
                parts.append(f"{row['features_used_count']} of {len(self.known(row, ctx))} features used")
            if row["seat_utilisation"] is not None:
                parts.append(f"{fmt(min(row['seat_utilisation'], 1) * 100)}% of {row['licensed_seats']} "
                             "licensed seats active on average")
            else:
                parts.append("no licensed seats recorded")
            return (f"Adoption index {fmt(row['adoption_index'])} is below {fmt(c['adoption_index_threshold'], 2)} "
                    f"({', '.join(parts)} in the last {days} days)")

        def unused_fired(row, ctx):
            known = len(self.known(row, ctx))
            return row["usage_days"] > 0 and known > 0 and row["features_used_count"] <= known - unused_needed

        def unused_reason(row, ctx):
            known = self.known(row, ctx)
            used = set(self.used(row))
            unused = [f for f in known if f not in used]
            shown = ", ".join(unused[:10]) + (f" and {len(unused) - 10} more" if len(unused) > 10 else "")
            return f"{len(unused)} of {len(known)} features unused in the last {days} days: {shown}"

        def no_mau(row, ctx):
            if row["usage_days"] and row["dau_mau"] is None:
                return f"No MAU reported in the last {days} days (DAU/MAU unknown)"
            return None

        return [
            Check(
                "adoption_index", "adoption_index_threshold",
                **threshold("adoption_index", "<", "adoption_index_threshold"),
                reason=adoption_reason,
                columns=("adoption_index", "feature_breadth", "features_used_count", "seat_utilisation",
                         "licensed_seats", "usage_days", "known_features"),
            ),
            Check(
                "active_users", "active_users_threshold",
                **threshold("active_users_avg", "<", "active_users_threshold"),
                reason=lambda row, ctx: (
                    f"{fmt(row['active_users_avg'])} active users a day on average in the last {days} days, "
                    f"below {fmt(c['active_users_threshold'], 2)}"
                ),
                columns=("active_users_avg", "usage_days"),
            ),
            Check(
                "dau_mau", "dau_mau_threshold",
                **threshold("dau_mau", "<", "dau_mau_threshold"),
                reason=lambda row, ctx: (
                    f"DAU/MAU {fmt(row['dau_mau'], 2, fixed=True)} is below "
                    f"{fmt(c['dau_mau_threshold'], 2, fixed=True)} "
                    f"(over the last {days} days)"
                ),
                missing=no_mau,
                columns=("dau_mau", "usage_days"),
            ),
            Check(
                "unused_features", "unused_feature_check",
                condition=lambda ctx: ("{usage_days} > 0 AND {known_features_count} > 0 "
                                       "AND {features_used_count} <= {known_features_count} - %s", [unused_needed]),
                fired=unused_fired,
                reason=unused_reason,
                columns=("features_used_count", "features_used_list", "usage_days", "known_features"),
            ),
        ]

    def metrics(self, row: dict, ctx: Context, columns: list[str]) -> dict:
        values = super().metrics(row, ctx, columns)
        values.pop("known_features", None)
        if "features_used_list" in columns:
            values.pop("features_used_list")
            values["features_used"] = self.used(row)
        return values

    def summary(self, ctx: Context, rows: list[dict]) -> dict:
        targets = ctx.config["target_features"]
        if targets:
            known = list(targets)
        elif rows and "known_features" in rows[0]:
            known = self.known(rows[0], ctx)
        else:  # nothing affected, so no row carries them: one more read
            known = selectors.tenant_feature_catalog(ctx.tenant, ctx.since_date(ctx.config["window_days"]))
        return {"known_features": known, "known_features_source": "target_features" if targets else "usage"}

