"""Health scores and the signals behind them: usage, surveys, tickets, engagements, goals."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.text import Truncator

from csplatform.admin_base import TenantScopedAdmin, TenantScopedForm, adopt
from csplatform.permissions import CONTRIBUTORS

from .. import services
from ..models import COMPONENTS, Engagement, Goal, HealthScore, SupportTicket, SurveyResponse, UsageMetric
from .display import breakdown_summary, breakdown_table, risk_badge

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

    # Deleting goes through the service too: the account mirrors its latest score (and rules see it change).
    def delete_model(self, request, obj):
        services.health_score_delete(score=obj)

    def delete_queryset(self, request, queryset):
        for score in queryset:
            services.health_score_delete(score=score)


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
