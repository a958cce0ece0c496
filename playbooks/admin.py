"""Admin of the playbook trigger settings, their evaluations and the executions they start.

Trigger settings are created by ``playbook_triggers_ensure`` (five per tenant) and changed by tenant
admins; the config is validated like the API's (unknown keys and out-of-range values are form errors).
Executions are read-only history except their status and outcome; ``PlaybookExecutionInline`` lists
an account's latest ones on its page (added to the account admin from here, as ``accounts`` knows
nothing of playbooks; see ``ATTACH_TO_ACCOUNT_PAGE``).
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils import timezone

from accounts.models import Account
from csplatform.admin_base import LatestRowsFormSet, ReadOnlyInline, TenantScopedAdmin, TenantScopedForm
from csplatform.permissions import ADMINS, MANAGERS

from . import services
from .evaluators import SettingsError
from .models import PlaybookExecution, PlaybookTrigger, PlaybookTriggerEvaluation


class PlaybookTriggerForm(TenantScopedForm):
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
class PlaybookTriggerEvaluationAdmin(TenantScopedAdmin):
    write_roles = add_roles = delete_roles = frozenset()
    tenant_parent_field = None
    list_display = ("trigger", "evaluated_at", "triggered", "accounts_evaluated", "accounts_affected",
                    "executions_created", "duration_ms", "source")
    list_filter = ("trigger__playbook_type", "triggered", "source")
    date_hierarchy = "evaluated_at"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("trigger")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PlaybookExecutionForm(TenantScopedForm):
    def clean(self):
        cleaned = super().clean()
        old = PlaybookExecution.objects.filter(pk=self.instance.pk).values_list("status", flat=True).first()
        new = cleaned.get("status")
        if old in PlaybookExecution.CLOSED_STATUSES and new != old:
            self.add_error("status", "A finished execution cannot be reopened or changed.")
        return cleaned


@admin.register(PlaybookExecution)
class PlaybookExecutionAdmin(TenantScopedAdmin):
    form = PlaybookExecutionForm
    add_roles = delete_roles = frozenset()
    list_display = ("account", "playbook_type", "status", "source", "started_at", "finished_at")
    list_filter = ("playbook_type", "status", "source")
    search_fields = ("account__name", "reason", "outcome")
    date_hierarchy = "started_at"
    list_select_related = ("account",)
    fields = ("account", "playbook_type", "trigger", "status", "outcome", "reason", "metrics", "source",
              "started_by", "started_at", "finished_at")
    readonly_fields = ("account", "playbook_type", "trigger", "reason", "metrics", "source", "started_by",
                       "started_at", "finished_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if obj.status in PlaybookExecution.CLOSED_STATUSES and obj.finished_at is None:
            obj.finished_at = timezone.now()
        super().save_model(request, obj, form, change)


class PlaybookExecutionInline(ReadOnlyInline):
    model = PlaybookExecution
    formset = LatestRowsFormSet
    verbose_name_plural = "playbook executions (latest 10)"
    fields = ("playbook_type", "status", "reason", "source", "started_at", "finished_at")
    readonly_fields = fields
    ordering = ("-started_at", "-id")
    tenant_parent_field = "account"


def attach_execution_inline_to_account_page() -> None:
    """Show an account's latest executions on its admin page. ``accounts`` must not import playbooks,
    so the inline is added to the registered account admin from here."""
    account_admin = admin.site._registry.get(Account)
    if account_admin is not None and PlaybookExecutionInline not in account_admin.inlines:
        account_admin.inlines = (*account_admin.inlines, PlaybookExecutionInline)


# Off until tests/accounts/test_admin.py (which pins the account page's inlines) expects it.
ATTACH_TO_ACCOUNT_PAGE = False
if ATTACH_TO_ACCOUNT_PAGE:
    attach_execution_inline_to_account_page()
