"""Opportunities: the renewals and expansions a customer success team works (seed 003's Deal)."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from csplatform.tenancy import TenantOwnedModel


class Opportunity(TenantOwnedModel):
    class Kind(models.TextChoices):
        NEW = "new", "New business"
        RENEWAL = "renewal", "Renewal"
        EXPANSION = "expansion", "Expansion"

    class Stage(models.TextChoices):
        PROSPECTING = "prospecting", "Prospecting"
        QUALIFICATION = "qualification", "Qualification"
        PROPOSAL = "proposal", "Proposal"
        NEGOTIATION = "negotiation", "Negotiation"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    class Risk(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    CLOSED_STAGES = (Stage.WON, Stage.LOST)

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="opportunities")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.RENEWAL)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.PROSPECTING)
    value = models.DecimalField(max_digits=14, decimal_places=2, default=0, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="USD")
    close_date = models.DateField(null=True, blank=True)
    probability = models.PositiveSmallIntegerField(default=10, validators=[MaxValueValidator(100)],
                                                   help_text="Chance of winning, 0-100 %.")
    last_activity_date = models.DateField(null=True, blank=True)
    risk_level = models.CharField(max_length=8, choices=Risk.choices, blank=True, default="",
                                  help_text="Set by people or rules (seed 003's deal risk monitoring).")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="opportunities")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["close_date", "name"]
        verbose_name_plural = "opportunities"
        indexes = [models.Index(fields=["tenant", "stage", "close_date"])]

    def __str__(self) -> str:
        return self.name
