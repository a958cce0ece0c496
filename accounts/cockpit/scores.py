"""Reading a health score: which components pulled it down (drivers), trend arrows, band colours.

A component's *points lost* is what it kept the overall score from reaching 100: its weight share times
(100 - its score), i.e. ``weight * 100 - contribution`` of the stored breakdown. The top driver is the
component that lost the most points; it is what a CSM looks at first.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..models import COMPONENTS, RiskLevel, Tenant

COMPONENT_LABELS = {
    "usage_score": "Usage",
    "engagement_score": "Engagement",
    "support_sentiment_score": "Support sentiment",
    "adoption_score": "Adoption",
}
# The same colours as the admin's risk badges (accounts/admin/display.py).
BAND_COLOURS = {
    RiskLevel.HEALTHY: "#2e7d32",
    RiskLevel.MODERATE: "#b58900",
    RiskLevel.AT_RISK: "#e65100",
    RiskLevel.CRITICAL: "#c62828",
}
UNSCORED_COLOUR = "#78909c"
AT_RISK_LEVELS = (RiskLevel.AT_RISK, RiskLevel.CRITICAL)
STEADY = Decimal("2")  # a 30-day change within +-2 points reads as steady


@dataclass(frozen=True)
class Driver:
    component: str
    label: str
    score: float
    weight: float  # share of the overall score, 0..1
    contribution: float
    points_lost: float

    def __str__(self) -> str:
        return f"{self.label} {self.score:g} (-{self.points_lost:.1f} points)"


def drivers(breakdown: dict | None) -> list[Driver]:
    """The components of a stored breakdown, the one that lost the most points first."""
    found = []
    for name in COMPONENTS:
        part = (breakdown or {}).get(name)
        if not part:
            continue
        weight, contribution = float(part["weight"]), float(part["contribution"])
        found.append(Driver(name, COMPONENT_LABELS[name], float(part["score"]), weight, contribution,
                            round(max(weight * 100 - contribution, 0.0), 2)))
    return sorted(found, key=lambda d: d.points_lost, reverse=True)


def top_driver(breakdown: dict | None) -> Driver | None:
    found = drivers(breakdown)
    return found[0] if found else None


@dataclass(frozen=True)
class Trend:
    change: Decimal | None

    @property
    def arrow(self) -> str:
        if self.change is None:
            return ""
        return "↑" if self.change > STEADY else "↓" if self.change < -STEADY else "→"

    @property
    def words(self) -> str:
        if self.change is None:
            return "no trend yet"
        if abs(self.change) <= STEADY:
            return f"steady ({self.change:+.1f} over 30 days)"
        return f"{'up' if self.change > 0 else 'down'} {abs(self.change):.1f} points over 30 days"

    @property
    def tone(self) -> str:
        if self.change is None or abs(self.change) <= STEADY:
            return ""
        return "good" if self.change > 0 else "bad"


def band_zones(tenant: Tenant) -> list[tuple]:
    """The tenant's risk bands as ``(from, to, colour)`` zones behind a score chart."""
    bounds = [0, float(tenant.band_at_risk), float(tenant.band_moderate), float(tenant.band_healthy), 100]
    levels = [RiskLevel.CRITICAL, RiskLevel.AT_RISK, RiskLevel.MODERATE, RiskLevel.HEALTHY]
    return [(bounds[i], bounds[i + 1], BAND_COLOURS[level]) for i, level in enumerate(levels)]


def gauge_bands(tenant: Tenant) -> list[tuple]:
    """The tenant's risk bands as ``(upper bound, colour)`` for ``charts.gauge``."""
    return [(to, colour) for _, to, colour in band_zones(tenant)]
