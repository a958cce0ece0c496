"""Journey stages per tenant and the history of an account's moves between them."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from csplatform.tenancy import TenantOwnedModel

# Seed 004's seven stages, created for every new tenant.
DEFAULT_STAGES = ["Onboarding", "Adoption", "Value Realization", "Expansion", "Renewal", "At Risk", "Churn"]


class JourneyStage(TenantOwnedModel):
    name = models.CharField(max_length=100)
    order = models.PositiveSmallIntegerField(default=0)
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["order", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="stage_unique_name_per_tenant")]

    def __str__(self) -> str:
        return self.name


class JourneyHistory(TenantOwnedModel):
    """One stay of an account in a stage; the open row (``exited_at`` null) is the current stage."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="journey_history")
    stage = models.ForeignKey(JourneyStage, on_delete=models.PROTECT, related_name="+")
    from_stage = models.ForeignKey(JourneyStage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True, help_text="Time in stage, set when the stage is left.")
    moved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-entered_at"]
        verbose_name_plural = "journey history"
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(exited_at__isnull=True), name="journey_one_open_stage_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} in {self.stage}"

    @property
    def duration_days(self) -> float | None:
        return round(self.duration.total_seconds() / 86400, 2) if self.duration is not None else None
