"""CRM retention journeys (seed 002): journeys as data, their executions, discount codes.

* ``CRMPlaybook`` + ``CRMStep``: a journey (payment_failed_rescue, winback, ...) and its ordered steps,
  edited in the admin with the steps inline. ``crm.journeys`` holds the six defaults every tenant gets.
  A journey with a trigger starts through its managed automation rule (``workflow``, ``crm.rules``).
* ``CRMPlaybookExecution``: one contact going through one journey. At most one *active* execution per
  contact and journey: a partial unique constraint, so it holds under concurrent starts.
* ``CRMStepExecution``: what happened to one step of one execution (sent, deferred, failed, ...), at
  most one row per execution and step (a second scheduler cannot send the same step twice).
* ``CRMDiscountCode``: ``CRM{percent}-{random}``, one-time, expiring, tied to a contact and execution.
* ``CRMSettings``: the tenant's defaults (quiet hours, chat transport, code expiry).
* ``BillingEvent`` + ``StripeWebhookEndpoint``: payment events received from billing (``crm.billing``), one row
  per (tenant, source, external id), so a redelivered event does nothing; the tenant's Stripe signing secret.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils import timezone

from accounts.models import Contact
from automation import conditions
from csplatform.crypto import EncryptedTextField
from csplatform.tenancy import TenantOwnedModel


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    CHAT = "chat", "Chat (Telegram, Slack or SMS)"
    SMS = "sms", "SMS"
    OWNER_DM = "owner_dm", "Owner notification"


#: Channels that reach the customer and therefore respect the contact's quiet hours.
CUSTOMER_CHANNELS = frozenset({Channel.EMAIL, Channel.CHAT, Channel.SMS})


class TriggerEvent(models.TextChoices):
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    TRIAL_ENDING = "trial_ending", "Trial ending (3 days before)"
    INACTIVITY = "inactivity", "Inactivity (no login for 14 days)"
    CHURN_RISK = "churn_risk", "Churn risk (risk level becomes At Risk / Critical)"
    MILESTONE = "milestone", "Milestone (goal achieved)"
    CANCELLATION = "cancellation", "Cancellation (status churned / cancelled)"
    MANUAL = "manual", "Manual / automation rule only"


class CRMSettings(TenantOwnedModel):
    """One row per tenant (created on first use by ``crm.services.crm_settings_for``)."""

    class ChatTransport(models.TextChoices):
        SLACK = "slack", "Slack"
        TELEGRAM = "telegram", "Telegram"
        SMS = "sms", "SMS"

    quiet_hours_start = models.TimeField(null=True, blank=True,
                                         help_text="Default for contacts without their own quiet hours.")
    quiet_hours_end = models.TimeField(null=True, blank=True)
    chat_transport = models.CharField(max_length=10, choices=ChatTransport.choices, default=ChatTransport.SMS,
                                      help_text="How 'chat' steps reach a contact.")
    discount_expiry_days = models.PositiveSmallIntegerField(default=7, validators=[MinValueValidator(1)])
    last_daily_scan = models.DateField(null=True, blank=True, editable=False,
                                       help_text="Last day the trial-ending and inactivity triggers were checked.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "CRM settings"
        verbose_name_plural = "CRM settings"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="crm_settings_one_per_tenant")]

    def __str__(self) -> str:
        return "CRM settings"

    def clean(self) -> None:
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            raise ValidationError({"quiet_hours_end": "Set both the start and the end of quiet hours, or neither."})


class CRMPlaybook(TenantOwnedModel):
    """A retention journey. ``name`` is the stable key (``payment_failed_rescue``)."""

    name = models.SlugField(max_length=64, help_text="Stable key used by triggers and the API, e.g. winback.")
    title = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    trigger_event = models.CharField(max_length=20, choices=TriggerEvent.choices, default=TriggerEvent.MANUAL)
    active = models.BooleanField(default=True, help_text="Inactive journeys start nothing; running ones go on.")
    # Re-entry rule: how soon and how often the same contact may enter again.
    reentry_cooldown_hours = models.PositiveIntegerField(
        default=0, help_text="A contact may not start this journey again until this many hours after the last start.")
    max_entries = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="How often a contact may ever enter this journey (blank = no limit).")
    # The automation rules the journey keeps (``crm.rules``): the one that starts it on its trigger, and for a
    # payment rescue the one that converts it when the payment succeeds. Never edited by hand.
    workflow = models.OneToOneField(
        "automation.Workflow", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
        help_text="The automation rule that starts this journey on its trigger (kept by the journey).")
    conversion_workflow = models.OneToOneField(
        "automation.Workflow", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
        help_text="The automation rule that converts this journey's executions (payment succeeded).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "CRM journey"
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="crm_playbook_unique_name")]

    def __str__(self) -> str:
        return self.title or self.name


def journeys_labelled(journeys: models.QuerySet) -> models.QuerySet:
    """``journeys`` with ``label``: what ``str()`` calls a journey (its title, else its name), in SQL."""
    return journeys.annotate(label=models.Case(models.When(title="", then=models.F("name")),
                                               default=models.F("title")))


class CRMStep(TenantOwnedModel):
    """One step of a journey. ``delay_hours`` counts from the previous step (from the start for the first)."""

    class OnConditionFail(models.TextChoices):
        SKIP = "skip", "Skip this step"
        BRANCH = "branch", "Branch to another step"
        STOP = "stop", "End the journey"

    class QuietHours(models.TextChoices):
        DEFER = "defer", "Defer to the end of quiet hours"
        SKIP = "skip", "Skip the step"

    playbook = models.ForeignKey(CRMPlaybook, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField(help_text="Position in the journey, from 0.")
    name = models.CharField(max_length=100, blank=True, default="")
    delay_hours = models.DecimalField(max_digits=7, decimal_places=2, default=Decimal("0"),
                                      validators=[MinValueValidator(Decimal("0"))])
    channel = models.CharField(max_length=10, choices=Channel.choices)
    template = models.CharField(max_length=200, help_text="Template path, e.g. crm/rescue.html.")
    subject = models.CharField(max_length=255, blank=True, default="",
                               help_text="Subject line (template syntax allowed); email and owner notification.")
    discount_percent = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Issue a one-time discount code of this percent with the message.")
    conditions = models.JSONField(
        default=dict, blank=True,
        help_text='Automation condition language on the contact, e.g. {"field": "account.status", '
                  '"operator": "equals", "value": "active"}. Empty = always.')
    on_condition_fail = models.CharField(max_length=10, choices=OnConditionFail.choices, default=OnConditionFail.SKIP)
    branch_to = models.PositiveSmallIntegerField(null=True, blank=True,
                                                 help_text="Step order to jump to (a later step) when branching.")
    quiet_hours = models.CharField(max_length=10, choices=QuietHours.choices, default=QuietHours.DEFER)
    variants = models.JSONField(
        default=list, blank=True,
        help_text='A/B variants: [{"name": "A", "weight": 50}, {"name": "B", "weight": 50, '
                  '"template": "crm/rescue_b.html", "subject": "..."}]. Empty = no test.')

    class Meta:
        ordering = ["playbook", "order"]
        verbose_name = "CRM journey step"
        constraints = [models.UniqueConstraint(fields=["playbook", "order"], name="crm_step_unique_order")]

    def __str__(self) -> str:
        return f"{self.playbook.name} #{self.order} {self.channel}"

    def clean(self) -> None:
        step_validate(self)


def step_validate(step: CRMStep) -> None:
    """A step is checked when it is saved (admin, ``full_clean``): unknown templates, conditions, branches and
    malformed A/B variants are refused naming the field, not discovered when the step runs."""
    errors: dict[str, str] = {}
    if step.channel not in Channel.values:
        errors["channel"] = f"must be one of {', '.join(Channel.values)}"
    for field, name in (("template", step.template), *[(f"variants[{i}].template", v.get("template"))
                                                        for i, v in enumerate(step.variants or [])
                                                        if isinstance(v, dict) and v.get("template")]):
        if not name:
            continue
        try:
            get_template(name)
        except TemplateDoesNotExist:
            errors["template" if field == "template" else "variants"] = f"template '{name}' does not exist"
    if step.conditions:
        try:
            conditions.validate(step.conditions, Contact)
        except conditions.ConditionError as exc:
            errors["conditions"] = str(exc)
    if step.on_condition_fail == CRMStep.OnConditionFail.BRANCH:
        if step.branch_to is None:
            errors["branch_to"] = "is required when the step branches"
        elif step.order is not None and step.branch_to <= step.order:
            errors["branch_to"] = "must be a later step (branches go forward, so a journey always ends)"
    errors.update(_variant_errors(step.variants or []))
    if errors:
        raise ValidationError(errors)


def _variant_errors(variants) -> dict[str, str]:
    if not isinstance(variants, list):
        return {"variants": "must be a list"}
    names = set()
    for i, v in enumerate(variants):
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v["name"]:
            return {"variants": f"variant {i} needs a name"}
        if v["name"] in names:
            return {"variants": f"variant name '{v['name']}' is used twice"}
        names.add(v["name"])
        weight = v.get("weight", 1)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            return {"variants": f"variant '{v['name']}': weight must be a number >= 0"}
    if variants and not any(v.get("weight", 1) for v in variants):
        return {"variants": "at least one variant needs a weight above 0"}
    return {}


class CRMPlaybookExecution(TenantOwnedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        CONVERTED = "converted", "Converted"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        TRIGGER = "trigger", "Trigger"
        API = "api", "API"
        AUTOMATION = "automation", "Automation rule"
        ADMIN = "admin", "Admin"

    playbook = models.ForeignKey(CRMPlaybook, on_delete=models.PROTECT, related_name="executions")
    contact = models.ForeignKey("accounts.Contact", on_delete=models.CASCADE, related_name="crm_executions")
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="crm_executions")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    current_step = models.PositiveSmallIntegerField(default=0, help_text="Order of the next step to run.")
    next_step_at = models.DateTimeField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.TRIGGER)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    conversion_value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "CRM journey execution"
        constraints = [
            models.UniqueConstraint(fields=["playbook", "contact"], condition=Q(status="active"),
                                    name="crm_one_active_execution_per_contact"),
        ]
        indexes = [
            models.Index(fields=["next_step_at"], name="crm_exec_due_idx", condition=Q(status="active")),
            models.Index(fields=["tenant", "playbook", "status"], name="crm_exec_stats_idx"),
            models.Index(fields=["tenant", "started_at"], name="crm_exec_started_idx"),
            models.Index(fields=["contact", "playbook", "started_at"], name="crm_exec_reentry_idx"),
        ]

    def __str__(self) -> str:
        """"Churn risk for Jane Doe at TechStart Solutions, 3 Dec 14:02" (list pages select the three with it)."""
        started = timezone.localtime(self.started_at)
        return f"{self.playbook} for {self.contact.name} at {self.account.name}, {started.day} {started:%b %H:%M}"


class CRMStepExecution(TenantOwnedModel):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        SENT = "sent", "Sent"
        DEFERRED = "deferred", "Deferred (quiet hours)"
        SKIPPED_QUIET_HOURS = "skipped_quiet_hours", "Skipped (quiet hours)"
        SKIPPED = "skipped", "Skipped (conditions / opt-out)"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    PENDING_STATUSES = (Status.SCHEDULED, Status.DEFERRED)

    execution = models.ForeignKey(CRMPlaybookExecution, on_delete=models.CASCADE, related_name="step_executions")
    step = models.ForeignKey(CRMStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    step_order = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=10, choices=Channel.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED)
    variant = models.CharField(max_length=32, blank=True, default="")
    recipient = models.CharField(max_length=255, blank=True, default="")
    subject = models.CharField(max_length=255, blank=True, default="")
    scheduled_for = models.DateTimeField(null=True, blank=True)
    outbox_message_id = models.CharField("outbox message ID", max_length=64, blank=True, default="")
    discount_code = models.ForeignKey("crm.CRMDiscountCode", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["execution", "step_order"]
        verbose_name = "CRM step execution"
        constraints = [
            models.UniqueConstraint(fields=["execution", "step_order"], name="crm_step_once_per_execution"),
        ]
        indexes = [models.Index(fields=["tenant", "status", "channel"], name="crm_stepexec_status_idx")]

    def __str__(self) -> str:
        """"Step 2, email (sent)", and "of <the execution>" when it is at hand (the execution page lists its
        steps by this, without reading the execution again for each)."""
        text = f"Step {self.step_order + 1}, {self.get_channel_display().lower()} ({self.get_status_display().lower()})"
        return f"{text} of {self.execution}" if CRMStepExecution.execution.is_cached(self) else text


class CRMDiscountCode(TenantOwnedModel):
    code = models.CharField(max_length=40, unique=True)
    percent = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(100)])
    contact = models.ForeignKey("accounts.Contact", on_delete=models.CASCADE, related_name="crm_discount_codes")
    execution = models.ForeignKey(CRMPlaybookExecution, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="discount_codes")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "CRM discount code"
        indexes = [models.Index(fields=["tenant", "created_at"], name="crm_code_created_idx")]

    def __str__(self) -> str:
        return self.code

    def state(self, now=None) -> str:
        if self.used_at is not None:
            return "used"
        return "expired" if self.expires_at <= (now or timezone.now()) else "active"


class BillingEvent(TenantOwnedModel):
    """One billing event received (``POST /api/billing/events/`` or a Stripe webhook), kept once per
    (tenant, source, external id): the unique constraint makes a redelivery, even a concurrent one, a no-op."""

    class Source(models.TextChoices):
        API = "api", "Billing events API"
        STRIPE = "stripe", "Stripe webhook"

    class Type(models.TextChoices):
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        PAYMENT_SUCCEEDED = "payment_succeeded", "Payment succeeded"
        TRIAL_WILL_END = "trial_will_end", "Trial will end"
        OTHER = "other", "Other (acknowledged, ignored)"

    class Outcome(models.TextChoices):
        RAISED = "raised", "Raised for the journeys' rules"
        NO_LISTENER = "no_listener", "No live journey rule listens"
        UNMATCHED = "unmatched", "No contact or account found"
        IGNORED = "ignored", "Event type not handled"

    source = models.CharField(max_length=10, choices=Source.choices)
    external_id = models.CharField("external ID", max_length=255, help_text="The sender's event id (Stripe: evt_...).")
    type = models.CharField(max_length=20, choices=Type.choices)
    source_type = models.CharField(max_length=100, blank=True, default="",
                                   help_text="The type as sent, e.g. invoice.payment_failed.")
    account = models.ForeignKey("accounts.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    contact = models.ForeignKey("accounts.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    customer_ref = models.CharField(max_length=255, blank=True, default="",
                                    help_text="The billing system's customer id (Stripe: cus_...).")
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    occurred_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    event = models.ForeignKey("automation.Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              help_text="The domain event raised for the journeys' rules.")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "billing event"
        constraints = [models.UniqueConstraint(fields=["tenant", "source", "external_id"],
                                               name="crm_billing_event_once")]
        indexes = [models.Index(fields=["tenant", "source", "customer_ref"], name="crm_billing_customer_idx")]

    def __str__(self) -> str:
        return f"{self.source} {self.type} {self.external_id}"


class StripeWebhookEndpoint(TenantOwnedModel):
    """The tenant's Stripe webhook: the URL token and the signing secret (``whsec_...``) its
    ``Stripe-Signature`` headers are checked against. The secret is shown once, to tenant admins."""

    token = models.CharField(max_length=64, unique=True, editable=False)
    signing_secret = EncryptedTextField(max_length=255)  # encrypted at rest; ``token`` is the lookup key
    tolerance_seconds = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(1), MaxValueValidator(86400)],
        help_text="How old a signature's timestamp may be (Stripe's default: 300 seconds).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Stripe webhook endpoint"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="crm_stripe_endpoint_one_per_tenant")]

    def __str__(self) -> str:
        return "Stripe webhook endpoint"
