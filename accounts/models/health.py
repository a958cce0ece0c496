"""Weighted health scores (seed 004). Rows are history: recording a new score never edits an old one."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from csplatform.tenancy import TenantOwnedModel

from .customers import RiskLevel

COMPONENTS = ("usage_score", "engagement_score", "support_sentiment_score", "adoption_score")
_score = [MinValueValidator(0), MaxValueValidator(100)]


def _component(help_text: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True, validators=_score, help_text=help_text
    )


class HealthScore(TenantOwnedModel):
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="health_scores")
    usage_score = _component("Login frequency, active users, feature usage (0-100).")
    engagement_score = _component("Session duration, depth of usage (0-100).")
    support_sentiment_score = _component("Ticket volume, resolution time, CSAT (0-100).")
    adoption_score = _component("Feature adoption rate, training completion (0-100).")
    overall_score = models.DecimalField(max_digits=5, decimal_places=2, editable=False)
    previous_score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True, editable=False)
    risk_level = models.CharField(max_length=20, choices=RiskLevel.choices, editable=False)
    # {"usage_score": {"score": 30, "weight": 0.4375, "contribution": 13.13}, ...}; missing components absent.
    breakdown = models.JSONField(default=dict, editable=False)
    # A manual or rule-made adjustment (``services.health_score_adjust``), added to the weighted components
    # before clamping to 0-100. It is carried onto later scores while active; ``adjustment_expires_at``
    # null = permanent (until replaced), else ``services.health_adjustments_expire`` drops it then.
    adjustment = models.DecimalField(
        max_digits=5, decimal_places=2, default=0, editable=False,
        validators=[MinValueValidator(-100), MaxValueValidator(100)],
        help_text="Points added to the weighted components (-100..100); 0 = none.")
    adjustment_reason = models.CharField(max_length=500, blank=True, default="", editable=False)
    adjustment_expires_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When a temporary adjustment ends; empty = permanent.")
    calculated_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-calculated_at", "-id"]
        get_latest_by = "calculated_at"
        indexes = [
            models.Index(fields=["account", "-calculated_at"]),
            # The expiry sweep's candidates: only rows with a temporary adjustment are in this index.
            models.Index(fields=["adjustment_expires_at"], name="health_adjustment_expiry",
                         condition=models.Q(adjustment_expires_at__isnull=False)),
        ]

    def adjustment_active_at(self, at) -> bool:
        """Whether this row's adjustment still applies at ``at`` (a permanent one always does)."""
        return bool(self.adjustment) and (self.adjustment_expires_at is None or self.adjustment_expires_at > at)

    def __str__(self) -> str:
        return f"{self.account}: {self.overall_score} ({self.get_risk_level_display()})"
