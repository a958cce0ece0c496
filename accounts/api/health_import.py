"""``POST /api/health-scores/bulk/``: many health scores in one request (a nightly import), all or none.

Each row is recorded as ``POST /api/health-scores/`` records one (``accounts.health_import``, the bulk path of
``health_score_record``: same scoring, mirrors and events). The whole request is one transaction: any invalid row
is a 400 naming its index and field (``{"scores": {"3": {"usage_score": [...]}}}``) and nothing is recorded.
"""

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from csplatform.api import request_tenant
from csplatform.permissions import MANAGERS

from ..health_import import health_scores_import
from ..models import COMPONENTS, Account, HealthScore
from .serializers import CLOCK_SKEW, HealthScoreSerializer

MAX_ROWS = 1000  # one request stays well inside a web worker's timeout; a larger file: several requests


class HealthScoreRowSerializer(serializers.ModelSerializer):
    account = serializers.UUIDField(help_text="The account's id.")

    class Meta:
        model = HealthScore
        fields = ["account", *COMPONENTS]

    @staticmethod
    def openapi_request_constraints(partial: bool) -> dict:
        # At least one component, as for a single score (the tenant's weight of it must not be 0: no schema says so).
        return HealthScoreSerializer.openapi_request_constraints(partial)

    def validate(self, attrs):
        weights = request_tenant(self.context).health_weights
        if not any(attrs.get(name) is not None and weights[name] > 0 for name in COMPONENTS):
            raise ValidationError({"usage_score": "At least one component score with a non-zero weight is required."})
        return attrs


class HealthScoreBulkSerializer(serializers.Serializer):
    calculated_at = serializers.DateTimeField(
        required=False, help_text="When every score of the request was calculated (default: now); not in the future.")
    scores = serializers.ListField(child=HealthScoreRowSerializer(), min_length=1, max_length=MAX_ROWS,
                                   help_text=f"One score per row, at most {MAX_ROWS}; an account given twice gets "
                                             "two scores, the second following the first.")

    def validate_calculated_at(self, value):
        if value > timezone.now() + CLOCK_SKEW:
            raise ValidationError("A health score cannot be dated in the future.")
        return value

    def validate_scores(self, rows):
        wanted = {row["account"] for row in rows}
        found = set(Account.objects.for_tenant(request_tenant(self.context)).filter(pk__in=wanted)
                    .values_list("pk", flat=True))
        unknown = {index: {"account": [f'Invalid pk "{row["account"]}" - object does not exist.']}
                   for index, row in enumerate(rows) if row["account"] not in found}
        if unknown:
            raise ValidationError(unknown)
        return rows


class HealthScoreBulkResultSerializer(serializers.Serializer):
    recorded = serializers.IntegerField(help_text="How many scores were recorded (every row).")
    calculated_at = serializers.DateTimeField()


class HealthScoreBulkView(APIView):
    """Record a health score for each row (at most 1,000 a request), each as ``POST /api/health-scores/`` records
    one: the overall score and risk level from the tenant's weights, the account's score and risk level when it is
    the latest, the events rules listen to. All rows or none: a 400 names each invalid row's index and field."""

    write_roles = MANAGERS  # as for one score (csplatform.permissions.roles_allowed)
    serializer_class = HealthScoreBulkSerializer

    @extend_schema(request=HealthScoreBulkSerializer, responses={
        201: HealthScoreBulkResultSerializer,
        400: OpenApiResponse(description='Nothing recorded. Invalid rows by index, e.g. '
                                         '{"scores": {"3": {"usage_score": ["Ensure this value is less than or '
                                         'equal to 100."]}}}')})
    def post(self, request):
        tenant = request_tenant(request)
        payload = HealthScoreBulkSerializer(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        rows = payload.validated_data["scores"]
        at = payload.validated_data.get("calculated_at") or timezone.now()
        components = [{name: row.get(name) for name in COMPONENTS} for row in rows]
        result = health_scores_import(tenant=tenant, rows=[(row["account"], c) for row, c in zip(rows, components)],
                                      calculated_at=at)
        if result.errors:  # changed since validated (an account deleted meanwhile): the request rolls back
            index = {str(row["account"]): i for i, row in reversed(list(enumerate(rows)))}
            raise ValidationError({"scores": {index.get(account, account): errors
                                              for account, errors in result.errors.items()}})
        return Response(HealthScoreBulkResultSerializer({"recorded": result.recorded, "calculated_at": at}).data,
                        status=status.HTTP_201_CREATED)
