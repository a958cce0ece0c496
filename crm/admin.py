"""Admin of the CRM journeys: journeys with their steps inline, executions and codes to look at.

Tenant admins and practitioners see and edit journeys (like the owner API); executions and discount
codes are history: read-only here, changed through the API or the admin actions (cancel, convert),
which go through ``crm.services``. A step's conditions and A/B variants are edited with inputs (the
conditions with the rule admin's condition editor, the JSON under "Advanced"), delays and the re-entry
cooldown as durations shown in words; a step's errors (``step_validate``) appear next to the input they name.
"""

from __future__ import annotations

import re

from django.contrib import admin, messages
from django.db import models
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.audit import audit_snapshot
from accounts.models import Tenant
from automation.admin.editors import conditions_field
from csplatform import json_schema as js
from csplatform.admin_base import (
    AuditedAdminMixin, ReadOnlyAdmin, ReadOnlyInline, TenantScopedAdmin, TenantScopedForm, TenantScopedInline,
    tenant_ids_with_role,
)
from csplatform.json_schema import duration_words
from csplatform.permissions import ADMINS, MANAGERS
from csplatform.schema_forms import DurationField, SchemaEditor, SchemaJSONField
from csplatform.tenancy import tenant_context

from . import services
from .models import (
    BillingEvent, CRMDiscountCode, CRMPlaybook, CRMPlaybookExecution, CRMSettings, CRMStep, CRMStepExecution,
    StripeWebhookEndpoint,
)


#: A step's A/B variants (checked by ``crm.models.step_validate``, this only offers the inputs).
VARIANTS_SCHEMA = js.many({"type": "object", "title": "variant", "required": ["name"], "properties": {
    "name": js.text(), "weight": js.number(minimum=0, description="Share of the contacts (default 1)."),
    "template": js.text(description="Another template, e.g. crm/rescue_b.html; empty = the step's."),
    "subject": js.template(description="Another subject; empty = the step's."),
}})
PATH_FIRST = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.+)$", re.S)


class CRMStepForm(TenantScopedForm):
    """A step with its conditions and variants as inputs and its delay as a duration."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "delay_hours" in self.fields:
            old = self.fields["delay_hours"]
            self.fields["delay_hours"] = DurationField("hours", min_value=0, required=old.required, label="Delay",
                                                       initial=old.initial, help_text="After the previous step "
                                                       "(the first: after the start).")
        if "conditions" in self.fields:
            self.fields["conditions"] = conditions_field(model="contact", help_text="On the contact, e.g. "
                                                         "account.status equals active; none = always.")
        if "variants" in self.fields:
            self.fields["variants"] = SchemaJSONField(VARIANTS_SCHEMA, required=False,
                                                      help_text="A/B test; none = no test.")

    def _post_clean(self):
        super()._post_clean()  # the step's own validation (``step_validate``): errors name the field
        for name in ("conditions", "variants"):
            widget = self.fields[name].widget if name in self.fields else None
            if not isinstance(widget, SchemaEditor):
                continue
            for text in self.errors.get(name, []):
                match = PATH_FIRST.match(text)  # a condition's error starts with its path: "conditions[0].value: ..."
                if match:
                    widget.add_error(match.group(1), match.group(2))


def as_duration(form, name: str, unit: str, label: str, **kwargs):
    """``form`` (a ModelForm class) with its whole number of ``unit`` entered as a duration, shown in words."""
    old = form.base_fields.get(name)
    if old is not None:
        form.base_fields[name] = DurationField(unit, integer=True, initial=old.initial, required=old.required,
                                               label=label, help_text=old.help_text, **kwargs)
    return form


class CRMStepInline(TenantScopedInline):
    model = CRMStep
    form = CRMStepForm
    template = "admin/edit_inline/stacked.html"
    tenant_parent_field = "playbook"
    read_roles = MANAGERS
    extra = 0
    ordering = ("order",)
    fields = ("order", "name", "delay_hours", "channel", "template", "subject", "discount_percent", "quiet_hours",
              "conditions", "on_condition_fail", "branch_to", "variants")


@admin.register(CRMPlaybook)
class CRMPlaybookAdmin(AuditedAdminMixin, TenantScopedAdmin):
    tenant_parent_field = None
    read_roles = MANAGERS
    list_display = ("name", "title", "trigger_event", "active", "step_count", "reentry_cooldown", "max_entries")
    list_filter = ("trigger_event", "active")
    search_fields = ("name", "title")
    readonly_fields = ("rules", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "title", "description", "trigger_event", "active", "rules")}),
        ("Re-entry", {"fields": ("reentry_cooldown_hours", "max_entries"),
                      "description": "How soon and how often the same contact may enter this journey again."}),
        (None, {"fields": ("created_at", "updated_at")}),
    )
    inlines = (CRMStepInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(steps_total=models.Count("steps"))

    @admin.display(description="Steps", ordering="steps_total")
    def step_count(self, obj):
        return obj.steps_total

    @admin.display(description="Re-entry cooldown", ordering="reentry_cooldown_hours")
    def reentry_cooldown(self, obj):
        return duration_words(obj.reentry_cooldown_hours, "hours")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        return as_duration(form, "reentry_cooldown_hours", "hours", "Re-entry cooldown", min_value=0)

    @admin.display(description="Automation rules")
    def rules(self, obj):
        """The rules the journey keeps (its trigger starts it through them; their runs say why)."""
        links = [format_html('<a href="{}">{} #{}</a>', reverse("admin:automation_workflow_change", args=[pk]), label, pk)
                 for label, pk in (("start", obj.workflow_id), ("conversion", obj.conversion_workflow_id)) if pk]
        if links:
            return format_html_join(" · ", "{}", ((link,) for link in links))
        return "none yet" if obj.pk is None else "none (a manual journey starts from add_to_cadence or the API)"

    def audit_values(self, journey) -> dict:
        """A journey is audited with its steps (edited inline)."""
        data = audit_snapshot(journey)
        data["steps"] = [audit_snapshot(step) for step in journey.steps.order_by("order", "pk")]
        return data

    def changelist_view(self, request, extra_context=None):
        # The six default journeys exist for every tenant the user manages, also ones created before crm.
        tenant_ids = None if request.user.is_superuser else tenant_ids_with_role(request, MANAGERS)
        if tenant_ids:
            for tenant in Tenant.objects.filter(pk__in=tenant_ids):
                with tenant_context(tenant):
                    services.crm_journeys_ensure(tenant)
        return super().changelist_view(request, extra_context)


class CRMStepExecutionInline(ReadOnlyInline):
    model = CRMStepExecution
    tenant_parent_field = "execution"
    read_roles = MANAGERS
    show_change_link = False
    fields = ("step_order", "channel", "status", "variant", "recipient", "subject", "scheduled_for", "sent_at",
              "discount_code", "outbox_message_id", "error")
    readonly_fields = fields
    ordering = ("step_order",)


@admin.register(CRMPlaybookExecution)
class CRMPlaybookExecutionAdmin(TenantScopedAdmin):
    tenant_parent_field = None
    read_roles = MANAGERS
    list_display = ("playbook", "contact", "account", "status", "current_step", "next_step_at", "started_at",
                    "conversion_value")
    list_display_links = ("playbook",)  # the journey's name opens the execution, not its id
    list_filter = ("status", "playbook__name", "source")
    list_select_related = ("playbook", "contact", "account")
    search_fields = ("contact__name", "contact__email", "account__name")
    date_hierarchy = "started_at"
    inlines = (CRMStepExecutionInline,)
    actions = ("cancel_executions", "convert_executions")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "tenant"]

    def get_queryset(self, request):
        # The page's title names the journey, the contact and the account (``__str__``): read with the execution.
        return super().get_queryset(request).select_related("playbook", "contact", "account")

    def has_add_permission(self, request):
        return False  # journeys start from triggers, automation rules or POST /api/v1/crm/executions

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel the selected active executions")
    def cancel_executions(self, request, queryset):
        done = 0
        for execution in queryset.filter(status=CRMPlaybookExecution.Status.ACTIVE):
            if self.has_role(request, MANAGERS, execution):
                services.execution_cancel(execution=execution, reason=f"cancelled in the admin by {request.user}")
                done += 1
        self.message_user(request, f"Cancelled {done} execution(s).", messages.SUCCESS)

    @admin.action(description="Mark the selected executions converted (no value)")
    def convert_executions(self, request, queryset):
        done = 0
        for execution in queryset.filter(status__in=[CRMPlaybookExecution.Status.ACTIVE,
                                                     CRMPlaybookExecution.Status.COMPLETED]):
            if self.has_role(request, MANAGERS, execution):
                services.execution_convert(execution=execution, reason=f"converted in the admin by {request.user}")
                done += 1
        self.message_user(request, f"Converted {done} execution(s).", messages.SUCCESS)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_role(request, MANAGERS):
            actions.pop("cancel_executions", None)
            actions.pop("convert_executions", None)
        return actions


@admin.register(CRMDiscountCode)
class CRMDiscountCodeAdmin(ReadOnlyAdmin):
    tenant_parent_field = None
    read_roles = MANAGERS
    list_display = ("code", "percent", "contact", "state_column", "expires_at", "used_at", "created_at")
    list_filter = ("percent",)
    list_select_related = ("contact",)
    search_fields = ("code", "contact__name", "contact__email")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "tenant"]

    @admin.display(description="State")
    def state_column(self, obj):
        return obj.state()


@admin.register(CRMSettings)
class CRMSettingsAdmin(TenantScopedAdmin):
    tenant_parent_field = None
    read_roles = MANAGERS
    write_roles = ADMINS
    delete_roles = frozenset()
    list_display = ("__str__", "quiet_hours_start", "quiet_hours_end", "chat_transport", "code_expiry",
                    "last_daily_scan")
    readonly_fields = ("last_daily_scan",)

    @admin.display(description="Discount codes expire after", ordering="discount_expiry_days")
    def code_expiry(self, obj):
        return duration_words(obj.discount_expiry_days, "days")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        return as_duration(form, "discount_expiry_days", "days", "Discount codes expire after", min_value=1)


@admin.register(BillingEvent)
class BillingEventAdmin(ReadOnlyAdmin):
    """Billing events received (API and Stripe): what each one found and raised."""

    tenant_parent_field = None
    read_roles = MANAGERS
    list_display = ("received_at", "source", "type", "external_id", "account", "contact", "amount", "currency",
                    "outcome")
    list_filter = ("source", "type", "outcome")
    list_select_related = ("account", "contact")
    search_fields = ("external_id", "customer_ref", "account__name", "contact__email")
    date_hierarchy = "received_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "tenant"]


@admin.register(StripeWebhookEndpoint)
class StripeWebhookEndpointAdmin(ReadOnlyAdmin):
    """Set through ``POST /api/billing/stripe/endpoint/`` (tenant admins); the signing secret is never shown."""

    tenant_parent_field = None
    read_roles = ADMINS
    list_display = ("__str__", "tolerance_seconds", "created_at", "updated_at")
    fields = ("tolerance_seconds", "created_at", "updated_at")
    readonly_fields = fields
