"""The owner API of the CRM journeys (seed 002's paths under ``/api/v1/crm/``).

Tenant admins and practitioners only, for reads too (``read_roles``). Everything reads through the
tenant scoping helper (``TenantModelViewSet``); writes go through ``crm.services``.
"""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import APIView

from csplatform.api import TenantFilterSet, TenantModelViewSet
from csplatform.permissions import MANAGERS, resolve_membership

from .. import selectors, services
from ..discounts import RedeemError, discount_redeem
from ..models import CRMDiscountCode, CRMPlaybook, CRMPlaybookExecution, CRMStep, CRMStepExecution
from . import serializers as s


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class Gone(APIException):
    status_code = status.HTTP_410_GONE
    default_code = "expired"


class NotFound(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class OwnerOnly:
    """Seed 002's "owner API": tenant admins and practitioners read and write; others get a 403."""

    read_roles = MANAGERS
    write_roles = MANAGERS


class PlaybookViewSet(OwnerOnly, TenantModelViewSet):
    """The tenant's journeys with their steps (edit them in the admin)."""

    http_method_names = ["get", "head", "options"]
    queryset = CRMPlaybook.objects.prefetch_related(Prefetch("steps", queryset=CRMStep.objects.order_by("order")))
    serializer_class = s.CRMPlaybookSerializer
    filterset_fields = ["trigger_event", "active"]
    search_fields = ["name", "title"]
    ordering_fields = ["name", "created_at"]

    def get_queryset(self):
        services.crm_journeys_ensure(resolve_membership(self.request).tenant)
        return super().get_queryset()


class ExecutionFilter(TenantFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=CRMPlaybookExecution.Status.choices)
    playbook = django_filters.CharFilter(method="filter_playbook", help_text="Journey id or name.")
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = CRMPlaybookExecution
        fields = ["status", "contact", "account", "source"]

    def filter_playbook(self, queryset, name, value):
        return queryset.filter(playbook__pk=int(value)) if value.isdigit() else queryset.filter(playbook__name=value)


class ExecutionViewSet(OwnerOnly, TenantModelViewSet):
    """Journey executions. ``POST`` starts one (contact + journey), ``DELETE`` cancels it (pending steps
    are cancelled; the row stays for the stats), ``POST {id}/convert`` records a conversion."""

    http_method_names = ["get", "post", "delete", "head", "options"]
    queryset = CRMPlaybookExecution.objects.select_related("playbook", "contact", "account").prefetch_related(
        Prefetch("step_executions", queryset=CRMStepExecution.objects.select_related("discount_code")
                 .order_by("step_order")))
    serializer_class = s.CRMExecutionSerializer
    filterset_class = ExecutionFilter
    search_fields = ["contact__name", "contact__email", "account__name", "playbook__name"]
    ordering_fields = ["started_at", "next_step_at", "converted_at", "conversion_value"]

    @extend_schema(request=s.CRMExecutionStartSerializer, responses={
        201: s.CRMExecutionSerializer,
        409: OpenApiResponse(description="The journey refuses the contact now (reason: already in it, re-entry "
                                         "cooldown, ...).")})
    def create(self, request, *args, **kwargs):
        payload = s.CRMExecutionStartSerializer(data=request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        tenant = resolve_membership(request).tenant
        data = payload.validated_data
        playbook = services.playbook_get(tenant, data["playbook"])
        if playbook is None:
            return Response({"playbook": [f"Journey '{data['playbook']}' does not exist."]},
                            status=status.HTTP_400_BAD_REQUEST)
        try:
            execution = services.start_journey(data["contact"], playbook, data.get("context") or {},
                                               source=CRMPlaybookExecution.Source.API, started_by=request.user)
        except services.JourneyRefused as refused:
            if refused.reason in ("inactive", "no_steps", "not_found", "wrong_tenant"):
                return Response({"playbook": [refused.message]}, status=status.HTTP_400_BAD_REQUEST)
            body = {"detail": refused.message, "reason": refused.reason}
            if refused.execution is not None:
                body["execution_id"] = refused.execution.pk
            return Response(body, status=status.HTTP_409_CONFLICT)
        execution = self.get_queryset().get(pk=execution.pk)
        return Response(s.CRMExecutionSerializer(execution).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: s.CRMExecutionSerializer, 409: OpenApiResponse(
        description="The execution cannot be cancelled in its state.")}, summary="Cancel a CRM journey execution")
    def destroy(self, request, *args, **kwargs):
        execution = self.get_object()
        try:
            services.execution_cancel(execution=execution, reason=f"cancelled by {request.user.email or request.user}")
        except services.ConversionError as exc:
            raise Conflict(str(exc)) from None
        return Response(s.CRMExecutionSerializer(self.get_queryset().get(pk=execution.pk)).data)

    @extend_schema(request=s.CRMConvertSerializer, responses={200: s.CRMExecutionSerializer, 409: OpenApiResponse(
        description="The execution cannot convert in its state (cancelled, already converted).")})
    @action(detail=True, methods=["post"])
    def convert(self, request, pk=None):
        execution = self.get_object()
        payload = s.CRMConvertSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            services.execution_convert(execution=execution, value=payload.validated_data.get("value"),
                                       reason=f"marked converted by {request.user.email or request.user}")
        except services.ConversionError as exc:
            raise Conflict(str(exc)) from None
        return Response(s.CRMExecutionSerializer(self.get_queryset().get(pk=execution.pk)).data)


class DiscountCodeFilter(TenantFilterSet):
    state = django_filters.ChoiceFilter(choices=[("active", "active"), ("used", "used"), ("expired", "expired")],
                                        method="filter_state")

    class Meta:
        model = CRMDiscountCode
        fields = ["contact", "execution", "percent"]

    def filter_state(self, queryset, name, value):
        now = timezone.now()
        if value == "used":
            return queryset.filter(used_at__isnull=False)
        if value == "expired":
            return queryset.filter(used_at__isnull=True, expires_at__lte=now)
        return queryset.filter(used_at__isnull=True, expires_at__gt=now)


class DiscountCodeViewSet(OwnerOnly, TenantModelViewSet):
    """Issued discount codes; ``POST redeem`` validates a code and marks it used, once."""

    http_method_names = ["get", "post", "head", "options"]
    queryset = CRMDiscountCode.objects.select_related("contact")
    serializer_class = s.CRMDiscountCodeSerializer
    filterset_class = DiscountCodeFilter
    search_fields = ["code", "contact__name", "contact__email"]
    ordering_fields = ["created_at", "expires_at", "used_at"]

    @extend_schema(exclude=True)  # a 405: not an operation of the API
    def create(self, request, *args, **kwargs):
        return Response({"detail": "Codes are issued by journey steps; use POST redeem to use one."},
                        status=status.HTTP_405_METHOD_NOT_ALLOWED)

    @extend_schema(request=s.CRMRedeemSerializer, responses={
        200: s.CRMDiscountCodeSerializer, 404: OpenApiResponse(description="No such code in this tenant."),
        409: OpenApiResponse(description="The code was redeemed already."),
        410: OpenApiResponse(description="The code has expired.")})
    @action(detail=False, methods=["post"])
    def redeem(self, request):
        payload = s.CRMRedeemSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            code = discount_redeem(tenant=resolve_membership(request).tenant, code=data["code"],
                                   value=data.get("value"), convert=data["convert"])
        except RedeemError as exc:
            error = {"not_found": NotFound, "used": Conflict, "expired": Gone}[exc.reason]
            raise error(exc.message, code=exc.reason) from None
        return Response(s.CRMDiscountCodeSerializer(code).data)


class StatsView(OwnerOnly, APIView):
    """Per journey: started, active, completed, converted, conversion rate, average conversion value,
    revenue recovered (``?started_after=`` / ``?started_before=`` narrow by start time)."""

    @extend_schema(parameters=[s.CRMStatsQuerySerializer], responses={200: dict})
    def get(self, request):
        query = s.CRMStatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        tenant = resolve_membership(request).tenant
        return Response(selectors.journey_stats(tenant, **query.validated_data))
