"""The Django admin a customer success manager works in, scoped by tenant (``csplatform.admin_base``).

Writes with business rules go through ``accounts.services`` (account hierarchy and status, health
scores, journey moves, goals, tenant creation, memberships), exactly as the API does, so the domain
signals fire and computed fields stay right.
"""

from __future__ import annotations

import copy
import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from csplatform.admin_base import (
    LatestRowsFormSet, ReadOnlyAdmin, ReadOnlyInline, TenantScopedAdmin, TenantScopedForm, TenantScopedInline, adopt,
)
from csplatform.permissions import ADMINS, CONTRIBUTORS

from . import services
from .models import (
    COMPONENTS, Account, AuditLog, Contact, Engagement, Goal, HealthScore, JourneyHistory, JourneyStage, Membership,
    Note, RiskLevel, SupportTicket, SurveyResponse, Tag, Task, Tenant, UsageMetric,
)

admin.site.site_header = "Customer Success Platform"
admin.site.site_title = "Customer Success Platform"
admin.site.index_title = "Customer success"

RISK_COLOURS = {
    RiskLevel.HEALTHY: "#2e7d32",
    RiskLevel.MODERATE: "#b58900",
    RiskLevel.AT_RISK: "#e65100",
    RiskLevel.CRITICAL: "#c62828",
}
COMPONENT_LABELS = {
    "usage_score": "Usage",
    "engagement_score": "Engagement",
    "support_sentiment_score": "Support sentiment",
    "adoption_score": "Adoption",
}


def risk_badge(level: str, label: str):
    if not level:
        return "-"
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 8px;border-radius:9px;white-space:nowrap">{}</span>',
        RISK_COLOURS.get(level, "#666"), label,
    )


def breakdown_rows(score: HealthScore) -> list[tuple]:
    """(label, score, weight %, contribution) of each component the score was computed from."""
    rows = []
    for name in COMPONENTS:
        part = (score.breakdown or {}).get(name)
        if part:
            rows.append((COMPONENT_LABELS[name], part["score"], f"{part['weight'] * 100:.1f} %", part["contribution"]))
    return rows


def breakdown_table(score: HealthScore):
    rows = breakdown_rows(score)
    if not rows:
        return "-"
    missing = [COMPONENT_LABELS.get(n, n) for n in (score.breakdown or {}).get("missing", [])]
    html = format_html(
        "<table><thead><tr><th>Component</th><th>Score</th><th>Weight used</th><th>Contribution</th></tr></thead>"
        "<tbody>{}<tr><th>Overall</th><td></td><td></td><th>{}</th></tr></tbody></table>",
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        score.overall_score,
    )
    if missing:
        html += format_html(
            "<p>Not measured, left out (the other weights were scaled up): {}</p>", ", ".join(missing)
        )
    return html


def breakdown_summary(score: HealthScore) -> str:
    rows = breakdown_rows(score)
    return "; ".join(f"{label} {value} x {weight} = {contribution}" for label, value, weight, contribution in rows) or "-"


# --- tenants and memberships ---------------------------------------------------------------------

class TenantAdminForm(TenantScopedForm):
    def clean(self):
        cleaned = super().clean()
        candidate = copy.copy(self.instance)
        for name, value in cleaned.items():
            setattr(candidate, name, value)
        try:
            services.tenant_validate_health_settings(candidate)
        except ValidationError as exc:
            self.add_error(None, exc)
        return cleaned


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    """Superusers manage tenants; a tenant admin sees only their own tenant and changes only its
    health score weights and risk bands."""

    form = TenantAdminForm
    read_roles = write_roles = ADMINS
    add_roles = delete_roles = frozenset()  # superusers only
    tenant_parent_field = None
    list_display = (
        "name", "slug", "timezone", "weight_usage", "weight_engagement", "weight_support", "weight_adoption",
        "band_healthy", "band_moderate", "band_at_risk",
    )
    search_fields = ("name", "slug")
    fieldsets = (
        (None, {"fields": ("name", "slug", "timezone")}),
        ("Health score weights (%)", {
            "fields": ("weight_usage", "weight_engagement", "weight_support", "weight_adoption"),
            "description": "Relative weights; components missing from a score are left out and the rest scaled up.",
        }),
        ("Risk bands (lower bounds)", {"fields": ("band_healthy", "band_moderate", "band_at_risk")}),
    )

    def tenant_id_of(self, obj):
        return obj.pk

    def get_readonly_fields(self, request, obj=None):
        return () if request.user.is_superuser else ("name", "slug", "timezone")

    def save_model(self, request, obj, form, change):
        if change:
            # validates, saves and records the change in the audit trail
            services.tenant_update_settings(tenant=obj, actor=request.user)
            return
        # the service creates it with the default journey stages and records it in the audit trail
        settings = {f: getattr(obj, f) for f in services.TENANT_SETTINGS_FIELDS if f not in ("slug", "name")}
        adopt(obj, services.tenant_create(slug=obj.slug, name=obj.name, settings=settings, actor=request.user))


class MembershipAddForm(TenantScopedForm):
    """Grant a role by email: an unknown email becomes a new user (password optional); an existing
    user keeps their name and password, which a tenant admin must not change."""

    email = forms.EmailField()
    first_name = forms.CharField(required=False, help_text="Only used for a new user.")
    last_name = forms.CharField(required=False, help_text="Only used for a new user.")
    password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput,
        help_text="Only used for a new user; leave blank to have them set one through a password reset.",
    )

    class Meta:
        model = Membership
        fields = ("tenant", "role")

    def clean_password(self):
        password = self.cleaned_data.get("password")
        if password:
            password_validation.validate_password(password)
        return password


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    read_roles = write_roles = ADMINS
    tenant_parent_field = None
    list_display = ("user_email", "user_name", "tenant", "role", "created_at")
    list_filter = ("role", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("user", "tenant")
    search_fields = ("user__email", "user__first_name", "user__last_name")

    def get_base_form(self, request, obj=None):
        return MembershipAddForm if obj is None else self.form

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "email", "first_name", "last_name", "password", "role"]
        return ["user", "tenant", "role", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("user", "tenant", "created_at")

    @admin.display(description="Email", ordering="user__email")
    def user_email(self, obj):
        return obj.user.email

    @admin.display(description="Name")
    def user_name(self, obj):
        return obj.user.get_full_name()

    # Every grant, role change and revocation goes through the services, which write the audit trail.
    def save_model(self, request, obj, form, change):
        if change:
            services.membership_set_role(membership=obj, role=obj.role, actor=request.user)
            return
        data = form.cleaned_data
        new_user = not get_user_model().objects.filter(email__iexact=data["email"]).exists()
        membership = services.membership_grant(
            tenant=obj.tenant, email=data["email"], role=obj.role,
            password=(data["password"] or None) if new_user else None,
            first_name=data["first_name"] if new_user else "", last_name=data["last_name"] if new_user else "",
            actor=request.user,
        )
        adopt(obj, membership)

    def delete_model(self, request, obj):
        services.membership_revoke(membership=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("user", "tenant"):
            services.membership_revoke(membership=membership, actor=request.user)


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    """The audit trail: tenant admins read it; nobody adds, changes or deletes entries."""

    read_roles = ADMINS
    write_roles = add_roles = delete_roles = frozenset()
    tenant_parent_field = None
    list_display = ("created_at", "actor_email", "action", "object_type", "object_repr", "changed_fields")
    list_filter = ("action", "object_type", "created_at")
    search_fields = ("object_repr", "object_id", "actor_email")
    date_hierarchy = "created_at"
    fields = ("created_at", "actor", "actor_email", "action", "object_type", "object_id", "object_repr",
              "changes_table")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    @admin.display(description="Changed")
    def changed_fields(self, obj):
        return ", ".join(obj.changes or {}) or "-"

    @admin.display(description="Changes")
    def changes_table(self, obj):
        if not obj.changes:
            return "-"
        return format_html(
            "<table><thead><tr><th>Field</th><th>Before</th><th>After</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                             ((field, _shown(pair[0]), _shown(pair[1])) for field, pair in obj.changes.items())),
        )


def _shown(value) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- inlines of the account page -----------------------------------------------------------------

class ContactInline(TenantScopedInline):
    model = Contact
    fields = ("name", "email", "phone", "role", "is_primary", "email_opt_out")
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
    list_display = (
        "name", "parent", "health_score", "risk", "current_stage", "arr_column", "renewal_date", "owner", "status",
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
    inlines = (ContactInline, RecentHealthScoreInline, OpenTaskInline, NoteInline, JourneyHistoryInline)

    @admin.display(description="Risk", ordering="risk_level")
    def risk(self, obj):
        return risk_badge(obj.risk_level, obj.get_risk_level_display())

    @admin.display(description="ARR", ordering="arr")
    def arr_column(self, obj):
        return f"{obj.arr:,.0f}"

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
    list_display = ("name", "account", "email", "role", "is_primary", "email_opt_out")
    list_select_related = ("account",)
    list_filter = ("is_primary", "email_opt_out")
    search_fields = ("name", "email", "account__name")
    autocomplete_fields = ("account",)


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


# --- health --------------------------------------------------------------------------------------

class HealthScoreAddForm(TenantScopedForm):
    def clean(self):
        cleaned = super().clean()
        account = cleaned.get("account")
        if account is not None:
            # Same computation the service does on save, so a bad score is a form error.
            try:
                services.health_score_compute(tenant=account.tenant, components={c: cleaned.get(c) for c in COMPONENTS})
            except ValidationError as exc:
                self.add_error(None, exc)
        return cleaned


@admin.register(HealthScore)
class HealthScoreAdmin(TenantScopedAdmin):
    """Scores are history: added through the service (overall, previous and risk computed), never edited."""

    form = HealthScoreAddForm
    deleted_with_parent = True
    list_display = ("account", "overall_score", "risk", "previous_score", "change", "calculated_at", "components")
    list_select_related = ("account",)
    list_filter = ("risk_level", "calculated_at")
    search_fields = ("account__name",)
    autocomplete_fields = ("account",)
    date_hierarchy = "calculated_at"
    readonly_fields = ("overall_score", "risk", "previous_score", "breakdown_table", "created_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["account", *COMPONENTS, "calculated_at"]
        return ["account", "calculated_at", "overall_score", "risk", "previous_score", "breakdown_table",
                *COMPONENTS, "created_at"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    @admin.display(description="Risk", ordering="risk_level")
    def risk(self, obj):
        return risk_badge(obj.risk_level, obj.get_risk_level_display())

    @admin.display(description="Change")
    def change(self, obj):
        if obj.previous_score is None:
            return "-"
        return f"{obj.overall_score - obj.previous_score:+}"

    @admin.display(description="Components (score x weight = contribution)")
    def components(self, obj):
        return breakdown_summary(obj)

    @admin.display(description="Breakdown")
    def breakdown_table(self, obj):
        return breakdown_table(obj)

    def save_model(self, request, obj, form, change):
        score = services.health_score_record(
            account=obj.account, components={name: getattr(obj, name) for name in COMPONENTS},
            calculated_at=obj.calculated_at,
        )
        adopt(obj, score)


@admin.register(UsageMetric)
class UsageMetricAdmin(TenantScopedAdmin):
    list_display = ("account", "date", "active_users", "logins", "dau", "mau", "session_minutes")
    list_select_related = ("account",)
    list_filter = ("date",)
    search_fields = ("account__name",)
    autocomplete_fields = ("account",)
    date_hierarchy = "date"


@admin.register(SurveyResponse)
class SurveyResponseAdmin(TenantScopedAdmin):
    list_display = ("account", "kind", "score", "contact", "responded_at", "short_comment")
    list_select_related = ("account", "contact")
    list_filter = ("kind", "responded_at")
    search_fields = ("account__name", "comment")
    autocomplete_fields = ("account", "contact")

    @admin.display(description="Comment")
    def short_comment(self, obj):
        return Truncator(obj.comment).chars(60)


@admin.register(SupportTicket)
class SupportTicketAdmin(TenantScopedAdmin):
    list_display = ("subject", "account", "priority", "status", "opened_at", "first_response_at", "resolved_at", "csat")
    list_select_related = ("account",)
    list_filter = ("status", "priority", "opened_at")
    search_fields = ("subject", "account__name")
    autocomplete_fields = ("account", "contact")


@admin.register(Engagement)
class EngagementAdmin(TenantScopedAdmin):
    add_roles = CONTRIBUTORS
    list_display = ("kind", "account", "contact", "user", "outcome", "occurred_at")
    list_select_related = ("account", "contact", "user")
    list_filter = ("kind", "outcome", "occurred_at")
    search_fields = ("account__name", "summary")
    autocomplete_fields = ("account", "contact")

    def get_changeform_initial_data(self, request):
        return {"user": request.user.pk, **super().get_changeform_initial_data(request)}


@admin.register(Goal)
class GoalAdmin(TenantScopedAdmin):
    list_display = ("title", "account", "goal_type", "status", "target_date", "achieved_at")
    list_select_related = ("account",)
    list_filter = ("status", "goal_type")
    search_fields = ("title", "account__name")
    autocomplete_fields = ("account",)

    def save_model(self, request, obj, form, change):
        services.goal_save(goal=obj)  # stamps achieved_at and reports status changes


# --- work ----------------------------------------------------------------------------------------

@admin.register(Task)
class TaskAdmin(TenantScopedAdmin):
    add_roles = CONTRIBUTORS
    creator_field = "created_by"
    list_display = ("title", "account", "assignee", "due_date", "priority", "status", "source")
    list_select_related = ("account", "assignee")
    list_filter = ("status", "priority", "due_date")
    search_fields = ("title", "account__name")
    autocomplete_fields = ("account",)


@admin.register(Note)
class NoteAdmin(TenantScopedAdmin):
    add_roles = CONTRIBUTORS
    creator_field = "author"
    list_display = ("short_body", "account", "author", "pinned", "created_at")
    list_select_related = ("account", "author")
    list_filter = ("pinned", "created_at")
    search_fields = ("body", "account__name")
    autocomplete_fields = ("account",)

    @admin.display(description="Note")
    def short_body(self, obj):
        return Truncator(obj.body).chars(80)
