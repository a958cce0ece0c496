"""Admin of the playbook trigger settings, their evaluations and the executions they start.

Trigger settings are created by ``playbook_triggers_ensure`` (five per tenant) and changed by tenant
admins with one input per setting (made from the evaluator's settings; the JSON under "Advanced"); the config
is validated like the API's, and an unknown key or out-of-range value is an error next to its input.
SuccessPlays are edited with the rule admin's editors (``automation.admin.editors``). Executions are
read-only history except their status and outcome, and say what became of the messages their run sent
("webhook delivered 200", "webhook failing (3 attempts)", linked to the outbox); ``PlaybookExecutionInline``
lists an account's latest ones on its page (added to the account admin from here, as ``accounts`` knows
nothing of playbooks; see ``ATTACH_TO_ACCOUNT_PAGE``).
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import Account
from automation.admin.display import run_outcome_text
from automation.admin.editors import EditorsFormMixin, minutes_field, trigger_choices
from automation.delivery_outcomes import DELIVERY_FAILED, has_dead_message
from csplatform.admin_base import LatestRowsFormSet, ReadOnlyAdmin, ReadOnlyInline, TenantScopedAdmin, TenantScopedForm
from csplatform.json_schema import duration_words
from csplatform.permissions import ADMINS, MANAGERS
from csplatform.schema_forms import SchemaJSONField
from delivery.models import Outbox

from . import services
from .evaluators import SettingsError, get_evaluator
from .models import Playbook, PlaybookExecution, PlaybookSchedule, PlaybookTrigger, PlaybookTriggerEvaluation


class PlaybookTriggerForm(TenantScopedForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields.get("trigger_config")
        if field is not None and self.instance.playbook_type:
            schema = get_evaluator(self.instance.playbook_type).config_schema()
            self.fields["trigger_config"] = SchemaJSONField(schema, label="Settings", required=False,
                                                            help_text="Empty threshold = that check is off.")

    def clean(self):
        cleaned = super().clean()
        config = cleaned.get("trigger_config")
        if config is not None and self.instance.playbook_type:
            try:
                # The form shows the whole config: what is left out goes back to its default.
                cleaned["trigger_config"] = services.playbook_trigger_validate_config(
                    self.instance.playbook_type, config)
            except SettingsError as exc:
                self.add_error("trigger_config", "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items()))
                for key, texts in exc.errors.items():
                    for text in texts:
                        self.fields["trigger_config"].widget.add_error(key, text)
        return cleaned


@admin.register(PlaybookTrigger)
class PlaybookTriggerAdmin(TenantScopedAdmin):
    form = PlaybookTriggerForm
    write_roles = ADMINS
    add_roles = delete_roles = frozenset()
    tenant_parent_field = None
    list_display = ("playbook_type", "auto_trigger_enabled", "last_evaluated", "last_triggered", "trigger_count")
    list_filter = ("playbook_type", "auto_trigger_enabled")
    fields = ("playbook_type", "auto_trigger_enabled", "trigger_config", "defaults", "last_evaluated",
              "last_triggered", "trigger_count", "created_at", "updated_at")
    readonly_fields = ("playbook_type", "defaults", "last_evaluated", "last_triggered", "trigger_count",
                       "created_at", "updated_at")
    actions = ("test_now",)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        before = services.audit_snapshot(PlaybookTrigger.objects.get(pk=obj.pk), fields=services.AUDITED_TRIGGER_FIELDS)
        super().save_model(request, obj, form, change)
        services.playbook_trigger_audit(obj, actor=request.user, before=before)

    @admin.display(description="Defaults")
    def defaults(self, obj):
        return json.dumps(services.playbook_trigger_defaults().get(obj.playbook_type, {}), indent=1)

    @admin.action(description="Test selected triggers now (nothing is saved or started)")
    def test_now(self, request, queryset):
        for trigger in queryset.select_related("tenant"):
            if not self.has_role(request, MANAGERS, trigger):
                continue
            result = services.playbook_trigger_test(tenant=trigger.tenant, playbook_type=trigger.playbook_type)
            names = ", ".join(a["account_name"] for a in result["affected_accounts"][:10])
            more = len(result["affected_accounts"]) - 10
            self.message_user(request, f"{trigger.tenant}: {result['message']}"
                              + (f": {names}" if names else "") + (f" and {more} more" if more > 0 else ""),
                              messages.INFO)


@admin.register(PlaybookTriggerEvaluation)
class PlaybookTriggerEvaluationAdmin(ReadOnlyAdmin):
    write_roles = add_roles = delete_roles = frozenset()
    tenant_parent_field = None
    list_display = ("trigger", "evaluated_at", "triggered", "accounts_evaluated", "accounts_affected",
                    "executions_created", "duration_ms", "source")
    list_filter = ("trigger__playbook_type", "triggered", "source")
    date_hierarchy = "evaluated_at"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("trigger")


class PlaybookExecutionForm(TenantScopedForm):
    def clean(self):
        cleaned = super().clean()
        old = PlaybookExecution.objects.filter(pk=self.instance.pk).values_list("status", flat=True).first()
        new = cleaned.get("status")
        if old in PlaybookExecution.CLOSED_STATUSES and new != old:
            self.add_error("status", "A finished execution cannot be reopened or changed.")
        return cleaned


def delivery_messages(executions) -> None:
    """Give each execution ``messages``: its run's outbox messages (one query for them all)."""
    runs = {e.run_id for e in executions if e.run_id}
    found: dict[int, list[dict]] = {}
    if runs:
        rows = (Outbox.objects.filter(tenant_id__in={e.tenant_id for e in executions}, run_id__in=runs)
                .order_by("id").values("pk", "run_id", "channel", "status", "attempts", "last_status_code"))
        for row in rows:
            found.setdefault(row["run_id"], []).append(row)
    for execution in executions:
        execution.messages = found.get(execution.run_id, [])


def message_text(row: dict) -> str:
    """ "webhook delivered 200", "webhook failing (3 attempts)", "email dead after 8 attempts", "sms queued"."""
    channel, status, attempts = row["channel"], row["status"], row["attempts"]
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if status == Outbox.Status.DELIVERED:
        return f"{channel} delivered" + (f" {row['last_status_code']}" if row["last_status_code"] else "")
    if status == Outbox.Status.FAILED:
        return f"{channel} failing ({tries})"
    if status == Outbox.Status.DEAD:
        return f"{channel} dead after {tries}"
    return f"{channel} {'sending' if status == Outbox.Status.SENDING else 'queued'}"


class ExecutionChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        delivery_messages(self.result_list)


@admin.register(PlaybookExecution)
class PlaybookExecutionAdmin(TenantScopedAdmin):
    form = PlaybookExecutionForm
    add_roles = delete_roles = frozenset()
    list_display = ("account", "playbook", "playbook_type", "shown_status", "delivery", "source", "started_at",
                    "finished_at")
    list_filter = ("playbook_type", "status", "source", "playbook")
    search_fields = ("account__name", "reason", "outcome")
    date_hierarchy = "started_at"
    list_select_related = ("account", "playbook")
    fields = ("account", "playbook", "playbook_type", "trigger", "status", "delivery", "outcome", "reason", "metrics",
              "source", "started_by", "forced", "run", "started_at", "finished_at")
    readonly_fields = ("account", "playbook", "playbook_type", "trigger", "delivery", "reason", "metrics", "source",
                       "started_by", "forced", "run", "started_at", "finished_at")

    def get_queryset(self, request):
        # The account and the play name the execution in titles and lists (``__str__``): loaded with it.
        return super().get_queryset(request).select_related("account", "playbook").annotate(
            has_dead=has_dead_message("run_id"))

    def get_changelist(self, request, **kwargs):
        return ExecutionChangeList

    @admin.display(description="Status", ordering="status")
    def shown_status(self, obj):
        """A completed play whose run has a dead message reads "Delivery failed" (its outcome only says "queued")."""
        if obj.status == PlaybookExecution.Status.COMPLETED and getattr(obj, "has_dead", False):
            return run_outcome_text(DELIVERY_FAILED, None)
        return obj.get_status_display()

    @admin.display(description="Delivery")
    def delivery(self, obj):
        """What became of each message the play's run wrote, linked to the message in the outbox."""
        if obj.run_id is None:
            return "-"
        if not hasattr(obj, "messages"):
            delivery_messages([obj])
        if not obj.messages:
            return "No messages"
        return format_html_join(format_html("<br>"), '<a href="{}">{}</a>', (
            (reverse("admin:delivery_outbox_change", args=[row["pk"]]), message_text(row)) for row in obj.messages))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if obj.status in PlaybookExecution.CLOSED_STATUSES and obj.finished_at is None:
            obj.finished_at = timezone.now()
        super().save_model(request, obj, form, change)


class PlaybookForm(EditorsFormMixin, TenantScopedForm):
    """Validated like the API: the engine checks trigger, conditions and actions (errors on the field and next
    to the input); they are edited with the rule admin's editors, the cooldown as a duration."""

    trigger_type = forms.ChoiceField(choices=trigger_choices, help_text="Any trigger of the automation engine.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "cooldown_minutes" in self.fields:
            old = self.fields["cooldown_minutes"]
            self.fields["cooldown_minutes"] = minutes_field(required=old.required, initial=old.initial,
                                                            label="Cooldown", help_text=old.help_text)
        self.use_editors("trigger_config", "conditions", "actions")

    def clean(self):
        import copy

        from django.core.exceptions import ValidationError

        cleaned = super().clean()
        if self.errors or getattr(self.instance, "tenant_id", None) is None:
            return cleaned
        data = {name: cleaned[name] for name in services.PLAYBOOK_FIELDS if name in cleaned}
        try:
            normalised = services.playbook_validate(playbook=copy.copy(self.instance), data=data)
        except ValidationError as exc:
            for key, texts in exc.message_dict.items():
                for text in texts:
                    field = self.show_error(key, text)
                    self.add_error(field, text if key == field else f"{key}: {text}")
            return cleaned
        for name in ("trigger_config", "conditions", "actions"):
            cleaned[name] = getattr(normalised, name)
        return cleaned


class TriggerPlayForm(ActionForm):
    account = forms.CharField(required=False, help_text="Account id or exact name")
    reason = forms.CharField(required=False)
    force = forms.BooleanField(required=False, help_text="Override the cooldown (needs a reason)")


@admin.register(Playbook)
class PlaybookAdmin(TenantScopedAdmin):
    """SuccessPlays (seed 004). Saved through ``playbook_save`` (which keeps the automation rule in step)."""

    form = PlaybookForm
    write_roles = add_roles = delete_roles = ADMINS
    tenant_parent_field = None
    list_display = ("name", "is_active", "trigger_type", "webhook_url", "cooldown", "updated_at")
    list_filter = ("is_active", "trigger_type")
    search_fields = ("name", "description")
    fields = ("name", "description", "is_active", "trigger_type", "trigger_config", "conditions", "webhook_url",
              "actions", "cooldown_minutes", "workflow", "created_by", "created_at", "updated_at")
    readonly_fields = ("workflow", "created_by", "created_at", "updated_at")
    action_form = TriggerPlayForm
    actions = ("trigger_for_account",)

    @admin.display(description="Cooldown", ordering="cooldown_minutes")
    def cooldown(self, obj):
        return duration_words(obj.cooldown_minutes, "minutes")

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in services.PLAYBOOK_FIELDS if name in form.cleaned_data}
        services.playbook_save(playbook=obj, data=data, actor=request.user)

    def delete_model(self, request, obj):
        services.playbook_delete(playbook=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for play in queryset.select_related("workflow"):
            services.playbook_delete(playbook=play, actor=request.user)

    @admin.action(description="Trigger selected SuccessPlays for the account named below")
    def trigger_for_account(self, request, queryset):
        import uuid

        from django.core.exceptions import ValidationError

        key = (request.POST.get("account") or "").strip()
        reason = (request.POST.get("reason") or "").strip()
        force = request.POST.get("force") in ("on", "true", "1")
        if not key:
            self.message_user(request, "Name the account (id or exact name) to trigger the plays for.", messages.ERROR)
            return
        for play in queryset.select_related("tenant"):
            if not self.has_role(request, MANAGERS, play):
                self.message_user(request, f"{play}: your role does not allow triggering plays.", messages.ERROR)
                continue
            accounts = Account.objects.for_tenant(play.tenant_id)
            try:
                account = accounts.filter(pk=uuid.UUID(key)).first()
            except ValueError:
                account = accounts.filter(name=key).first()
            if account is None:
                self.message_user(request, f"{play}: no account '{key}' in {play.tenant}.", messages.ERROR)
                continue
            try:
                execution = services.trigger_playbook_manually(play, account, reason, user=request.user, force=force)
            except services.PlaybookCooldown as exc:
                self.message_user(request, exc.message, messages.WARNING)
            except ValidationError as exc:
                self.message_user(request, f"{play}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"{play} ran for {account.name}: {execution.get_status_display()} "
                                           f"({execution.outcome})", messages.SUCCESS)


@admin.register(PlaybookSchedule)
class PlaybookScheduleAdmin(TenantScopedAdmin):
    """The tenant's daily evaluate-all time (its own timezone)."""

    write_roles = ADMINS
    add_roles = delete_roles = frozenset()
    tenant_parent_field = None
    list_display = ("evaluate_at", "enabled", "last_run_on")
    fields = ("evaluate_at", "enabled", "last_run_on")
    readonly_fields = ("last_run_on",)

    def has_add_permission(self, request):
        return False


class PlaybookExecutionInline(ReadOnlyInline):
    model = PlaybookExecution
    formset = LatestRowsFormSet
    verbose_name_plural = "playbook executions (latest 10)"
    fields = ("playbook", "playbook_type", "status", "reason", "source", "started_at", "finished_at")
    readonly_fields = fields
    ordering = ("-started_at", "-id")
    tenant_parent_field = "account"


def attach_execution_inline_to_account_page() -> None:
    """Show an account's latest executions on its admin page. ``accounts`` must not import playbooks,
    so the inline is added to the registered account admin from here."""
    account_admin = admin.site._registry.get(Account)
    if account_admin is not None and PlaybookExecutionInline not in account_admin.inlines:
        account_admin.inlines = (*account_admin.inlines, PlaybookExecutionInline)


ATTACH_TO_ACCOUNT_PAGE = True
if ATTACH_TO_ACCOUNT_PAGE:
    attach_execution_inline_to_account_page()
