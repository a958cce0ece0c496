"""REST endpoints of the customer data model. Every viewset reads through the tenant scoping helper."""

import django_filters
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from csplatform.api import IntegerFilter, TenantFilterSet, TenantModelViewSet
from csplatform.permissions import ADMINS, CONTRIBUTORS, resolve_membership

from .. import selectors, services, tokens
from ..models import (
    Account, ApiToken, AuditLog, Contact, Engagement, Goal, HealthScore, JourneyHistory, JourneyStage, Note, Opportunity,
    SupportTicket, SurveyResponse, Tag, Task, UsageMetric,
)
from . import serializers as s


class AccountFilter(TenantFilterSet):
    health_score_min = django_filters.NumberFilter(field_name="health_score", lookup_expr="gte")
    health_score_max = django_filters.NumberFilter(field_name="health_score", lookup_expr="lte")
    arr_min = django_filters.NumberFilter(field_name="arr", lookup_expr="gte")
    arr_max = django_filters.NumberFilter(field_name="arr", lookup_expr="lte")
    renewal_before = django_filters.DateFilter(field_name="renewal_date", lookup_expr="lte")
    renewal_after = django_filters.DateFilter(field_name="renewal_date", lookup_expr="gte")
    stage = django_filters.CharFilter(field_name="current_stage__name", lookup_expr="iexact")
    tag = django_filters.CharFilter(field_name="tags__name", lookup_expr="iexact")
    top_level = django_filters.BooleanFilter(field_name="parent", lookup_expr="isnull")

    class Meta:
        model = Account
        fields = ["status", "industry", "size", "risk_level", "parent", "owner"]


class AccountViewSet(TenantModelViewSet):
    """Customer accounts. ``health_trend`` is the change of the health score over the last 30 days."""

    queryset = Account.objects.select_related("owner", "current_stage").prefetch_related(
        Prefetch("tags", to_attr=s.ACCOUNT_TAGS_ATTR))
    serializer_class = s.AccountSerializer
    filterset_class = AccountFilter
    search_fields = ["name", "industry"]
    ordering_fields = ["name", "arr", "health_score", "renewal_date", "created_at", "updated_at", "health_trend"]

    def get_queryset(self):
        return selectors.accounts_with_trend(super().get_queryset())

    def filter_queryset(self, queryset):
        # One account without query parameters: the filters, search and ordering change nothing, and building
        # the filter form is a sixth of a detail read. With parameters they still apply (a 404 if it fails them).
        if self.detail and not self.request.query_params:
            return queryset
        return super().filter_queryset(queryset)

    def perform_create(self, serializer):
        account = Account(tenant=resolve_membership(self.request).tenant)
        serializer.instance = services.account_save(account=account, changes=serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.account_save(account=serializer.instance, changes=serializer.validated_data)
        # The tags read before the change are stale now (DRF forgets ``prefetch_related`` caches, not ``to_attr``).
        serializer.instance.__dict__.pop(s.ACCOUNT_TAGS_ATTR, None)

    @extend_schema(request=s.MoveStageSerializer,
                   responses={201: s.JourneyHistorySerializer, 200: OpenApiResponse(
                       s.JourneyHistorySerializer, description="Already in that stage: the open stay, unchanged.")})
    @action(detail=True, methods=["post"], url_path="move-stage")
    def move_stage(self, request, pk=None):
        """Move the account to another journey stage; the open stay is closed with its duration."""
        account = self.get_object()
        payload = s.MoveStageSerializer(data=request.data, context={"tenant": account.tenant})
        payload.is_valid(raise_exception=True)
        open_stay = JourneyHistory.objects.for_tenant(account.tenant_id).filter(
            account=account, exited_at__isnull=True).values_list("pk", flat=True).first()
        history = services.journey_move_to_stage(
            account=account, stage=payload.validated_data["stage"], moved_by=request.user,
            reason=payload.validated_data["reason"],
        )
        # moving to the stage the account is already in returns the open stay unchanged
        moved = history.pk != open_stay
        return Response(s.JourneyHistorySerializer(history).data,
                        status=status.HTTP_201_CREATED if moved else status.HTTP_200_OK)

    @extend_schema(responses=s.JourneyHistorySerializer(many=True))
    @action(detail=True, methods=["get"], url_path="journey-history", pagination_class=None, filter_backends=[])
    def journey_history(self, request, pk=None):
        rows = JourneyHistory.objects.for_tenant(request.tenant).filter(account=self.get_object())
        return Response(s.JourneyHistorySerializer(rows.select_related("stage", "from_stage"), many=True).data)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def rollup(self, request, pk=None):
        """ARR-weighted health of this account and every account below it."""
        return Response(selectors.account_health_rollup(self.get_object()))


class ContactViewSet(TenantModelViewSet):
    queryset = Contact.objects.prefetch_related("tags")
    serializer_class = s.ContactSerializer
    filterset_fields = ["account", "is_primary", "email_opt_out", "source", "status"]
    search_fields = ["name", "email", "role"]
    ordering_fields = ["name", "created_at"]


class OpportunityFilter(TenantFilterSet):
    value_min = django_filters.NumberFilter(field_name="value", lookup_expr="gte")
    value_max = django_filters.NumberFilter(field_name="value", lookup_expr="lte")
    close_before = django_filters.DateFilter(field_name="close_date", lookup_expr="lte")
    close_after = django_filters.DateFilter(field_name="close_date", lookup_expr="gte")
    open = django_filters.BooleanFilter(method="filter_open", label="Not won or lost")

    class Meta:
        model = Opportunity
        fields = ["account", "kind", "stage", "owner", "currency", "risk_level"]

    def filter_open(self, queryset, name, value):
        closed = {"stage__in": Opportunity.CLOSED_STAGES}
        return queryset.exclude(**closed) if value else queryset.filter(**closed)


class OpportunityViewSet(TenantModelViewSet):
    """Renewals, expansions and new business per account (seed 003's deals)."""

    queryset = Opportunity.objects.select_related("account", "owner")
    serializer_class = s.OpportunitySerializer
    filterset_class = OpportunityFilter
    search_fields = ["name", "account__name"]
    ordering_fields = ["close_date", "value", "probability", "name", "created_at", "updated_at",
                       "last_activity_date"]


class TagViewSet(TenantModelViewSet):
    queryset = Tag.objects.all()
    serializer_class = s.TagSerializer
    search_fields = ["name"]


class JourneyStageViewSet(TenantModelViewSet):
    """The tenant's journey stages, in order. Only tenant admins change them."""

    queryset = JourneyStage.objects.all()
    serializer_class = s.JourneyStageSerializer
    write_roles = ADMINS
    ordering_fields = ["order", "name"]


class JourneyHistoryViewSet(TenantModelViewSet):
    """Read-only: history is written by moving an account (``/api/accounts/{id}/move-stage/``)."""

    http_method_names = ["get", "head", "options"]
    queryset = JourneyHistory.objects.select_related("stage", "from_stage")
    serializer_class = s.JourneyHistorySerializer
    filterset_fields = ["account", "stage"]
    ordering_fields = ["entered_at", "exited_at", "duration"]


class HealthScoreViewSet(TenantModelViewSet):
    """Posting a score records a new one: ``overall_score`` and ``risk_level`` are computed from the
    components with the tenant's weights, and the account's previous score becomes ``previous_score``."""

    http_method_names = ["get", "post", "delete", "head", "options"]
    queryset = HealthScore.objects.select_related("account")
    serializer_class = s.HealthScoreSerializer
    filterset_fields = ["account", "risk_level"]
    ordering_fields = ["calculated_at", "overall_score"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        account = data.pop("account")
        serializer.instance = services.health_score_record(
            account=account, components=data, calculated_at=data.get("calculated_at")
        )

    def perform_destroy(self, instance):
        services.health_score_delete(score=instance)


class UsageMetricViewSet(TenantModelViewSet):
    queryset = UsageMetric.objects.all()
    serializer_class = s.UsageMetricSerializer
    filterset_fields = {"account": ["exact"], "date": ["exact", "gte", "lte"]}
    ordering_fields = ["date"]


class SurveyResponseViewSet(TenantModelViewSet):
    queryset = SurveyResponse.objects.all()
    serializer_class = s.SurveyResponseSerializer
    filterset_fields = {"account": ["exact"], "kind": ["exact"], "responded_at": ["gte", "lte"]}
    ordering_fields = ["responded_at", "score"]


class SupportTicketViewSet(TenantModelViewSet):
    queryset = SupportTicket.objects.all()
    serializer_class = s.SupportTicketSerializer
    filterset_fields = ["account", "status", "priority"]
    search_fields = ["subject"]
    ordering_fields = ["opened_at", "priority"]


class EngagementViewSet(TenantModelViewSet):
    queryset = Engagement.objects.all()
    serializer_class = s.EngagementSerializer
    create_roles = CONTRIBUTORS
    filterset_fields = ["account", "kind", "outcome"]
    ordering_fields = ["occurred_at"]


class GoalViewSet(TenantModelViewSet):
    queryset = Goal.objects.all()
    serializer_class = s.GoalSerializer
    filterset_fields = ["account", "status", "goal_type"]
    ordering_fields = ["target_date", "created_at"]

    def perform_create(self, serializer):
        goal = Goal(tenant=resolve_membership(self.request).tenant)
        serializer.instance = services.goal_save(goal=goal, changes=serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.goal_save(goal=serializer.instance, changes=serializer.validated_data)


class TaskViewSet(TenantModelViewSet):
    queryset = Task.objects.all()
    serializer_class = s.TaskSerializer
    create_roles = CONTRIBUTORS
    filterset_fields = ["account", "status", "priority", "assignee"]
    search_fields = ["title"]
    ordering_fields = ["due_date", "priority", "created_at"]

    def perform_create(self, serializer):
        serializer.save(tenant=resolve_membership(self.request).tenant, created_by=self.request.user)


class NoteViewSet(TenantModelViewSet):
    queryset = Note.objects.select_related("author")
    serializer_class = s.NoteSerializer
    create_roles = CONTRIBUTORS
    filterset_fields = ["account", "pinned"]
    search_fields = ["body"]
    ordering_fields = ["created_at"]

    def perform_create(self, serializer):
        serializer.save(tenant=resolve_membership(self.request).tenant, author=self.request.user)


class TenantSettingsView(viewsets.ViewSet):
    """The current tenant's settings: health score weights and risk bands. Tenant admins change them."""

    write_roles = ADMINS
    serializer_class = s.TenantSettingsSerializer

    @extend_schema(responses=s.TenantSettingsSerializer)
    def current(self, request):
        return Response(s.TenantSettingsSerializer(resolve_membership(request).tenant).data)

    @extend_schema(request=s.TenantSettingsSerializer, responses=s.TenantSettingsSerializer)
    def partial_update_current(self, request):
        tenant = resolve_membership(request).tenant
        serializer = s.TenantSettingsSerializer(tenant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        tenant = services.tenant_update_settings(tenant=tenant, changes=serializer.validated_data, actor=request.user)
        return Response(s.TenantSettingsSerializer(tenant).data)


class AuditLogFilter(TenantFilterSet):
    actor = IntegerFilter(field_name="actor_id", help_text="The id of the user who made the change.")
    actor_email = django_filters.CharFilter(field_name="actor_email", lookup_expr="iexact")
    date = django_filters.DateFilter(field_name="created_at", lookup_expr="date",
                                     help_text="Changes made on this day (UTC).")
    date_from = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte")
    date_to = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditLog
        fields = ["object_type", "object_id", "action"]


class AuditLogViewSet(TenantModelViewSet):
    """Who changed which configuration of the tenant, and when, with before/after values (secrets masked).
    Read-only, tenant admins only; filter by ``object_type``, ``object_id``, ``action``, ``actor`` (user id),
    ``actor_email``, ``date`` / ``date_from`` / ``date_to`` (days) or ``created_after`` / ``created_before``."""

    http_method_names = ["get", "head", "options"]
    queryset = AuditLog.objects.all()
    serializer_class = s.AuditLogSerializer
    filterset_class = AuditLogFilter
    read_roles = ADMINS
    write_roles = frozenset()
    search_fields = ["object_repr", "actor_email"]
    ordering_fields = ["created_at", "object_type", "action"]


# --- API tokens (docs/security.md "API tokens") ------------------------------------------------------

class LoginView(generics.GenericAPIView):
    """``POST username`` (the email) and ``password``: a new API token, its key shown this once, and when it
    expires. Throttled per client address (rate ``login``) against password guessing, and guarded per address
    and username (``csplatform.login_guard``). A stale ``Authorization`` header is ignored here, so a client
    whose token expired can log in again."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"
    serializer_class = s.LoginSerializer

    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, key = tokens.api_token_issue(user=serializer.validated_data["user"],
                                            name=serializer.validated_data.get("name") or "login")
        return Response(self.get_serializer({"token": key, "expires_at": token.expires_at}).data)


class RevokeTokenView(APIView):
    """Revoke the token this request is made with: it stops working at once (``POST /api/auth/token/`` issues a
    new one). ``all=true`` (query or body) revokes every token of the caller, e.g. after a leak."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=s.TokenRevokeSerializer, parameters=[OpenApiParameter("all", bool)],
                   responses={204: None, 400: OpenApiResponse(description="No token in the request and no `all`.")})
    def post(self, request):
        data = request.data or {}
        if "all" in request.query_params:
            data = {"all": request.query_params["all"]}
        serializer = s.TokenRevokeSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data["all"]:
            tokens.api_token_revoke_all(user=request.user)
        elif isinstance(request.auth, ApiToken):
            tokens.api_token_revoke(token=request.auth)
        else:  # signed in with a session: there is no "this token"
            return Response({"detail": "This request was not made with an API token; send all=true to revoke "
                                       "all of your tokens."}, status=status.HTTP_400_BAD_REQUEST)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The caller's API tokens (active, expired and revoked), never their keys. ``DELETE`` revokes one."""

    permission_classes = [IsAuthenticated]
    serializer_class = s.ApiTokenSerializer
    filter_backends = [OrderingFilter]
    ordering_fields = ["created_at", "expires_at", "last_used_at"]

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    def perform_destroy(self, instance):
        tokens.api_token_revoke(token=instance)
