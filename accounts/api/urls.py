from django.urls import path, re_path
from rest_framework.routers import DefaultRouter

from csplatform.api import slash_optional

from . import views
from .health_import import HealthScoreBulkView

router = slash_optional(DefaultRouter())
router.register("accounts", views.AccountViewSet, basename="account")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("opportunities", views.OpportunityViewSet, basename="opportunity")
router.register("tags", views.TagViewSet, basename="tag")
router.register("journey-stages", views.JourneyStageViewSet, basename="journeystage")
router.register("journey-history", views.JourneyHistoryViewSet, basename="journeyhistory")
router.register("health-scores", views.HealthScoreViewSet, basename="healthscore")
router.register("usage-metrics", views.UsageMetricViewSet, basename="usagemetric")
router.register("surveys", views.SurveyResponseViewSet, basename="surveyresponse")
router.register("tickets", views.SupportTicketViewSet, basename="supportticket")
router.register("engagements", views.EngagementViewSet, basename="engagement")
router.register("goals", views.GoalViewSet, basename="goal")
router.register("tasks", views.TaskViewSet, basename="task")
router.register("notes", views.NoteViewSet, basename="note")
router.register("audit-log", views.AuditLogViewSet, basename="auditlog")

tenant_settings = views.TenantSettingsView.as_view({"get": "current", "patch": "partial_update_current"})

urlpatterns = [
    path("tenant/", tenant_settings, name="tenant-settings"),
    path("auth/token/revoke/", views.RevokeTokenView.as_view(), name="api-token-revoke"),
    path("auth/tokens/", views.ApiTokenViewSet.as_view({"get": "list"}), name="api-token-list"),
    path("auth/tokens/<int:pk>/", views.ApiTokenViewSet.as_view({"delete": "destroy"}), name="api-token-detail"),
    # Token login, throttled (scope "login").
    path("auth/token/", views.LoginView.as_view(), name="api-token-login"),
    # Before the router's, which would read "bulk" as a score's id.
    re_path(r"^health-scores/bulk/?$", HealthScoreBulkView.as_view(), name="healthscore-bulk"),
    *router.urls,
]
