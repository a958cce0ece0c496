"""How scores look in the admin: risk badges and the breakdown of a score."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join

from ..models import COMPONENTS, HealthScore, RiskLevel

RISK_COLOURS = {
    RiskLevel.HEALTHY: "#2e7d32",
    RiskLevel.MODERATE: "#b58900",
    RiskLevel.AT_RISK: "#e65100",
    RiskLevel.CRITICAL: "#c62828",
}
COMPONENT_LABELS = {
    "usage_score": "Usage",
    "engagement_score": "Engagement",
    "support_sentiment_score": "Support sentiment",
    "adoption_score": "Adoption",
}


def risk_badge(level: str, label: str):
    if not level:
        return "-"
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 8px;border-radius:9px;white-space:nowrap">{}</span>',
        RISK_COLOURS.get(level, "#666"), label,
    )


def breakdown_rows(score: HealthScore) -> list[tuple]:
    """(label, score, weight %, contribution) of each component the score was computed from."""
    rows = []
    for name in COMPONENTS:
        part = (score.breakdown or {}).get(name)
        if part:
            rows.append((COMPONENT_LABELS[name], part["score"], f"{part['weight'] * 100:.1f} %", part["contribution"]))
    return rows


def breakdown_table(score: HealthScore):
    rows = breakdown_rows(score)
    if not rows:
        return "-"
    missing = [COMPONENT_LABELS.get(n, n) for n in (score.breakdown or {}).get("missing", [])]
    html = format_html(
        "<table><thead><tr><th>Component</th><th>Score</th><th>Weight used</th><th>Contribution</th></tr></thead>"
        "<tbody>{}<tr><th>Overall</th><td></td><td></td><th>{}</th></tr></tbody></table>",
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        score.overall_score,
    )
    if missing:
        html += format_html(
            "<p>Not measured, left out (the other weights were scaled up): {}</p>", ", ".join(missing)
        )
    return html


def breakdown_summary(score: HealthScore) -> str:
    rows = breakdown_rows(score)
    return "; ".join(f"{label} {value} x {weight} = {contribution}" for label, value, weight, contribution in rows) or "-"
