"""The data health and playbooks read: usage, surveys, support tickets, engagements, goals."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from csplatform.tenancy import TenantOwnedModel

from .work import Priority


class UsageMetric(TenantOwnedModel):
    """Product telemetry for one account on one day."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="usage_metrics")
    date = models.DateField()
    active_users = models.PositiveIntegerField(default=0)
    logins = models.PositiveIntegerField(default=0)
    dau = models.PositiveIntegerField("DAU", default=0, help_text="Daily active users.")
    mau = models.PositiveIntegerField("MAU", default=0, help_text="Monthly active users (trailing 30 days).")
    session_minutes = models.PositiveIntegerField(default=0)
    features_used = models.JSONField(default=list, blank=True, help_text="Names of the features used that day.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-date"]
        constraints = [models.UniqueConstraint(fields=["account", "date"], name="usage_one_row_per_account_day")]
        indexes = [models.Index(fields=["tenant", "date"])]

    def __str__(self) -> str:
        return f"{self.account} {self.date}"

    def clean(self) -> None:
        if not isinstance(self.features_used, list) or not all(isinstance(f, str) for f in self.features_used):
            raise ValidationError({"features_used": "Must be a list of feature names."})


class SurveyResponse(TenantOwnedModel):
    class Kind(models.TextChoices):
        NPS = "nps", "NPS (0-10)"
        CSAT = "csat", "CSAT (1-5)"

    SCALES = {Kind.NPS: (0, 10), Kind.CSAT: (1, 5)}

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="survey_responses")
    contact = models.ForeignKey("accounts.Contact", null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, default="")
    responded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-responded_at"]
        indexes = [models.Index(fields=["tenant", "kind", "responded_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.score} from {self.account}"

    def clean(self) -> None:
        low, high = self.SCALES.get(self.kind, (None, None))
        if low is not None and self.score is not None and not low <= self.score <= high:
            raise ValidationError({"score": f"A {self.kind.upper()} score must be between {low} and {high}."})


class SupportTicket(TenantOwnedModel):
    Priority = Priority

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="tickets")
    contact = models.ForeignKey("accounts.Contact", null=True, blank=True, on_delete=models.SET_NULL)
    subject = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    csat = models.PositiveSmallIntegerField("CSAT", null=True, blank=True, help_text="Customer rating 1-5.")

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["tenant", "status", "priority"])]

    def __str__(self) -> str:
        return self.subject

    def clean(self) -> None:
        errors = {}
        if self.csat is not None and not 1 <= self.csat <= 5:
            errors["csat"] = "CSAT must be between 1 and 5."
        if self.first_response_at and self.opened_at and self.first_response_at < self.opened_at:
            errors["first_response_at"] = "First response cannot be before the ticket was opened."
        if self.resolved_at and self.opened_at and self.resolved_at < self.opened_at:
            errors["resolved_at"] = "Resolution cannot be before the ticket was opened."
        if errors:
            raise ValidationError(errors)


class Engagement(TenantOwnedModel):
    class Kind(models.TextChoices):
        MEETING = "meeting", "Meeting"
        CALL = "call", "Call"
        EMAIL = "email", "Email"

    class Outcome(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        COMPLETED = "completed", "Completed"
        MISSED = "missed", "Missed"
        NEGATIVE = "negative", "Negative"
        NO_RESPONSE = "no_response", "No response"

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="engagements")
    contact = models.ForeignKey("accounts.Contact", null=True, blank=True, on_delete=models.SET_NULL)
    opportunity = models.ForeignKey("accounts.Opportunity", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="engagements", help_text="The deal it is about (updates its last activity).")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.SCHEDULED)
    occurred_at = models.DateTimeField(default=timezone.now)
    summary = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["tenant", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} with {self.account} ({self.get_outcome_display()})"


class Goal(TenantOwnedModel):
    class Status(models.TextChoices):
        CREATED = "created", "Created"
        AT_RISK = "at_risk", "At risk"
        ACHIEVED = "achieved", "Achieved"
        MISSED = "missed", "Missed"

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="goals")
    title = models.CharField(max_length=255)
    goal_type = models.CharField(max_length=64, blank=True, default="")
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CREATED)
    target_date = models.DateField(null=True, blank=True)
    achieved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["target_date", "title"]

    def __str__(self) -> str:
        return self.title
