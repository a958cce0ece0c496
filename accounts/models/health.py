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
    calculated_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-calculated_at", "-id"]
        get_latest_by = "calculated_at"
        indexes = [models.Index(fields=["account", "-calculated_at"])]

    def __str__(self) -> str:
        return f"{self.account}: {self.overall_score} ({self.get_risk_level_display()})"
