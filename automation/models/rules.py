"""Rules (workflows = event triggers), the events they react to, and the runs they leave behind."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from csplatform.tenancy import TenantOwnedModel


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def moment(at) -> str:
    """A time as a title names it, in the site's time zone: "3 Dec 14:02"."""
    if at is None:
        return "not yet"
    local = timezone.localtime(at) if timezone.is_aware(at) else at
    return f"{local.day} {local:%b %H:%M}"


def words(name: str) -> str:
    """A type or action name as words: ``health_score_change`` -> "Health score change"."""
    return (name or "").replace("_", " ").capitalize()


class Event(TenantOwnedModel):
    """Something happened: written in the same transaction as the change, processed after commit."""

    type = models.CharField(max_length=64, db_index=True)
    model = models.CharField(max_length=64, blank=True, default="", help_text="Lower-case model name, e.g. account.")
    object_id = models.CharField("object ID", max_length=64, blank=True, default="")
    account = models.ForeignKey("accounts.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    changes = models.JSONField(default=dict, blank=True, help_text='{"field": {"old": x, "new": y}}')
    payload = models.JSONField(default=dict, blank=True)
    depth = models.PositiveSmallIntegerField(default=0, help_text="How many rule runs led to this event.")
    # The event that started the chain of rule runs this one belongs to (None: it started one). A rule runs
    # at most once per subject per chain (engine.LOOP_DETECTED), as Odoo's ``__action_done`` guard.
    chain_id = models.BigIntegerField("chain ID", null=True, blank=True, db_index=True,
                                      help_text="The first event of the chain of rule runs that led to this one.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Processing that raised (not an action failing: that is a failed run step) is counted here; after
    # AUTOMATION_EVENT_MAX_ATTEMPTS the event is set aside and no longer handed out.
    last_error = models.TextField(blank=True, default="")
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["processed_at", "created_at"], name="event_pending_idx",
                                condition=models.Q(processed_at__isnull=True)),
                   # A tenant's oldest events first: retention (automation/retention.py), the admin's list.
                   models.Index(fields=["tenant", "created_at"], name="event_tenant_created_idx")]

    def __str__(self) -> str:
        """"Health score change on TechStart Solutions, 3 Dec 14:02" (the account read once: list pages select
        it with the event)."""
        if self.account_id is not None:
            about = f" on {self.account.name}"
        else:
            about = f" of {self.model} {self.object_id}" if self.model else ""
        return f"{words(self.type)}{about}, {moment(self.created_at)}"


class Workflow(TenantOwnedModel):
    """One rule: trigger -> conditions -> ordered actions. Seed 001's workflows and seed 003's event
    triggers are two API views of this one model."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    enabled = models.BooleanField(default=True)
    trigger_type = models.CharField(max_length=64)
    model_type = models.CharField(max_length=64, blank=True, default="", help_text="For model triggers: account, contact, ...")
    trigger_config = models.JSONField(default=dict, blank=True)
    conditions = models.JSONField(default=dict, blank=True, help_text="Normalised condition tree.")
    actions = models.JSONField(default=list, blank=True, help_text='[{"type": ..., "config": {...}}]')
    scope_all_accounts = models.BooleanField(default=True)
    scope_accounts = models.ManyToManyField("accounts.Account", blank=True, related_name="+")
    continue_on_error = models.BooleanField(default=False)
    cooldown_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Per rule and account.")
    rate_limiting = models.JSONField(default=dict, blank=True, help_text='{"limit": 10, "period": "hour"}')
    debug_mode = models.BooleanField(default=False)
    allow_retries = models.BooleanField(default=False)
    retry_configuration = models.JSONField(
        default=dict, blank=True, help_text='{"max_retries": 3, "delay_minutes": 15, "backoff_multiplier": 2, "max_delay_hours": 24}')
    delay_minutes = models.PositiveIntegerField(default=0, help_text="Wait this long after the event before running.")
    webhook_token = models.CharField(max_length=64, unique=True, default=_new_token, editable=False,
                                     help_text="Secret path segment of this rule's inbound webhook URL.")
    source = models.CharField(max_length=32, default="workflow", help_text="Which front door made it.")
    failure_threshold = models.PositiveSmallIntegerField(
        default=10, help_text="Pause the rule after this many failed runs in a row (circuit breaker); 0 = never.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Editing a live rule edits a draft (services.workflow_save); the engine only ever reads the fields above.
    version = models.PositiveIntegerField(default=1, help_text="Number of the live definition (WorkflowVersion).")
    draft = models.JSONField(null=True, blank=True, editable=False, help_text=(
        "Pending edits of a live rule, as the whole normalised definition (services.DEFINITION_KEYS); "
        "null when there are none. Applied by publishing."))
    draft_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    draft_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", editable=False)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["tenant", "status", "enabled", "trigger_type"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_live(self) -> bool:
        return self.enabled and self.status == self.Status.ACTIVE

    @property
    def has_draft(self) -> bool:
        return self.draft is not None


class WorkflowVersion(TenantOwnedModel):
    """One published definition of a rule: written at creation (1) and on every publish, never changed.
    Runs name the number they used (``Run.workflow_version``), so a run can be read against its rule."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField(help_text="The rule's definition as published (services.DEFINITION_KEYS).")
    published_at = models.DateTimeField(default=timezone.now)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="workflow_version_once")]

    def __str__(self) -> str:
        return f"{self.workflow} v{self.number}"


class Run(TenantOwnedModel):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class SkipReason(models.TextChoices):
        CONDITIONS_NOT_MET = "conditions_not_met", "Conditions not met"
        COOLDOWN = "cooldown", "Cooldown"
        RATE_LIMITED = "rate_limited", "Rate limited"
        RECURSION_LIMIT = "recursion_limit", "Recursion limit"
        LOOP_DETECTED = "loop_detected", "Loop detected (already ran for this record in this chain)"
        OUT_OF_SCOPE = "out_of_scope", "Out of scope"
        DISABLED = "disabled", "Disabled"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    account = models.ForeignKey("accounts.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    subject_model = models.CharField(max_length=64, blank=True, default="")
    subject_id = models.CharField("subject ID", max_length=64, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    skip_reason = models.CharField(max_length=20, choices=SkipReason.choices, blank=True, default="")
    trigger_data = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    trace = models.JSONField(default=list, blank=True, help_text="Condition evaluation (debug mode).")
    error = models.TextField(blank=True, default="")
    depth = models.PositiveSmallIntegerField(default=0)
    manual = models.BooleanField(default=False)
    workflow_version = models.PositiveIntegerField(null=True, blank=True,
                                                   help_text="The rule's version (WorkflowVersion.number) this run used.")
    # Delayed and retried runs wait as queued rows; engine.run_due_runs() picks them up when due.
    scheduled_for = models.DateTimeField(null=True, blank=True, db_index=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    start_position = models.PositiveSmallIntegerField(default=0, help_text="First action to run (retries resume).")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workflow", "account", "-created_at"]),
                   # A tenant's oldest runs first: retention (automation/retention.py), the runs API's default order.
                   models.Index(fields=["tenant", "created_at"], name="run_tenant_created_idx")]

    def __str__(self) -> str:
        """"Health drop alert on TechStart Solutions, 3 Dec 14:02": the rule, the account and when, not an id."""
        about = f" on {self.account.name}" if self.account_id is not None else ""
        return f"{self.workflow.name}{about}, {moment(self.created_at)}"


class RunStep(TenantOwnedModel):
    class Status(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    action_type = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices)
    attempts = models.PositiveSmallIntegerField(default=1)
    output = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.FloatField("duration (ms)", default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "position"]

    def __str__(self) -> str:
        """"Step 2, send email (failed)", and "of <the run>" when the run is at hand: the run page lists its
        steps, each by this, and must not read the run again for every one."""
        text = f"Step {self.position + 1}, {words(self.action_type).lower()} ({self.get_status_display().lower()})"
        return f"{text} of {self.run}" if RunStep.run.is_cached(self) else text


class ScheduledSlot(TenantOwnedModel):
    """One row per scheduled rule and time slot: the unique constraint makes a slot fire once, however
    many beat ticks or workers reach it."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="slots")
    slot = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    runs = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-slot"]
        constraints = [models.UniqueConstraint(fields=["workflow", "slot"], name="scheduled_slot_once")]
