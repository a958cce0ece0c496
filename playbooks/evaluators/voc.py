"""VoC Sprint: listen to accounts whose customers are unhappy or talking about leaving (seed 000).

An account is affected when any active check fires:

* ``nps_threshold`` (10): its NPS, %promoters (9-10) minus %detractors (0-6) of its NPS responses
  in the last ``window_days``, on the -100..100 scale, is below the threshold;
* ``csat_threshold`` (3.6): the average of its CSAT survey responses (1-5) in the window is below it;
* ``churn_risk_threshold`` (0.30): its churn risk is at or above it. Churn risk (0..1) = a base for
  the risk level (Healthy 0.05, Moderate 0.20, At Risk 0.40, Critical 0.70) + the health score
  points lost over ``health_drop_window_days`` / 100, capped at 1;
* ``health_score_drop_threshold`` (10): the health score lost at least that many points over
  ``health_drop_window_days`` (against the score it had when the window started);
* ``churn_mentions_threshold`` (2): at least that many notes, survey comments and support tickets
  in the window mention one of ``churn_keywords`` (each text counts once).
"""

from __future__ import annotations

from accounts.models import RiskLevel

from .. import selectors
from .base import Check, Context, Evaluator, Setting, fmt, plural, threshold

DEFAULT_CHURN_KEYWORDS = [
    "churn", "cancel", "competitor", "switch", "terminate", "not renew", "non-renewal", "downgrade", "leaving",
]
RISK_LABELS = dict(RiskLevel.choices)


class VocEvaluator(Evaluator):
    type = "voc"
    play = "VoC Sprint"
    settings = (
        Setting("nps_threshold", "number", 10, -100, 100, nullable=True,
                help="Affected when the account's NPS (-100..100) over the window is below this."),
        Setting("csat_threshold", "number", 3.6, 1, 5, nullable=True,
                help="Affected when the average CSAT (1-5) over the window is below this."),
        Setting("churn_risk_threshold", "number", 0.30, 0, 1, nullable=True,
                help="Affected when churn risk (0..1, from risk level and negative health trend) is at or above."),
        Setting("health_score_drop_threshold", "number", 10, 0.1, 100, nullable=True,
                help="Affected when the health score lost at least this many points over the drop window."),
        Setting("churn_mentions_threshold", "integer", 2, 1, 1000, nullable=True,
                help="Affected when at least this many notes, survey comments and tickets mention churn."),
        Setting("window_days", "integer", 90, 1, 730, help="Window for surveys and churn mentions."),
        Setting("health_drop_window_days", "integer", 30, 1, 365, help="Window for health drop and trend."),
        Setting("churn_keywords", "names", DEFAULT_CHURN_KEYWORDS, 1, 100,
                help="Words that count as a churn mention (matched case-insensitively at the start of a word)."),
    )

    def build(self, signals, ctx: Context) -> None:
        c = ctx.config
        since = ctx.since(c["window_days"])
        pattern = selectors.keyword_pattern(c["churn_keywords"])
        selectors.add_surveys(signals, since)
        selectors.add_health(signals, ctx.since(c["health_drop_window_days"]))
        selectors.add_mentions(signals, since, pattern)

    def checks(self, ctx: Context) -> list[Check]:
        c = ctx.config
        days, drop_days = c["window_days"], c["health_drop_window_days"]
        no_score = lambda row, ctx: "No health score recorded" if row["health_score"] is None else None  # noqa: E731
        return [
            Check(
                "nps", "nps_threshold",
                **threshold("nps", "<", "nps_threshold"),
                reason=lambda row, ctx: (
                    f"NPS {fmt(row['nps'])} is below {fmt(c['nps_threshold'], 2)} "
                    f"({plural(row['nps_count'], 'response')} in the last {days} days: "
                    f"{plural(row['nps_promoters'], 'promoter')}, {plural(row['nps_detractors'], 'detractor')})"
                ),
                missing=lambda row, ctx: (None if row["nps"] is not None
                                          else f"No NPS responses in the last {days} days"),
                columns=("nps", "nps_count", "nps_promoters", "nps_detractors"),
            ),
            Check(
                "csat", "csat_threshold",
                **threshold("csat", "<", "csat_threshold"),
                reason=lambda row, ctx: (
                    f"CSAT {fmt(row['csat'], 2)} is below {fmt(c['csat_threshold'], 2)} "
                    f"(average of {plural(row['csat_count'], 'response')} in the last {days} days)"
                ),
                missing=lambda row, ctx: (None if row["csat"] is not None
                                          else f"No CSAT responses in the last {days} days"),
                columns=("csat", "csat_count"),
            ),
            Check(
                "churn_risk", "churn_risk_threshold",
                **threshold("churn_risk", ">=", "churn_risk_threshold"),
                reason=lambda row, ctx: (
                    f"Churn risk {fmt(row['churn_risk'], 2, fixed=True)} is at or above "
                    f"{fmt(c['churn_risk_threshold'], 2, fixed=True)} "
                    f"(risk level {RISK_LABELS.get(row['risk_level'], row['risk_level'])}, "
                    + (f"health score down {fmt(row['health_drop'])} points in {drop_days} days)"
                       if (row["health_drop"] or 0) > 0 else f"no drop in {drop_days} days)")
                ),
                missing=no_score,
                columns=("churn_risk", "risk_level", "health_drop"),
            ),
            Check(
                "health_score_drop", "health_score_drop_threshold",
                **threshold("health_drop", ">=", "health_score_drop_threshold"),
                reason=lambda row, ctx: (
                    f"Health score dropped {fmt(row['health_drop'])} points in the last {drop_days} days "
                    f"(from {fmt(row['health_baseline'])} to {fmt(row['health_score'])}; "
                    f"threshold {fmt(c['health_score_drop_threshold'], 2)})"
                ),
                missing=no_score,
                columns=("health_drop", "health_baseline"),
            ),
            Check(
                "churn_mentions", "churn_mentions_threshold",
                **threshold("mentions", ">=", "churn_mentions_threshold"),
                reason=lambda row, ctx: (
                    f"{plural(row['mentions'], 'churn mention')} in the last {days} days "
                    f"({_mention_sources(row)}; threshold {c['churn_mentions_threshold']})"
                ),
                columns=("mentions", "mentions_notes", "mentions_surveys", "mentions_tickets"),
            ),
        ]


def _mention_sources(row: dict) -> str:
    parts = [
        plural(row["mentions_notes"], "note"),
        plural(row["mentions_surveys"], "survey comment"),
        plural(row["mentions_tickets"], "support ticket"),
    ]
    return ", ".join(parts)
