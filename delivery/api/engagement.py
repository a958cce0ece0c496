"""Email engagement APIs (docs/delivery.md "Email engagement").

* ``/api/email-events/``: opens, clicks, bounces and complaints of the tenant's emails (read-only, everyone).
* ``/api/suppressions/``: addresses the tenant no longer emails; tenant admins delete one to allow it again.
* ``/api/email-feedback/``: the tenant's inbound URLs for bounces and complaints and its Mailgun signing key
  (write-only); ``POST /api/email-feedback/rotate`` replaces the URL token (tenant admins only).
* ``POST /api/email-feedback/hooks/<token>/`` (generic JSON) and ``…/<token>/mailgun/`` (Mailgun events): the
  provider's reports; no login, the token (and for Mailgun the signature) is the credential.
"""

from __future__ import annotations

import hashlib

import django_filters
from django.conf import settings
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from csplatform import json_input
from accounts.audit import audit_record, audit_snapshot
from csplatform.api import IntegerFilter, TenantFilterSet, TenantModelViewSet, TextOnlyField
from csplatform.permissions import ADMINS, resolve_membership
from csplatform.tenancy import tenant_context

from .. import feedback
from ..models import EmailEvent, EmailFeedbackEndpoint, Suppression, new_feedback_token


# --- events and suppressions ---------------------------------------------------------------------

class EmailEventFilter(TenantFilterSet):
    message = IntegerFilter(field_name="message_id", help_text="Id of the outbox message.")
    contact = IntegerFilter(field_name="contact_id", help_text="Id of the contact.")
    email = django_filters.CharFilter(field_name="email", lookup_expr="iexact")

    class Meta:
        model = EmailEvent
        fields = ["kind", "message", "contact", "email"]


class EmailEventSerializer(serializers.ModelSerializer):
    message = serializers.IntegerField(source="message_id", read_only=True, allow_null=True)
    contact = serializers.IntegerField(source="contact_id", read_only=True, allow_null=True)

    class Meta:
        model = EmailEvent
        fields = ["id", "kind", "message", "contact", "email", "url", "at", "meta"]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(summary="Email opens, clicks, bounces and complaints"))
class EmailEventViewSet(TenantModelViewSet):
    http_method_names = ["get", "head", "options"]
    queryset = EmailEvent.objects.all()
    serializer_class = EmailEventSerializer
    filterset_class = EmailEventFilter
    ordering_fields = ["at"]
    lookup_value_regex = "[0-9]+"


class SuppressionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Suppression
        fields = ["id", "email", "reason", "detail", "created_at"]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(summary="Suppressed addresses (hard bounces, complaints)"))
class SuppressionViewSet(TenantModelViewSet):
    """Everyone reads; tenant admins delete an entry to let the address be emailed again (audited)."""

    http_method_names = ["get", "delete", "head", "options"]
    queryset = Suppression.objects.all()
    serializer_class = SuppressionSerializer
    filterset_fields = ["reason"]
    search_fields = ["email"]
    ordering_fields = ["created_at", "email"]
    lookup_value_regex = "[0-9]+"
    write_roles = ADMINS

    def perform_destroy(self, instance):
        with transaction.atomic():
            audit_record(tenant=instance.tenant_id, actor=self.request.user, action="delete", obj=instance,
                         before=audit_snapshot(instance))
            instance.delete()


# --- the tenant's feedback endpoint --------------------------------------------------------------

class FeedbackEndpointSerializer(serializers.Serializer):
    generic_url = serializers.CharField(read_only=True, help_text="POST generic JSON bounce/complaint reports here.")
    mailgun_url = serializers.CharField(read_only=True, help_text="Mailgun's webhook URL (failed, complained).")
    mailgun_signing_key = TextOnlyField(write_only=True, required=False, allow_blank=True, max_length=200,
                                                help_text="Write-only: Mailgun's HTTP webhook signing key.")
    mailgun_signing_configured = serializers.BooleanField(read_only=True)

    def to_representation(self, endpoint):
        base = f"{settings.PUBLIC_BASE_URL.rstrip('/')}/api/email-feedback/hooks/{endpoint.token}/"
        return {"generic_url": base, "mailgun_url": f"{base}mailgun/",
                "mailgun_signing_configured": bool(endpoint.mailgun_signing_key)}


class FeedbackEndpointView(APIView):
    """Tenant admins: GET the URLs, PATCH the Mailgun signing key."""

    serializer_class = FeedbackEndpointSerializer
    read_roles = ADMINS
    write_roles = ADMINS

    def _endpoint(self, request):
        return feedback.feedback_endpoint_get(resolve_membership(request).tenant)

    @extend_schema(responses=FeedbackEndpointSerializer, summary="The tenant's bounce/complaint webhook URLs")
    def get(self, request):
        return Response(FeedbackEndpointSerializer(self._endpoint(request)).data)

    @extend_schema(request=FeedbackEndpointSerializer, responses=FeedbackEndpointSerializer,
                   summary="Set the Mailgun webhook signing key")
    def patch(self, request):
        endpoint = self._endpoint(request)
        body = FeedbackEndpointSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if "mailgun_signing_key" in body.validated_data:
            self._save(request, endpoint, mailgun_signing_key=body.validated_data["mailgun_signing_key"].strip())
        return Response(FeedbackEndpointSerializer(endpoint).data)

    @staticmethod
    def _save(request, endpoint: EmailFeedbackEndpoint, **changes) -> None:
        before = audit_snapshot(endpoint)  # token and key are masked in the audit trail
        with transaction.atomic():
            for name, value in changes.items():
                setattr(endpoint, name, value)
            endpoint.save()
            audit_record(tenant=endpoint.tenant_id, actor=request.user, action="update", obj=endpoint, before=before,
                         after=audit_snapshot(endpoint))


class FeedbackEndpointRotateView(FeedbackEndpointView):
    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses=FeedbackEndpointSerializer,
                   summary="Replace the URL token (the old URLs stop working at once)")
    def post(self, request):
        endpoint = self._endpoint(request)
        self._save(request, endpoint, token=new_feedback_token())
        return Response(FeedbackEndpointSerializer(endpoint).data)


# --- inbound reports ----------------------------------------------------------------------------

class FeedbackThrottle(SimpleRateThrottle):
    """Per token: one noisy provider account cannot starve the others."""

    scope = "email-feedback"

    def get_rate(self):
        return getattr(settings, "EMAIL_FEEDBACK_RATE", "1200/min")

    def get_cache_key(self, request, view):
        # Hashed: the token is whatever the caller put in the URL, and cache keys must stay plain ASCII.
        ident = hashlib.sha256(view.kwargs.get("token", "").encode("utf-8", "replace")).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": ident}


NOT_FOUND = {"detail": "No email feedback endpoint has this token."}


class InboundFeedbackView(APIView):
    """``POST /api/email-feedback/hooks/<token>/``: ``{"type": "bounce"|"complaint", "email", "bounce_type":
    "hard"|"soft", "message_id"?}``. The per-tenant token is the credential; an unknown one is a 404."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [FeedbackThrottle]
    openapi_raw_body = True  # the schema: a body is required (empty is not JSON), any media type (no 415)

    def report(self, endpoint: EmailFeedbackEndpoint, body, request):
        return feedback.parse_generic(body)

    @extend_schema(request=OpenApiTypes.OBJECT, auth=[], summary="Report a bounce or complaint",
                   responses={200: OpenApiTypes.OBJECT, 400: OpenApiResponse(description="Names the bad field."),
                              403: OpenApiResponse(description="Bad or stale signature (Mailgun)."),
                              404: OpenApiResponse(description="Unknown token.")})
    def post(self, request, token: str):
        endpoint = feedback.feedback_endpoint_by_token(token)
        if endpoint is None:
            return Response(NOT_FOUND, status=status.HTTP_404_NOT_FOUND)
        try:
            body = json_input.loads(request.body or b"")  # the raw body: providers do not always say it is JSON
        except json_input.BadJSON as exc:
            return Response({"body": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        except (ValueError, UnicodeDecodeError):
            return Response({"body": ["Not valid JSON."]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            report = self.report(endpoint, body, request)
        except feedback.InvalidSignature as exc:
            return Response({"signature": [str(exc)]}, status=status.HTTP_403_FORBIDDEN)
        except feedback.FeedbackError as exc:
            return Response({exc.field: [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        if report is None:
            return Response({"recorded": None, "suppressed": False})  # an event we do not track: acknowledged
        with tenant_context(endpoint.tenant):
            event, suppression = feedback.email_feedback_record(tenant=endpoint.tenant, report=report)
        return Response({"recorded": event.kind, "event_id": event.pk, "message": event.message_id,
                         "suppressed": suppression is not None})


class MailgunFeedbackView(InboundFeedbackView):
    """``POST …/<token>/mailgun/``: Mailgun's event webhook (JSON), its signature checked with the tenant's
    signing key: a bad or stale signature is a 403 and records nothing."""

    def report(self, endpoint: EmailFeedbackEndpoint, body, request):
        feedback.mailgun_verify(endpoint.mailgun_signing_key, body)
        return feedback.parse_mailgun(body)
