"""Accounts (with their contacts, scores, tasks, notes and journey on one page), contacts, tags, journey stages."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import path, reverse
from django.utils.html import format_html

from csplatform.admin_base import (
    LatestRowsFormSet, ReadOnlyAdmin, ReadOnlyInline, TenantScopedAdmin, TenantScopedForm, TenantScopedInline,
)
from csplatform.permissions import ADMINS, CONTRIBUTORS

from .. import services
from ..cockpit.views import account_360
from ..models import Account, Contact, HealthScore, JourneyHistory, JourneyStage, Note, Opportunity, Tag, Task
from .display import breakdown_summary, risk_badge

# --- inlines of the account page -----------------------------------------------------------------

class ContactInline(TenantScopedInline):
    model = Contact
    fields = ("name", "email", "phone", "role", "is_primary", "email_opt_out")
    show_change_link = True


class OpportunityInline(TenantScopedInline):
    model = Opportunity
    fields = ("name", "kind", "stage", "value", "currency", "close_date", "probability", "owner")
    show_change_link = True


class RecentHealthScoreInline(ReadOnlyInline):
    model = HealthScore
    formset = LatestRowsFormSet
    verbose_name_plural = "recent health scores (latest 10)"
    fields = ("calculated_at", "overall_score", "previous_score", "risk", "components")
    readonly_fields = fields
    ordering = ("-calculated_at", "-id")

    @admin.display(description="Risk")
    def risk(self, obj):
        return risk_badge(obj.risk_level, obj.get_risk_level_display())

    @admin.display(description="Components (score x weight = contribution)")
    def components(self, obj):
        return breakdown_summary(obj)


class OpenTaskInline(TenantScopedInline):
    model = Task
    add_roles = CONTRIBUTORS
    creator_field = "created_by"
    verbose_name_plural = "open tasks"
    fields = ("title", "assignee", "due_date", "priority", "status", "source")
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status__in=Task.OPEN_STATUSES)


class NoteInline(TenantScopedInline):
    model = Note
    add_roles = CONTRIBUTORS
    creator_field = "author"
    fields = ("body", "pinned", "author", "created_at")
    readonly_fields = ("created_at",)
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 60})}}


class JourneyHistoryInline(ReadOnlyInline):
    model = JourneyHistory
    fields = ("stage", "from_stage", "entered_at", "exited_at", "duration_days", "moved_by", "reason")
    readonly_fields = fields
    ordering = ("-entered_at",)


# --- accounts ------------------------------------------------------------------------------------

class AccountAdminForm(TenantScopedForm):
    def clean(self):
        cleaned = super().clean()
        if self.instance.tenant_id is not None and "parent" in cleaned:
            try:
                services.account_validate_parent(account=self.instance, parent=cleaned["parent"])
            except ValidationError as exc:
                self.add_error(None, exc)
        return cleaned


@admin.register(Account)
class AccountAdmin(TenantScopedAdmin):
    form = AccountAdminForm
    tenant_parent_field = None
    list_display = (  # fits a 1280 px window (tests/browser/test_changelist_widths.py): score and band in one column
        "name", "customer_360", "parent", "health", "current_stage", "arr_column", "renewal_date", "owner", "status",
    )
    list_select_related = ("parent", "current_stage", "owner")
    list_filter = (
        "risk_level", "status", ("current_stage", admin.RelatedOnlyFieldListFilter), "industry", "size",
    )
    search_fields = ("name", "industry")
    autocomplete_fields = ("parent",)
    filter_horizontal = ("tags",)
    readonly_fields = ("health_score", "risk", "current_stage", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "parent", "status", "owner", "tags")}),
        ("Company", {"fields": ("industry", "size", "employee_count")}),
        ("Contract", {"fields": ("arr", "licensed_seats", "renewal_date")}),
        ("Health and journey", {
            "fields": ("health_score", "risk", "current_stage", "created_at", "updated_at"),
            "description": "Computed: record a health score or move the account to a stage to change them.",
        }),
    )
    inlines = (ContactInline, OpportunityInline, RecentHealthScoreInline, OpenTaskInline, NoteInline, JourneyHistoryInline)

    @admin.display(description="Risk", ordering="risk_level")
    def risk(self, obj):
        return risk_badge(obj.risk_level, obj.get_risk_level_display())

    @admin.display(description="Health score", ordering="health_score")
    def health(self, obj):
        if obj.health_score is None:
            return "-"
        return format_html("{} {}", obj.health_score, risk_badge(obj.risk_level, obj.get_risk_level_display()))

    @admin.display(description="ARR", ordering="arr")
    def arr_column(self, obj):
        return f"{obj.arr:,.0f}"

    @admin.display(description="Customer 360")
    def customer_360(self, obj):
        return format_html('<a href="{}">Open 360</a>', reverse("admin:accounts_account_360", args=[obj.pk]))

    def get_urls(self):
        # The read view of an account (accounts/cockpit); before the default "<id>/" catch-all.
        view = self.admin_site.admin_view(lambda request, object_id: account_360(request, object_id, self))
        return [path("<path:object_id>/360/", view, name="accounts_account_360"), *super().get_urls()]

    def save_model(self, request, obj, form, change):
        # Validates the hierarchy again (inside the transaction) and reports status changes.
        services.account_save(account=obj)

    # "Move to stage: X" actions, one per stage name of the user's tenants; each account moves to
    # the stage of that name in its own tenant.
    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            return actions
        stages = JourneyStage.objects.order_by("order", "name")
        tenant_ids = self.writable_tenant_ids(request)
        if tenant_ids is not None:
            stages = stages.filter(tenant__in=tenant_ids)
        names = list(dict.fromkeys(stages.values_list("name", flat=True)))
        for index, name in enumerate(names):
            key = f"move_to_stage_{index}"
            actions[key] = (self._move_action(name), key, f"Move to stage: {name}")
        return actions

    def _move_action(self, stage_name: str):
        def move(modeladmin, request, queryset):
            stages = {s.tenant_id: s for s in JourneyStage.objects.filter(name=stage_name)}
            moved, skipped = 0, []
            for account in queryset:
                stage = stages.get(account.tenant_id)
                if stage is None or not modeladmin.has_change_permission(request, account):
                    skipped.append(account.name)
                    continue
                services.journey_move_to_stage(account=account, stage=stage, moved_by=request.user,
                                               reason="Moved in the admin")
                moved += 1
            modeladmin.message_user(request, f"Moved {moved} account(s) to {stage_name}.", messages.SUCCESS)
            if skipped:
                modeladmin.message_user(
                    request, f"Not moved (no such stage or not allowed): {', '.join(skipped)}.", messages.WARNING
                )

        return move


@admin.register(Contact)
class ContactAdmin(TenantScopedAdmin):
    list_display = ("name", "account", "email", "role", "status", "engagement_score", "is_primary", "email_opt_out")
    list_select_related = ("account",)
    list_filter = ("status", "source", "is_primary", "email_opt_out")
    search_fields = ("name", "email", "account__name")
    autocomplete_fields = ("account",)
    filter_horizontal = ("tags",)


@admin.register(Opportunity)
class OpportunityAdmin(TenantScopedAdmin):
    list_display = ("name", "account", "kind", "stage", "value", "currency", "close_date", "probability", "risk_level",
                    "owner")
    list_select_related = ("account", "owner")
    list_filter = ("kind", "stage", "risk_level")
    search_fields = ("name", "account__name")
    autocomplete_fields = ("account",)
    date_hierarchy = "close_date"


@admin.register(Tag)
class TagAdmin(TenantScopedAdmin):
    tenant_parent_field = None
    list_display = ("name", "color")
    search_fields = ("name",)


@admin.register(JourneyStage)
class JourneyStageAdmin(TenantScopedAdmin):
    tenant_parent_field = None
    write_roles = ADMINS
    list_display = ("order", "name", "description")
    list_display_links = ("name",)
    ordering = ("tenant", "order", "name")


@admin.register(JourneyHistory)
class JourneyHistoryAdmin(ReadOnlyAdmin):
    """Written only by moving an account (the account list's "Move to stage" actions or the API)."""

    write_roles = frozenset()
    deleted_with_parent = True
    list_display = ("account", "stage", "from_stage", "entered_at", "exited_at", "duration_days", "moved_by")
    list_select_related = ("account", "stage", "from_stage", "moved_by")
    list_filter = (("stage", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("account__name",)
