"""The rule APIs: seed 001's ``/api/admin/automation`` and seed 003's ``/api/event-triggers`` over the one
``Workflow`` model (the inbound webhook ``/api/hooks/<token>/`` is in ``webhooks``).

Tenant admins configure rules; practitioners may also test and execute them; every member reads. Editing
an active rule edits its draft (``/publish``, ``/draft``, ``/versions``: ``drafts``); rules another app
keeps (``automation.managed``) are read-only here.
"""

from __future__ import annotations

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.models import Role
from automation import running, services
from automation.models import Run, Workflow
from automation.delivery_outcomes import DELIVERY_FAILED, has_dead_message
from automation.selectors import automation_stats, backtest, runs_of, with_run_figures
from csplatform.api import TenantFilterSet, TenantModelViewSet
from csplatform.pagination import Pagination
from csplatform.permissions import ADMINS, MANAGERS, resolve_membership

from . import serializers as s
from .drafts import DraftActions, write_schemas
from .pages import SeedPagination, WorkflowPagination

# Seed 003 reports a successful execution as "completed" (and a waiting one as "pending").
RUN_STATUS_ALIASES = {"completed": Run.Status.SUCCESS, "pending": Run.Status.QUEUED}


class RuleFilter(TenantFilterSet):
    type = django_filters.CharFilter(field_name="trigger_type", help_text="Trigger type (seed 001's name).")
    is_active = django_filters.BooleanFilter(method="filter_is_active", help_text="Rules that fire (seed 003).")

    class Meta:
        model = Workflow
        fields = ["status", "enabled", "trigger_type", "model_type", "source"]

    def filter_is_active(self, queryset, name, value):
        live = {"status": Workflow.Status.ACTIVE, "enabled": True}
        return queryset.filter(**live) if value else queryset.exclude(**live)


class RunFilter(TenantFilterSet):
    status = django_filters.CharFilter(method="filter_status", help_text=(
        "queued, running, success (or completed: acted, and no message died), delivery_failed (acted, and a "
        "message died), failed, skipped"))

    class Meta:
        model = Run
        fields = ["status", "workflow", "account", "skip_reason", "manual"]

    def filter_status(self, queryset, name, value):
        value = RUN_STATUS_ALIASES.get(value, value)
        if value == DELIVERY_FAILED:  # what the runs read as (delivery_outcomes): a success with a dead message
            return queryset.filter(has_dead_message(), status=Run.Status.SUCCESS)
        if value not in Run.Status.values:
            known = ", ".join([*Run.Status.values, DELIVERY_FAILED])
            raise ValidationError({"status": [f"'{value}' is not one of {known}."]})
        if value == Run.Status.SUCCESS:
            return queryset.filter(~has_dead_message(), status=value)
        return queryset.filter(status=value)


class RuleViewSet(DraftActions, TenantModelViewSet):
    """What both rule APIs share: scoping, roles, run figures, drafts, saving through the service."""

    queryset = Workflow.objects.prefetch_related("scope_accounts")
    filterset_class = RuleFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at", "last_run_at", "run_count"]
    lookup_value_regex = "[0-9]+"
    write_roles = ADMINS
    action_roles = {"test": MANAGERS, "execute": MANAGERS}

    def get_queryset(self):
        # Meta.ordering does not survive the GROUP BY of the run figures: order explicitly for stable pages.
        return with_run_figures(super().get_queryset()).order_by("name", "id")

    def get_object(self):
        if self.action in ("retrieve", "update", "partial_update", "destroy"):
            return super().get_object()
        # On a rule's sub-resources (runs?status=skipped) the query string filters the runs, not the rule.
        rule = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        self.check_object_permissions(self.request, rule)
        return rule

    def get_serializer_context(self):
        context = super().get_serializer_context()
        # The webhook token is a secret: only tenant admins see it, and only on one rule at a time.
        if self.action in ("retrieve", "create", "update", "partial_update", "publish") \
                and self.request.user.is_authenticated:
            context["show_secret"] = resolve_membership(self.request).role == Role.TENANT_ADMIN
        return context

    def perform_create(self, serializer):
        rule = serializer.save()
        serializer.instance = self.get_queryset().get(pk=rule.pk)  # with its run figures

    def perform_update(self, serializer):
        rule = serializer.save()
        serializer.instance = self.get_queryset().get(pk=rule.pk)

    def perform_destroy(self, instance):
        services.workflow_delete(rule=instance, actor=self.request.user)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], url_path="rotate-webhook-token")
    def rotate_webhook_token(self, request, pk=None):
        """A new inbound webhook token (tenant admins); returned once, the old URL stops working."""
        token = services.workflow_rotate_webhook_token(rule=self.get_object(), actor=request.user)
        return Response({"webhook_token": token, "webhook_url": f"/api/hooks/{token}/"})

    @property
    def tenant(self):
        return resolve_membership(self.request).tenant

    def run_request(self, serializer_class, rule: Workflow | None = None, *, pick_first: bool = False):
        """The request body checked, and the rule, subject and account it names."""
        payload = serializer_class(data=self.request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        rule = rule or data["workflow_id"]
        subject, account = running.resolve_subject(
            rule, tenant=self.tenant, account=data.get("account_id"), entity_type=data.get("entity_type", ""),
            entity_id=data.get("entity_id"), body=data.get("payload"), pick_first=pick_first)
        return rule, subject, account, data

    def execute_rule(self, serializer_class, rule: Workflow | None = None) -> Response:
        rule, subject, account, data = self.run_request(serializer_class, rule)
        run = running.execute(rule, subject=subject, account=account, body=data.get("payload"), context=data["context"])
        return Response(s.RunSerializer(runs_of(self.tenant).get(pk=run.pk)).data, status=status.HTTP_201_CREATED)

    def filtered_runs(self, runs):
        filterset = RunFilter(self.request.query_params, queryset=runs, request=self.request)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        return filterset.qs

    def paged_runs(self, runs, paginator) -> Response:
        page = paginator.paginate_queryset(self.filtered_runs(runs), self.request, view=self)
        return paginator.get_paginated_response(s.RunSerializer(page, many=True).data)


RUN_STATUSES = [*Run.Status.values, DELIVERY_FAILED, *RUN_STATUS_ALIASES]
RUN_FILTERS = [
    OpenApiParameter("status", str, enum=RUN_STATUSES,
                     description="queued, running, success (or completed), delivery_failed, failed, skipped"),
    OpenApiParameter("workflow", int), OpenApiParameter("account", OpenApiTypes.UUID),
    OpenApiParameter("skip_reason", str, enum=Run.SkipReason.values), OpenApiParameter("manual", bool),
    OpenApiParameter("page", int), OpenApiParameter("limit", int),
]


@extend_schema_view(
    list=extend_schema(summary="List workflows (seed 001)", parameters=[
        OpenApiParameter("limit", int, description="Items per page (default 25).")]),
    create=extend_schema(summary="Create a workflow (seed 001's body)"),
    **write_schemas(s.WorkflowSerializer),
)
class WorkflowViewSet(RuleViewSet):
    """Seed 001's automation workflows."""

    serializer_class = s.WorkflowSerializer
    pagination_class = WorkflowPagination

    @extend_schema(request=s.TestRequestSerializer, responses=s.DryRunSerializer,
                   summary="Dry run: conditions and actions against an account, nothing kept")
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        rule, subject, account, data = self.run_request(s.TestRequestSerializer, self.get_object(), pick_first=True)
        result = running.dry_run(rule, subject=subject, account=account, body=data.get("payload"),
                                 sample_event=data.get("event"), context=data["context"])
        if data.get("backtest_days"):
            result["backtest"] = backtest(rule, data["backtest_days"])
        return Response(result)

    @extend_schema(responses=s.RunPageSerializer, parameters=RUN_FILTERS, summary="Runs of this workflow",
                   operation_id="admin_automation_workflow_runs")
    @action(detail=True, methods=["get"], url_path="runs")
    def workflow_runs(self, request, pk=None):
        return self.paged_runs(runs_of(self.tenant).filter(workflow=self.get_object()), SeedPagination("runs"))

    @extend_schema(responses=s.VersionPageSerializer, summary="Published versions of this workflow, newest first",
                   parameters=[OpenApiParameter("page", int), OpenApiParameter("limit", int)])
    @action(detail=True, methods=["get"], filter_backends=[])  # the rule list's filters are not the versions'
    def versions(self, request, pk=None):
        return self.paged_versions(self.get_object(), SeedPagination("versions"))

    @extend_schema(request=s.ExecuteSerializer, responses={201: s.RunSerializer}, summary="Run a workflow now")
    @action(detail=False, methods=["post"])
    def execute(self, request):
        return self.execute_rule(s.ExecuteSerializer)

    @extend_schema(responses=s.RunPageSerializer, parameters=RUN_FILTERS, summary="All runs of the tenant",
                   operation_id="admin_automation_runs_list")
    @action(detail=False, methods=["get"], url_path="runs")
    def all_runs(self, request):
        return self.paged_runs(runs_of(self.tenant), SeedPagination("runs"))

    @extend_schema(responses=s.StatsSerializer, summary="Automation statistics (last 14 days per day)")
    @action(detail=False, methods=["get"])
    def stats(self, request):
        return Response(automation_stats(self.tenant))


@extend_schema_view(
    list=extend_schema(summary="List event triggers (seed 003)"),
    create=extend_schema(summary="Create an event trigger (seed 003's body)"),
    **write_schemas(s.EventTriggerSerializer),
)
class EventTriggerViewSet(RuleViewSet):
    """Seed 003's event triggers: the same rules as ``/api/admin/automation``, in seed 003's shape."""

    serializer_class = s.EventTriggerSerializer
    pagination_class = Pagination
    openapi_noun = ("event trigger", "event triggers")  # the schema's summaries (csplatform.openapi)

    @extend_schema(request=s.RunRequestSerializer, responses={201: s.RunSerializer},
                   summary="Run this trigger now for an entity")
    @action(detail=True, methods=["post"])
    def execute(self, request, pk=None):
        return self.execute_rule(s.RunRequestSerializer, self.get_object())

    @extend_schema(responses=s.RunSerializer(many=True), summary="Executions (runs) of this trigger", parameters=[
        OpenApiParameter("status", str, enum=RUN_STATUSES,
                         description="queued, running, success (or completed), delivery_failed, failed, skipped"),
        OpenApiParameter("limit", int, description="Items per page (default 50)."),
        OpenApiParameter("page", int)])
    @action(detail=True, methods=["get"])
    def executions(self, request, pk=None):
        return self.paged_runs(runs_of(self.tenant).filter(workflow=self.get_object()), Pagination())

    @extend_schema(responses=s.WorkflowVersionSerializer(many=True), summary="Published versions of this trigger",
                   parameters=[OpenApiParameter("page", int), OpenApiParameter("limit", int)])
    @action(detail=True, methods=["get"], filter_backends=[])  # the rule list's filters are not the versions'
    def versions(self, request, pk=None):
        return self.paged_versions(self.get_object(), Pagination())
