"""Playbook trigger settings (seed 000) and the executions they start.

``PlaybookTrigger`` is one row per tenant and playbook type (voc, activation, sla, renewal,
expansion) holding the thresholds its evaluator (``playbooks.evaluators``) checks the tenant's
accounts against. ``PlaybookExecution`` is one row per play per account firing; an account has at
most one open execution per trigger (a partial unique constraint, so it holds under concurrency).
``PlaybookTriggerEvaluation`` logs every evaluate-all pass (what ``/history`` shows besides counters).

``Playbook`` is a SuccessPlay (seed 004): a front door onto one automation rule (``Workflow`` with
``source="playbook"``) that ``playbooks.services.playbook_save`` compiles from it. Firing, cooldown,
runs and delivery are the engine's; each firing also leaves a ``PlaybookExecution`` (``playbook`` set).
``PlaybookSchedule`` is the tenant's daily evaluate-all time.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from csplatform.tenancy import TenantOwnedModel

from .evaluators import SettingsError, get_evaluator


class PlaybookType(models.TextChoices):
    VOC = "voc", "VoC Sprint"
    ACTIVATION = "activation", "Activation Blitz"
    SLA = "sla", "SLA Escalation"
    RENEWAL = "renewal", "Renewal Readiness"
    EXPANSION = "expansion", "Expansion Opportunity"


class PlaybookTrigger(TenantOwnedModel):
    """Seed 000's ``playbook_triggers`` row: the thresholds of one playbook type for one tenant."""

    playbook_type = models.CharField(max_length=20, choices=PlaybookType.choices)
    # Validated and completed with the type's defaults by ``playbooks.services`` (never raw input).
    trigger_config = models.JSONField(default=dict, blank=True)
    auto_trigger_enabled = models.BooleanField(default=False)
    last_evaluated = models.DateTimeField(null=True, blank=True, editable=False)
    last_triggered = models.DateTimeField(null=True, blank=True, editable=False)
    trigger_count = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["playbook_type"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "playbook_type"], name="playbook_trigger_one_per_type"),
        ]

    def __str__(self) -> str:
        return f"{self.get_playbook_type_display()} triggers"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        try:  # what ``services.playbook_trigger_validate_config`` does (services imports this module)
            self.trigger_config = get_evaluator(self.playbook_type).validate(self.trigger_config or {}, None)
        except SettingsError as exc:
            raise ValidationError({"trigger_config": [f"{k}: {' '.join(v)}" for k, v in exc.errors.items()]})


class Playbook(TenantOwnedModel):
    """A SuccessPlay: when (any engine trigger + conditions), what (engine actions, plus a webhook that
    posts seed 004's payload to ``webhook_url``) and how often (``cooldown_minutes`` per account).
    ``workflow`` is the engine rule compiled from these fields; never edit it directly."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=False, help_text="Inactive plays are drafts: they never fire by themselves.")
    trigger_type = models.CharField(max_length=64, help_text="Any trigger of the automation engine.")
    trigger_config = models.JSONField(default=dict, blank=True)
    conditions = models.JSONField(default=dict, blank=True, help_text="The engine's condition language.")
    webhook_url = models.CharField(max_length=500, blank=True, default="",
                                   help_text="Seed 004's payload is POSTed here (e.g. an n8n webhook); blank = none.")
    actions = models.JSONField(default=list, blank=True, help_text='More engine actions: [{"type": ..., "config": {...}}]')
    cooldown_minutes = models.PositiveIntegerField(default=60, help_text="Per account; 0 = none.")
    # Blank only for a default draft nobody has saved, activated or triggered yet: the rule is compiled on the
    # play's first save (so a new tenant's untouched drafts add no rows to the automation engine).
    workflow = models.OneToOneField("automation.Workflow", null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="success_play", editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="playbook_unique_name")]

    def __str__(self) -> str:
        return self.name


class PlaybookSchedule(TenantOwnedModel):
    """When the tenant's enabled triggers are evaluated each day (in the tenant's timezone).
    ``last_run_on`` (the tenant's local date of the last scheduled run) makes it once a day."""

    evaluate_at = models.TimeField(default=datetime.time(6, 0), help_text="Local time in the tenant's timezone.")
    enabled = models.BooleanField(default=True)
    last_run_on = models.DateField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="playbook_schedule_one_per_tenant")]

    def __str__(self) -> str:
        return f"Daily evaluation at {self.evaluate_at:%H:%M}"


class PlaybookExecution(TenantOwnedModel):
    """One play started for one account: why, by whom or what, and how it ended."""

    class Status(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATUSES = (Status.TRIGGERED, Status.IN_PROGRESS)
    CLOSED_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    class Source(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        API = "api", "Evaluate-all (API)"
        MANUAL = "manual", "Manual"
        EVENT = "event", "Automation event"

    trigger = models.ForeignKey(
        PlaybookTrigger, null=True, blank=True, on_delete=models.SET_NULL, related_name="executions",
        help_text="The trigger setting that fired (blank for plays started otherwise).",
    )
    playbook = models.ForeignKey(
        Playbook, null=True, blank=True, on_delete=models.SET_NULL, related_name="executions", db_index=False,
        help_text="The SuccessPlay that ran (blank for trigger-setting executions).",
    )  # indexed first in (playbook, account, -started_at)
    playbook_type = models.CharField(max_length=20, choices=PlaybookType.choices, blank=True, default="")
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="playbook_executions")
    reason = models.TextField(blank=True, default="", help_text="Why it started, readable by a CSM.")
    reasons = models.JSONField(default=list, blank=True, help_text="The evaluator's reasons, one per line.")
    metrics = models.JSONField(default=dict, blank=True, help_text="The signal values at the time it fired.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TRIGGERED)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SCHEDULE)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        help_text="The user whose request started it (blank for the schedule).",
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True, default="")
    run = models.ForeignKey("automation.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            db_index=False, help_text="The automation engine's run of a SuccessPlay.")
    forced = models.BooleanField(default=False, help_text="A manual trigger that overrode the cooldown.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["playbook", "account", "-started_at"]),
            models.Index(fields=["tenant", "playbook_type", "status"]),
            models.Index(fields=["tenant", "-started_at"]),
            # Most executions have no user and no run: only the rows that do are indexed (deleting a user or a
            # run finds its executions here), so evaluate-all's bulk start writes two indexes fewer per row.
            models.Index(fields=["started_by"], name="playbook_exec_started_by_idx",
                         condition=Q(started_by__isnull=False)),
            models.Index(fields=["run"], name="playbook_exec_run_idx", condition=Q(run__isnull=False)),
        ]
        constraints = [
            # "One active execution per subject and playbook" (DESIGN.md invariant 3).
            models.UniqueConstraint(
                fields=["trigger", "account"], condition=Q(status__in=["triggered", "in_progress"]),
                name="playbook_execution_one_open_per_trigger_account",
            ),
        ]

    def __str__(self) -> str:
        """"VoC Sprint for Acme Corp (Triggered)": the play and the account's name (the admin's titles). The
        admin loads both with the execution (``select_related``); elsewhere each costs at most one query."""
        name = self.get_playbook_type_display() or (self.playbook.name if self.playbook_id else "Play")
        return f"{name} for {self.account.name} ({self.get_status_display()})"

    @property
    def started_by_label(self) -> str:
        """Who started it: the user's email, or "automation" (the engine or the schedule)."""
        return self.started_by.email if self.started_by_id else "automation"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.finished_at and self.started_at and self.finished_at < self.started_at:
            raise ValidationError({"finished_at": "Cannot finish before it started."})


class PlaybookTriggerEvaluation(TenantOwnedModel):
    """One evaluation of one trigger by evaluate-all (the API or the schedule); ``/test`` writes none."""

    trigger = models.ForeignKey(PlaybookTrigger, on_delete=models.CASCADE, related_name="evaluations")
    evaluated_at = models.DateTimeField(default=timezone.now)
    triggered = models.BooleanField(default=False)
    accounts_evaluated = models.PositiveIntegerField(default=0)
    accounts_affected = models.PositiveIntegerField(default=0)
    executions_created = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=10, choices=PlaybookExecution.Source.choices)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    message = models.CharField(max_length=255, blank=True, default="")
    config = models.JSONField(default=dict, blank=True, help_text="The thresholds used.")

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        indexes = [models.Index(fields=["trigger", "-evaluated_at"])]

    def __str__(self) -> str:
        return f"{self.trigger} at {self.evaluated_at:%Y-%m-%d %H:%M}"
