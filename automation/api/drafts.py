"""Drafts, versions and kept rules on both rule APIs.

* ``POST /{id}/publish``: the rule's draft becomes its live definition (tenant admins); 409 ``draft`` when
  there is none (the rule's state refuses it, ``csplatform.conflicts``), 400 naming the field if the draft no
  longer validates (other rules, accounts may have changed since it was saved).
* ``DELETE /{id}/draft``: drop the draft (204, also when there was none: the state asked for holds).
* ``GET /{id}/versions``: the published definitions, newest first, each in the API's own shape.
* Rules another app keeps (``automation.managed``: a SuccessPlay's rule) answer every write here
  (PUT, PATCH, DELETE, publish, discard) with 409 and where to change them; reads, test, execute and runs
  work as for any rule. 409, not 400: the request is well formed, the rule's state (owned elsewhere) is
  what refuses it, as with deleting a row others still point at.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from automation import managed, services
from csplatform.conflicts import StateConflict
from csplatform.permissions import django_validation_error_detail
from automation.models import WorkflowVersion

from . import serializers as s
from . import shapes

MANAGED_WRITES = frozenset({"update", "partial_update", "destroy", "publish", "discard_draft"})
CONFLICT = OpenApiResponse(s.ConflictSerializer, description="Managed by another object (e.g. a SuccessPlay): "
                                                            "change it there (managed_by.endpoint).")


class ManagedRule(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "managed"

    def __init__(self, rule):
        # The body is built here and answered as is: APIException would turn managed_by's id into text.
        self.body = {"detail": managed.refusal(rule), "managed_by": managed.managed_by(rule)}
        super().__init__(self.body["detail"])


def write_schemas(serializer_class) -> dict:
    """``extend_schema_view`` entries of the writes, with their 409 (per API: the 200 is that API's shape)."""
    return {
        "update": extend_schema(responses={200: serializer_class, 409: CONFLICT}),
        "partial_update": extend_schema(responses={200: serializer_class, 409: CONFLICT}),
        "destroy": extend_schema(responses={204: None, 409: CONFLICT}),
        "publish": extend_schema(request=None, responses={
            200: serializer_class, 409: OpenApiResponse(description=(
                "No draft to publish (``draft`` names why), or the rule is managed by another object "
                "(``detail`` and ``managed_by``).")),
            400: OpenApiResponse(description="The draft no longer validates (names the field).")},
                                 summary="Publish the draft: it becomes the live definition (next version)"),
    }


class DraftActions:
    """Mixed into ``views.RuleViewSet`` (needs its ``get_object``, ``get_queryset`` and serializers)."""

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)  # roles first: a viewer gets 403, not 409
        if self.action in MANAGED_WRITES and managed.is_managed(obj):
            raise ManagedRule(obj)

    def handle_exception(self, exc):
        if isinstance(exc, ManagedRule):
            return Response(exc.body, status=exc.status_code)
        return super().handle_exception(exc)

    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        rule = self.get_object()
        serializer = self.get_serializer(rule)
        try:
            services.workflow_publish(rule=rule, actor=request.user)
        except StateConflict:
            raise  # no draft: a 409 (csplatform.api.exception_handler)
        except DjangoValidationError as exc:
            renames = serializer.definition_renames(rule.draft or {})
            raise ValidationError(shapes.rename_errors(django_validation_error_detail(exc), renames)) from None
        return Response(self.get_serializer(self.get_queryset().get(pk=rule.pk)).data)

    @extend_schema(request=None, responses={204: None, 409: CONFLICT}, summary="Discard the draft")
    @action(detail=True, methods=["delete"], url_path="draft")
    def discard_draft(self, request, pk=None):
        services.workflow_discard_draft(rule=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def paged_versions(self, rule, paginator) -> Response:
        versions = WorkflowVersion.objects.for_tenant(self.tenant).filter(workflow=rule).select_related("published_by")
        page = paginator.paginate_queryset(versions.order_by("-number"), self.request, view=self)
        renderer = self.get_serializer(rule)
        rows = [{"number": version.number, "live": version.number == rule.version,
                 "published_at": version.published_at, "published_by": version.published_by_id,
                 "published_by_email": version.published_by.email if version.published_by else "",
                 "definition": renderer.render_definition(rule, version.definition)} for version in page]
        return paginator.get_paginated_response(s.WorkflowVersionSerializer(rows, many=True).data)
