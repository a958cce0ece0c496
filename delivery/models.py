"""Outgoing messages: the transactional outbox and what delivery needs per tenant.

* ``Outbox``: one message to deliver (webhook call, email, SMS, Slack/HubSpot/Salesforce call), written
  in the same transaction as what caused it and delivered after commit (claim with SKIP LOCKED, send outside
  the lock, record, retry with backoff).
* ``WebhookSecret``: the tenant's signing secrets; several are active while one is being rotated.
* ``WebhookEndpoint``: the health of one webhook target (tenant + URL); disabled after 5 days of failures.
* ``EmailTemplate``: the tenant's email templates (seed 001), validated when saved.
* ``IntegrationCredential``: the tenant's token for Slack, SMS, HubSpot or Salesforce.
* ``EmailEvent``: what happened to a sent email (opened, clicked, bounced, complained); docs "Email engagement".
* ``Suppression``: addresses of a tenant that must not be emailed again (hard bounce, complaint).
* ``EmailFeedbackEndpoint``: the tenant's inbound URL token and provider signing key for bounces and complaints.
"""

import base64
import hashlib
import secrets
import uuid

from django.db import models
from django.utils import timezone

from csplatform.crypto import EncryptedTextField
from csplatform.tenancy import TenantOwnedModel

from .template_checks import email_template_validate


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def new_feedback_token() -> str:
    return secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """Standard Webhooks format: ``whsec_`` + base64 of 32 random bytes (the HMAC key is the decoded bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Outbox(TenantOwnedModel):
    class Channel(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"
        SLACK = "slack", "Slack"
        TELEGRAM = "telegram", "Telegram"
        HUBSPOT = "hubspot", "HubSpot"
        SALESFORCE = "salesforce", "Salesforce"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (will retry)"
        DEAD = "dead", "Dead"

    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=2048, help_text="URL, email address, phone number, Slack channel or CRM object.")
    method = models.CharField(max_length=8, default="POST")
    headers = models.JSONField(default=dict, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=255)
    message_id = models.CharField(max_length=64, unique=True, default=new_message_id, editable=False,
                                  help_text="Sent as webhook-id; the same on every attempt so receivers can de-duplicate.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=8)
    retry_policy = models.JSONField(default=dict, blank=True, help_text="Backoff of this message (see delivery.retry).")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker marked it sending.")
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, default="", help_text="Excerpt of the last response body.")
    error = models.TextField(blank=True, default="")
    email_template = models.ForeignKey("delivery.EmailTemplate", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="messages", help_text="The template an email was rendered from.")
    variant = models.CharField(max_length=32, blank=True, default="",
                               help_text="The A/B variant of the email template this message was rendered with.")
    # Who wrote the message, as plain ids: delivery sits below automation and does not know its models. The
    # engine sets them (and links the step) from what ``outbox_enqueue`` returns; ids of purged runs dangle.
    run_id = models.BigIntegerField(null=True, blank=True, db_index=True, help_text="The automation run that wrote it.")
    run_step_id = models.BigIntegerField(null=True, blank=True, db_index=True, help_text="The run step that wrote it.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "automation_outbox"  # created by the automation app; moved here without copying rows
        ordering = ["-created_at", "-id"]
        verbose_name = "outbox message"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="outbox_idempotency_per_tenant"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="outbox_due_idx",
                         condition=models.Q(status__in=["pending", "failed"])),
            models.Index(fields=["claimed_at"], name="outbox_sending_idx", condition=models.Q(status="sending")),
            models.Index(fields=["tenant", "status", "channel"], name="outbox_tenant_status_idx"),
            # Retention and the cockpit read a tenant's messages by age (built CONCURRENTLY: migration 0007).
            models.Index(fields=["tenant", "created_at"], name="outbox_tenant_created_idx"),
            models.Index(fields=["email_template", "variant"], name="outbox_template_variant_idx",
                         condition=models.Q(email_template__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.message_id} -> {self.target[:60]} ({self.status})"


class WebhookSecret(TenantOwnedModel):
    """A signing secret. Every active secret signs every webhook (one ``v1,`` signature each), so a
    receiver keeps working while the tenant rotates: the old secret stays active until ``expires_at``."""

    secret = EncryptedTextField(max_length=100, default=new_webhook_secret)  # encrypted at rest: never filter on it
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Stops signing after this time.")

    class Meta:
        db_table = "automation_webhooksecret"  # created by the automation app; moved here without copying rows
        ordering = ["created_at", "id"]

    def __str__(self) -> str:  # never any part of the secret: this shows in admin titles and audit entries
        return f"webhook secret {self.fingerprint} ({'active' if self.is_active else 'expired'})"

    @property
    def fingerprint(self) -> str:
        """A short, non-reversible name of the secret (``sha256(secret)[:12]``, comparable on the receiver)."""
        return "sha256:" + hashlib.sha256(self.secret.encode()).hexdigest()[:12]

    @property
    def is_active(self) -> bool:
        return self.expires_at is None or self.expires_at > timezone.now()


class WebhookEndpoint(TenantOwnedModel):
    """The health of one webhook target of a tenant (its exact URL). A row appears with the first failed
    attempt; every failed attempt extends the failing streak, any 2xx ends it. When the streak has lasted
    ``WEBHOOK_DISABLE_AFTER`` (5 days) the endpoint is disabled: further messages to it go straight to
    dead and the tenant admins get a task. ``delivery.services.webhook_endpoint_enable`` turns it
    back on."""

    url = models.TextField()
    url_hash = models.CharField(max_length=64, editable=False, help_text="sha256 of the URL (unique per tenant).")
    failing_since = models.DateTimeField(null=True, blank=True, help_text="First failure since the last success.")
    failures = models.PositiveIntegerField(default=0, help_text="Failed attempts since the last success.")
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_success_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "automation_webhookendpoint"  # created by the automation app; moved here without copying rows
        ordering = ["url"]
        verbose_name = "webhook endpoint"
        constraints = [models.UniqueConstraint(fields=["tenant", "url_hash"], name="webhook_endpoint_once_per_tenant")]

    def __str__(self) -> str:
        return f"{self.url[:80]} ({'disabled' if self.disabled_at else 'failing' if self.failing_since else 'healthy'})"

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None


class EmailTemplate(TenantOwnedModel):
    """Seed 001's email template: Django template syntax over account/contact/engagement/goals/custom.
    Save through ``delivery.email.email_template_save`` (or ``full_clean``), which rejects
    unknown variables."""

    name = models.CharField(max_length=100)
    subject = models.CharField(max_length=500)
    html = models.TextField()
    text = models.TextField(blank=True, default="")
    category = models.CharField(max_length=50, blank=True, default="")
    variables = models.JSONField(default=list, blank=True,
                                 help_text='Custom variables the template declares, e.g. ["product_name", "custom.discount_code"].')
    variants = models.JSONField(
        default=list, blank=True,
        help_text='A/B variants, e.g. [{"name": "A", "weight": 50}, {"name": "B", "weight": 50, "subject": "…"}]: '
                  'each may override subject, html and text; a send picks one by its idempotency key and the weights.')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "automation_emailtemplate"  # created by the automation app; moved here without copying rows
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="email_template_unique_name")]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        email_template_validate(self)


class IntegrationCredential(TenantOwnedModel):
    """How a tenant reaches Slack, its SMS provider, a Telegram bot, HubSpot or Salesforce. The base URL defaults
    to the one in settings; a tenant-supplied one (e.g. a Salesforce instance URL) passes the outbound policy."""

    class Integration(models.TextChoices):
        SLACK = "slack", "Slack"
        SMS = "sms", "SMS provider"
        TELEGRAM = "telegram", "Telegram bot"
        HUBSPOT = "hubspot", "HubSpot"
        SALESFORCE = "salesforce", "Salesforce"

    integration = models.CharField(max_length=16, choices=Integration.choices)
    base_url = models.URLField(blank=True, default="", help_text="Blank: the platform's default for this integration.")
    token = EncryptedTextField(max_length=500)  # encrypted at rest (Slack/HubSpot/Salesforce/SMS token, Telegram bot token)
    config = models.JSONField(default=dict, blank=True, help_text='e.g. {"from": "+15550100"} for SMS.')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "automation_integrationcredential"  # created by the automation app; moved here without copying rows
        ordering = ["integration"]
        constraints = [models.UniqueConstraint(fields=["tenant", "integration"], name="integration_once_per_tenant")]

    def __str__(self) -> str:
        return self.get_integration_display()


class EmailEvent(TenantOwnedModel):
    """One thing that happened to an email after it left: an open (the tracking pixel was fetched), a click
    (a tracked link was followed), a bounce or a complaint (the provider's feedback webhook). Opens and
    clicks of a message are counted from these rows; ``message`` is empty when a bounce names no message
    of this tenant."""

    class Kind(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        OPEN = "open", "Opened"
        CLICK = "click", "Clicked"
        BOUNCE = "bounce", "Bounced"
        COMPLAINT = "complaint", "Complaint"

    message = models.ForeignKey(Outbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="email_events")
    contact = models.ForeignKey("accounts.Contact", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="email_events")
    email = models.CharField(max_length=254, blank=True, default="", help_text="The recipient's address.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    url = models.TextField(blank=True, default="", help_text="The link followed (clicks).")
    at = models.DateTimeField(default=timezone.now)
    meta = models.JSONField(default=dict, blank=True,
                            help_text="e.g. bounce_type, source (generic, mailgun), the provider's reason; user agent.")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "email event"
        indexes = [
            models.Index(fields=["tenant", "kind", "at"], name="email_event_tenant_kind_idx"),
            models.Index(fields=["message", "kind"], name="email_event_message_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.email} at {self.at:%Y-%m-%d %H:%M}"


class Suppression(TenantOwnedModel):
    """An address the tenant's emails skip: it bounced hard or its owner complained. Deleting the row (API or
    admin) lets it be emailed again."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        COMPLAINT = "complaint", "Spam complaint"
        MANUAL = "manual", "Added by hand"

    email = models.CharField(max_length=254, help_text="Lower-cased address.")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    detail = models.TextField(blank=True, default="", help_text="What the provider said, and where it came from.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "email"], name="suppression_once_per_tenant")]

    def __str__(self) -> str:
        return f"{self.email} ({self.get_reason_display()})"


class EmailFeedbackEndpoint(TenantOwnedModel):
    """Where the tenant's email provider reports bounces and complaints: ``/api/email-feedback/hooks/<token>/``
    (generic JSON; the random token is the credential) and ``…/<token>/mailgun/`` (Mailgun's event
    webhooks, whose signature is verified with ``mailgun_signing_key``)."""

    token = models.CharField(max_length=64, unique=True, default=new_feedback_token, editable=False)
    mailgun_signing_key = EncryptedTextField(max_length=200, blank=True, default="",
                                             help_text="Mailgun's HTTP webhook signing key (write-only in the API).")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "email feedback endpoint"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="email_feedback_endpoint_once_per_tenant")]

    def __str__(self) -> str:
        return "email feedback endpoint"
