"""Customer accounts (hierarchical), their contacts and tags."""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from csplatform.tenancy import TenantOwnedModel


class Tag(TenantOwnedModel):
    name = models.CharField(max_length=64)
    color = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="tag_unique_name_per_tenant")]

    def __str__(self) -> str:
        return self.name


class RiskLevel(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    MODERATE = "moderate", "Moderate"
    AT_RISK = "at_risk", "At Risk"
    CRITICAL = "critical", "Critical"


class Account(TenantOwnedModel):
    """A customer account. ``parent`` builds the hierarchy (e.g. GlobalTech Europe under GlobalTech).

    ``health_score`` and ``risk_level`` mirror the latest HealthScore row so lists and filters need
    no join; ``accounts.services.health_score_record`` keeps them in step.
    """

    class Status(models.TextChoices):
        TRIAL = "trial", "Trial"
        ACTIVE = "active", "Active"
        AT_RISK = "at_risk", "At Risk"
        CHURNED = "churned", "Churned"
        CANCELLED = "cancelled", "Cancelled"

    class Size(models.TextChoices):
        STARTUP = "startup", "Startup (1-50)"
        SMB = "smb", "SMB (51-200)"
        MID_MARKET = "mid_market", "Mid-market (201-1000)"
        ENTERPRISE = "enterprise", "Enterprise (1000+)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    industry = models.CharField(max_length=100, blank=True, default="")
    size = models.CharField(max_length=20, choices=Size.choices, blank=True, default="")
    employee_count = models.PositiveIntegerField(null=True, blank=True)
    arr = models.DecimalField("ARR", max_digits=14, decimal_places=2, default=0, validators=[MinValueValidator(0)])
    licensed_seats = models.PositiveIntegerField(null=True, blank=True)
    renewal_date = models.DateField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_accounts",
        help_text="The CSM responsible for this account.",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="accounts")
    current_stage = models.ForeignKey(
        "accounts.JourneyStage", null=True, blank=True, on_delete=models.SET_NULL, related_name="accounts",
        editable=False,
    )
    health_score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True, editable=False)
    risk_level = models.CharField(max_length=20, choices=RiskLevel.choices, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["tenant", "name"]),
            models.Index(fields=["tenant", "health_score"]),
            models.Index(fields=["tenant", "renewal_date"]),
            models.Index(fields=["tenant", "updated_at"]),
        ]

    def __str__(self) -> str:
        return self.name


class Contact(TenantOwnedModel):
    """A person at a customer account; quiet hours are in the contact's own timezone. ``source``, ``status``
    and ``engagement_score`` are seed 003's contact lifecycle (its rules watch them)."""

    class Source(models.TextChoices):
        WEBSITE_FORM = "website_form", "Website form"
        IMPORT = "import", "Import"
        API = "api", "API"
        MANUAL = "manual", "Manual"
        REFERRAL = "referral", "Referral"
        MARKETING_AUTOMATION = "marketing_automation", "Marketing automation"

    class Status(models.TextChoices):
        LEAD = "lead", "Lead"
        MARKETING_QUALIFIED = "marketing_qualified", "Marketing qualified"
        SALES_QUALIFIED = "sales_qualified", "Sales qualified"
        QUALIFIED = "qualified", "Qualified"
        CUSTOMER = "customer", "Customer"
        CHURNED = "churned", "Churned"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="")
    telegram_chat_id = models.CharField("Telegram chat ID", max_length=64, blank=True, default="",
                                        help_text="Telegram chat id for chat steps (the bot's chat with the contact).")
    role = models.CharField(max_length=100, blank=True, default="", help_text="Job title or role, e.g. Champion.")
    is_primary = models.BooleanField(default=False)
    timezone = models.CharField(max_length=64, blank=True, default="", help_text="IANA name; blank = tenant's.")
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    email_opt_out = models.BooleanField(default=False)
    source = models.CharField(max_length=32, choices=Source.choices, blank=True, default="")
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.CUSTOMER)
    engagement_score = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)], help_text="0-100: how engaged the contact is lately.")
    tags = models.ManyToManyField(Tag, blank=True, related_name="contacts")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["tenant", "email"])]

    def __str__(self) -> str:
        return self.name
