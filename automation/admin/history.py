"""History the engine writes, read-only in the admin: runs with their steps (and the outbox messages they
wrote), events and scheduled slots. Tenant admins may delete runs; practitioners may replay runs and hand
failed events to a worker again."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from csplatform.admin_base import ReadOnlyAdmin, ReadOnlyInline, TenantScopedAdmin
from csplatform.admin_display import json_display
from csplatform.permissions import ADMINS, MANAGERS
from delivery.models import Outbox

from ..delivery_outcomes import DELIVERY_FAILED, Deliveries, has_dead_message
from ..engine import event_retry
from ..models import Event, Run, RunStep, ScheduledSlot
from .display import delivery_text, duration_text, run_outcome_text, trace_table
from .firing import replay_run

FINISHED = (Run.Status.SUCCESS, Run.Status.FAILED, Run.Status.SKIPPED)


class RunStepInline(ReadOnlyInline):
    model = RunStep
    fields = ("position", "action_type", "status", "delivery", "attempts", "error", "duration_ms", "output_pretty")
    readonly_fields = fields
    ordering = ("position",)

    output_pretty = json_display("output", "Output")

    @admin.display(description="Delivery")
    def delivery(self, obj):
        # One outbox query for the run's steps (the inline is made afresh for each request).
        memo = self.__dict__.setdefault("_deliveries", {})
        if obj.run_id not in memo:
            memo[obj.run_id] = Deliveries(obj.tenant_id, [obj.run_id])
        return delivery_text(memo[obj.run_id].step(obj))


class DeliveryFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [("failed", "Delivery failed (a message is dead)")]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(status=Run.Status.SUCCESS, has_dead=True)
        return queryset


class SkipReasonFilter(admin.SimpleListFilter):
    title = "skip reason"
    parameter_name = "skip_reason"

    def lookups(self, request, model_admin):
        return [("none", "Not skipped"), *Run.SkipReason.choices]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(skip_reason="")
        if self.value():
            return queryset.filter(skip_reason=self.value())
        return queryset


@admin.register(Run)
class RunAdmin(TenantScopedAdmin):
    """Run history: read-only; tenant admins may delete runs, practitioners may replay them."""

    write_roles = frozenset()
    delete_roles = ADMINS
    run_roles = MANAGERS
    tenant_parent_field = None
    deleted_with_parent = True
    list_display = ("number", "workflow", "account", "outcome", "skip_reason", "depth", "attempt", "manual",
                    "created_at", "duration")
    list_display_links = ("number",)
    list_select_related = ("workflow", "account")
    list_filter = ("status", DeliveryFilter, SkipReasonFilter, ("workflow", admin.RelatedOnlyFieldListFilter), "manual", "created_at")
    search_fields = ("workflow__name", "account__name", "subject_id")
    date_hierarchy = "created_at"
    inlines = (RunStepInline,)
    actions = ("replay",)
    fieldsets = (
        (None, {"fields": ("workflow", "workflow_version", "outcome_detail", "skip_reason", "error", "account", "subject",
                           "event", "depth", "manual")}),
        ("Timing", {"fields": ("created_at", "scheduled_for", "started_at", "finished_at", "duration")}),
        ("Retries", {"fields": ("attempt", "retry_of", "start_position")}),
        ("Detail", {"fields": ("trigger_data_pretty", "result_pretty", "trace_table")}),
    )
    readonly_fields = ("workflow", "workflow_version", "outcome_detail", "skip_reason", "error", "account", "subject", "event",
                       "depth", "manual",
                       "created_at", "scheduled_for", "started_at", "finished_at", "duration", "attempt", "retry_of",
                       "start_position", "trigger_data_pretty", "result_pretty", "trace_table", "outbox_messages")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # The run page's title names the rule and the account (``Run.__str__``): read with the run.
        return super().get_queryset(request).annotate(has_dead=has_dead_message()).select_related("workflow", "account")

    @admin.display(description="Status", ordering="status")
    def outcome(self, obj):
        """The status a CSM should read: a success whose message died is "Delivery failed" (from the annotation)."""
        dead = getattr(obj, "has_dead", False) and obj.status == Run.Status.SUCCESS
        return run_outcome_text(DELIVERY_FAILED if dead else obj.status, None)

    @admin.display(description="Status")
    def outcome_detail(self, obj):
        """On the run page, also how many of its messages are dead, retrying or still queued."""
        deliveries = Deliveries(obj.tenant_id, [obj.pk])
        return run_outcome_text(deliveries.status(obj), deliveries.run(obj))

    def has_run_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.run_roles), obj)

    def get_fieldsets(self, request, obj=None):
        # The messages section only on runs whose steps wrote messages (most runs write none).
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and Outbox.objects.for_tenant(obj.tenant_id).filter(run_id=obj.pk).exists():
            fieldsets = (*fieldsets, ("Outbox messages (delivery of each step)", {"fields": ("outbox_messages",)}))
        return fieldsets

    @admin.display(description="Messages")
    def outbox_messages(self, obj):
        """What the run's steps wrote and how delivery went (delivery keeps plain run/step ids)."""
        steps = {step.pk: f"{step.position}: {step.action_type}" for step in obj.steps.all()}
        rows = [(reverse("admin:delivery_outbox_change", args=[m.pk]), steps.get(m.run_step_id, "-"), m.channel,
                 Truncator(m.target).chars(60), m.status, m.attempts, m.last_status_code or "-", m.error or "-",
                 m.next_attempt_at, m.delivered_at or "-")
                for m in Outbox.objects.for_tenant(obj.tenant_id).filter(run_id=obj.pk).order_by("run_step_id", "id")]
        return format_html(
            "<table><thead><tr><th>Step</th><th>Channel</th><th>Target</th><th>Status</th><th>Attempts</th>"
            "<th>Last code</th><th>Error</th><th>Next attempt</th><th>Delivered</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                                 "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows))

    @admin.display(description="Run", ordering="pk")
    def number(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="Duration")
    def duration(self, obj):
        start = obj.started_at or obj.created_at
        if obj.finished_at is None or start is None:
            return "-"
        return duration_text(max((obj.finished_at - start).total_seconds(), 0))

    @admin.display(description="Subject")
    def subject(self, obj):
        return f"{obj.subject_model} {obj.subject_id}".strip() or "-"

    trigger_data_pretty = json_display("trigger_data", "Trigger data")
    result_pretty = json_display("result", "Result")

    @admin.display(description="Condition trace")
    def trace_table(self, obj):
        if not obj.trace:
            return "Not recorded (turn on the rule's debug mode to record which condition passed or failed)."
        return trace_table(obj.trace)

    @admin.action(description="Replay (fire the rule again for the same event and account)", permissions=["run"])
    def replay(self, request, queryset):
        for run in queryset.select_related("workflow__tenant", "event", "account"):
            if not self.has_run_permission(request, run):
                self.message_user(request, f"Run {run.pk}: your role does not allow replaying it.", messages.WARNING)
                continue
            if run.status not in FINISHED:
                self.message_user(request, f"Run {run.pk} is still {run.status}; only finished runs are replayed.",
                                  messages.WARNING)
                continue
            level, text = replay_run(run)
            self.message_user(request, text, level)


# --- events and schedule slots -------------------------------------------------------------------

class ProcessedFilter(admin.SimpleListFilter):
    title = "processed"
    parameter_name = "processed"

    def lookups(self, request, model_admin):
        return [("yes", "Processed"), ("no", "Pending"), ("failed", "Failed (set aside)")]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(failed_at__isnull=False)
        if self.value() in ("yes", "no"):
            return queryset.filter(processed_at__isnull=self.value() == "no", failed_at__isnull=True)
        return queryset


class HistoryAdmin(ReadOnlyAdmin):
    """Read-only history written by the engine."""

    write_roles = frozenset()
    tenant_parent_field = None
    deleted_with_parent = True


@admin.register(Event)
class EventAdmin(HistoryAdmin):
    list_display = ("type", "model", "object_id", "account", "depth", "created_at", "processed_at", "attempts",
                    "failed_at")
    list_select_related = ("account",)
    list_filter = (ProcessedFilter, "type", "model", "created_at")
    search_fields = ("type", "object_id", "account__name")
    date_hierarchy = "created_at"
    fields = ("type", "model", "object_id", "account", "depth", "created_at", "processed_at", "attempts",
              "failed_at", "last_error", "changes_pretty", "payload_pretty")
    readonly_fields = fields
    actions = ["process_again"]
    retry_roles = MANAGERS

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account")  # the page's title names it

    def has_retry_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.retry_roles), obj)

    @admin.action(description="Process again (failed events: fresh attempts, handed to a worker)",
                  permissions=["retry"])
    def process_again(self, request, queryset):
        allowed = [e for e in queryset.filter(failed_at__isnull=False) if self.has_retry_permission(request, e)]
        for event in allowed:
            event_retry(event)
        self.message_user(request, f"Handed {len(allowed)} failed event(s) to a worker again; events that had "
                                   f"not failed were left as they were.", messages.SUCCESS)

    changes_pretty = json_display("changes", "Changes")
    payload_pretty = json_display("payload", "Payload")


@admin.register(ScheduledSlot)
class ScheduledSlotAdmin(HistoryAdmin):
    list_display = ("workflow", "slot", "runs", "created_at")
    list_select_related = ("workflow",)
    list_filter = (("workflow", admin.RelatedOnlyFieldListFilter), "slot")
    date_hierarchy = "slot"
    fields = ("workflow", "slot", "runs", "created_at")
    readonly_fields = fields
