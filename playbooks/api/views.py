"""Seed 000's trigger settings API and the executions list.

``/api/playbook-triggers`` (+ ``/test``, ``/evaluate-all``, ``/history``), with or without a trailing
slash, in the tenant the token and ``X-Customer-ID`` / ``X-Tenant-ID`` name. Tenant admins change
settings; admins and practitioners test and evaluate; every member reads.
"""

from __future__ import annotations

import django_filters
from django.db import transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Account
from automation.delivery_outcomes import DELIVERY_FAILED, has_dead_message
from csplatform.api import TenantFilterSet, TenantModelViewSet
from csplatform.query_params import given_once
from csplatform.permissions import ADMINS, MANAGERS, django_validation_error_detail, resolve_membership

from .. import services
from ..evaluators import SettingsError
from ..models import Playbook, PlaybookExecution, PlaybookTriggerEvaluation, PlaybookType
from . import serializers as s

_datetime = serializers.DateTimeField()


def _time(value):
    return _datetime.to_representation(value) if value is not None else None


def _error(errors: dict) -> Response:
    message = "; ".join(f"{key}: {' '.join(map(str, messages))}" for key, messages in errors.items())
    return Response({"status": "error", "message": message, "errors": errors}, status=status.HTTP_400_BAD_REQUEST)


def _body(request, allowed: tuple[str, ...], required: tuple[str, ...]) -> tuple[dict | None, Response | None]:
    data = request.data
    if not isinstance(data, dict):
        return None, _error({"non_field_errors": ["The body must be a JSON object."]})
    data = {key: data[key] for key in data}  # a QueryDict (form post) becomes a plain dict
    errors = {key: [f"unknown field; expected {', '.join(allowed)}"] for key in data if key not in allowed}
    errors.update({key: ["This field is required."] for key in required if key not in data})
    if "playbook_type" in data and data["playbook_type"] not in PlaybookType.values:
        errors["playbook_type"] = [f"unknown playbook type {data['playbook_type']!r}; known types: "
                                   f"{', '.join(PlaybookType.values)}"]
    if "triggers" in data and not isinstance(data["triggers"], dict):
        errors["triggers"] = ["must be an object of settings"]
    return (None, _error(errors)) if errors else (data, None)


def trigger_data(trigger) -> dict:
    return {
        "trigger_id": trigger.pk,
        "playbook_type": trigger.playbook_type,
        "trigger_config": trigger.trigger_config,
        "auto_trigger_enabled": trigger.auto_trigger_enabled,
        "last_evaluated": _time(trigger.last_evaluated),
        "last_triggered": _time(trigger.last_triggered),
        "trigger_count": trigger.trigger_count,
    }


class PlaybookTriggersView(APIView):
    """GET: the tenant's five trigger settings. POST: save one type's settings (tenant admins)."""

    write_roles = ADMINS

    @extend_schema(responses={200: dict})
    def get(self, request):
        tenant = resolve_membership(request).tenant
        triggers = services.playbook_triggers_ensure(tenant)
        return Response({
            "status": "success",
            "customer_id": str(tenant.pk),
            "triggers": {playbook_type: trigger_data(t) for playbook_type, t in triggers.items()},
        })

    @extend_schema(request=s.TriggerSettingsRequest, responses={200: dict, 400: dict})
    def post(self, request):
        tenant = resolve_membership(request).tenant
        data, error = _body(request, ("playbook_type", "triggers"), ("playbook_type", "triggers"))
        if error:
            return error
        try:
            trigger = services.playbook_trigger_save(tenant=tenant, playbook_type=data["playbook_type"],
                                                     changes=data["triggers"], actor=request.user)
        except SettingsError as exc:
            return _error(exc.errors)
        return Response({
            "status": "success",
            "message": f"{trigger.playbook_type} trigger settings saved successfully",
            "playbook_type": trigger.playbook_type,
            "triggers": {**trigger.trigger_config, "auto_trigger_enabled": trigger.auto_trigger_enabled},
        })


class PlaybookTriggerTestView(APIView):
    """Evaluate a type's saved settings, overridden by ``triggers``, without saving or counting."""

    write_roles = MANAGERS
    throttle_scope = "evaluation"  # evaluations are the expensive calls (API_THROTTLE_EVALUATION)

    @extend_schema(request=s.TriggerTestRequest, responses={200: dict, 400: dict})
    def post(self, request):
        tenant = resolve_membership(request).tenant
        data, error = _body(request, ("playbook_type", "triggers"), ("playbook_type",))
        if error:
            return error
        try:
            result = services.playbook_trigger_test(tenant=tenant, playbook_type=data["playbook_type"],
                                                    changes=data.get("triggers") or {})
        except SettingsError as exc:
            return _error(exc.errors)
        return Response({
            "status": "success",
            "playbook_type": data["playbook_type"],
            "message": result["message"],
            "triggered": result["triggered"],
            "trigger_details": result["details"],
            "affected_accounts": result["affected_accounts"],
        })


class PlaybookTriggerEvaluateAllView(APIView):
    """Evaluate every enabled trigger now: counters, history and executions are written."""

    write_roles = MANAGERS
    throttle_scope = "evaluation"

    @extend_schema(request=None, responses={200: dict, 400: OpenApiResponse(description="A body was sent: "
                                                                                  "evaluate-all takes none.")})
    def post(self, request):
        membership = resolve_membership(request)
        if isinstance(request.data, dict) and request.data:
            return _error({key: ["unknown field; evaluate-all takes no body"] for key in request.data})
        outcome = services.playbook_triggers_evaluate_all(
            tenant=membership.tenant, source=PlaybookExecution.Source.API, user=request.user)
        return Response({
            "status": "success",
            "customer_id": str(membership.tenant.pk),
            "evaluation_time": _time(outcome["evaluation_time"]),
            "results": outcome["results"],
            "total_triggers_evaluated": outcome["total_triggers_evaluated"],
            "total_triggered": outcome["total_triggered"],
        })


def _recent_evaluations(tenant, trigger_ids, limit: int = 10) -> dict:
    """The latest ``limit`` evaluations of each trigger, ``{trigger_id: [evaluation, ...]}`` (one query)."""
    rows = (
        PlaybookTriggerEvaluation.objects.for_tenant(tenant).filter(trigger_id__in=trigger_ids)
        .annotate(_rank=Window(RowNumber(), partition_by=[F("trigger_id")],
                               order_by=[F("evaluated_at").desc(), F("id").desc()]))
        .filter(_rank__lte=limit).order_by("trigger_id", "-evaluated_at", "-id")
    )
    found: dict = {}
    for row in rows:
        found.setdefault(row.trigger_id, []).append(row)
    return found


class PlaybookTriggerHistoryView(APIView):
    """Counters and timestamps of the tenant's triggers (``?playbook_type=`` for one) and their
    latest evaluations (``?limit=``, default 10, at most 100)."""

    @extend_schema(parameters=[
        OpenApiParameter("playbook_type", str, enum=PlaybookType.values),
        OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100},
                         description="Latest evaluations per trigger (default 10)."),
    ], responses={200: dict, 400: dict})
    def get(self, request):
        tenant = resolve_membership(request).tenant
        given_once(request.query_params, "playbook_type", "limit")
        playbook_type = request.query_params.get("playbook_type")
        errors = {}
        if playbook_type is not None and playbook_type not in PlaybookType.values:
            errors["playbook_type"] = [f"unknown playbook type {playbook_type!r}; known types: "
                                       f"{', '.join(PlaybookType.values)}"]
        limit = request.query_params.get("limit", "10")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            errors["limit"] = ["must be a whole number between 1 and 100"]
        if errors:
            return _error(errors)
        triggers = services.playbook_triggers_ensure(tenant)
        chosen = [t for t in triggers.values() if playbook_type in (None, t.playbook_type)]
        evaluations = _recent_evaluations(tenant, [t.pk for t in chosen], int(limit))
        history = []
        for trigger in chosen:
            history.append({
                "trigger_id": trigger.pk,
                "playbook_type": trigger.playbook_type,
                "auto_trigger_enabled": trigger.auto_trigger_enabled,
                "last_evaluated": _time(trigger.last_evaluated),
                "last_triggered": _time(trigger.last_triggered),
                "trigger_count": trigger.trigger_count,
                "created_at": _time(trigger.created_at),
                "updated_at": _time(trigger.updated_at),
                "evaluations": [{
                    "evaluated_at": _time(e.evaluated_at),
                    "triggered": e.triggered,
                    "message": e.message,
                    "accounts_evaluated": e.accounts_evaluated,
                    "accounts_affected": e.accounts_affected,
                    "executions_created": e.executions_created,
                    "duration_ms": e.duration_ms,
                    "source": e.source,
                    "started_by": e.started_by_id,
                } for e in evaluations.get(trigger.pk, [])],
            })
        return Response({"status": "success", "customer_id": str(tenant.pk), "history": history})


class PlaybookExecutionFilter(TenantFilterSet):
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lte")
    open = django_filters.ChoiceFilter(method="filter_open", choices=[("true", "true"), ("false", "false")],
                                       help_text="true: triggered or in progress; false: finished.")
    status = django_filters.ChoiceFilter(method="filter_status", choices=s.EXECUTION_STATUSES, help_text=(
        "As the executions show it: completed leaves out those whose delivery failed (delivery_failed)."))

    class Meta:
        model = PlaybookExecution
        fields = ["playbook_type", "status", "source", "account", "trigger", "playbook"]

    def filter_status(self, queryset, name, value):
        dead = has_dead_message("run_id")
        if value == DELIVERY_FAILED:
            return queryset.filter(dead, status=PlaybookExecution.Status.COMPLETED)
        if value == PlaybookExecution.Status.COMPLETED:
            return queryset.filter(~dead, status=value)
        return queryset.filter(status=value)

    def filter_open(self, queryset, name, value):
        lookup = {"status__in": PlaybookExecution.OPEN_STATUSES}
        return queryset.filter(**lookup) if value == "true" else queryset.exclude(**lookup)


@extend_schema_view(partial_update=extend_schema(responses={200: s.SuccessPlayExecutionSerializer, 409: OpenApiResponse(
    description="The execution is finished: its status cannot change any more.")}))
class PlaybookExecutionViewSet(TenantModelViewSet):
    """Plays started for accounts (``/api/playbooks/executions``). Practitioners move an open one along
    (``status``, ``outcome``); finished executions are history."""

    http_method_names = ["get", "patch", "head", "options"]
    queryset = PlaybookExecution.objects.select_related("account", "trigger", "playbook", "started_by")
    serializer_class = s.SuccessPlayExecutionSerializer
    filterset_class = PlaybookExecutionFilter
    search_fields = ["account__name", "reason", "outcome"]
    ordering_fields = ["started_at", "finished_at", "status", "playbook_type"]

    def perform_update(self, serializer):
        with transaction.atomic():
            serializer.instance = services.playbook_execution_update(
                execution=serializer.instance, changes=serializer.validated_data)


class PlaybookViewSet(TenantModelViewSet):
    """SuccessPlays (seed 004), ``/api/playbooks/``: tenant admins create and change them; admins and
    practitioners trigger one for an account (``POST /api/playbooks/{id}/trigger``). Each play is an
    automation rule (``source=playbook``): firing, cooldown, runs and delivery are the engine's."""

    queryset = Playbook.objects.select_related("workflow")
    serializer_class = s.PlaybookSerializer
    openapi_noun = ("SuccessPlay", "SuccessPlays")  # the schema's summaries (csplatform.openapi)
    write_roles = ADMINS
    action_roles = {"trigger": MANAGERS}
    lookup_value_regex = r"\d+"  # never takes "executions" for an id
    filterset_fields = ["is_active", "trigger_type"]
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]

    def _save(self, playbook, data, status_code):
        try:
            playbook = services.playbook_save(playbook=playbook, data=data, actor=self.request.user)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(django_validation_error_detail(exc)) from None
        return Response(self.get_serializer(playbook).data, status=status_code)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = resolve_membership(request).tenant
        return self._save(Playbook(tenant=tenant), serializer.validated_data, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        playbook = self.get_object()
        serializer = self.get_serializer(playbook, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        return self._save(playbook, serializer.validated_data, status.HTTP_200_OK)

    def perform_destroy(self, instance):
        services.playbook_delete(playbook=instance, actor=self.request.user)

    @extend_schema(request=s.PlaybookTriggerRequest, responses={201: s.SuccessPlayExecutionSerializer,
                                                                 400: dict, 404: dict, 409: dict})
    @action(detail=True, methods=["post"], url_path="trigger")
    def trigger(self, request, pk=None):
        """Seed 004's ``trigger_playbook_manually``: run the play for ``account_id`` now. Inside the
        play's cooldown for that account it is a 409, unless ``force`` is true and a ``reason`` is given."""
        playbook = self.get_object()
        body = s.PlaybookTriggerRequest(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        account = Account.objects.for_tenant(playbook.tenant_id).filter(pk=data["account_id"]).first()
        if account is None:
            raise serializers.ValidationError({"account_id": ["no such account in this tenant"]})
        try:
            execution = services.trigger_playbook_manually(playbook, account, data["reason"], user=request.user,
                                                           force=data["force"])
        except services.PlaybookCooldown as exc:
            return Response({"status": "error", "message": exc.message, "cooldown_until": _time(exc.until)},
                            status=status.HTTP_409_CONFLICT)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(django_validation_error_detail(exc)) from None
        execution = PlaybookExecution.objects.select_related("account", "playbook", "started_by").get(pk=execution.pk)
        return Response(s.SuccessPlayExecutionSerializer(execution, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)
