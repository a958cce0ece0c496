"""``POST /api/billing/stripe/<token>/``: the tenant's Stripe webhook (``crm.stripe_webhooks``).

No login: the URL token finds the tenant's endpoint (unknown tokens: 404) and the ``Stripe-Signature`` header,
checked against the endpoint's signing secret over the raw body, proves the sender. Everything after the
token lookup runs in the endpoint's tenant. Answers: 200 ``{"received": true, ...}`` (also for event types
that are ignored and for duplicates, ``duplicate: true``), 400 naming the header or field otherwise.
"""

from __future__ import annotations


from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from csplatform import json_input
from automation.api.webhooks import WebhookThrottle
from csplatform.tenancy import tenant_context

from ..billing import billing_event_receive
from ..stripe_webhooks import HEADER, TOKEN, BadEvent, endpoint_for_token, translate, verify


class StripeThrottle(WebhookThrottle):
    """Per endpoint token, like the inbound rule webhooks (Stripe sends bursts after an outage)."""

    scope = "billing-stripe"

    def get_rate(self):
        return getattr(settings, "BILLING_WEBHOOK_RATE", "600/min")

    def get_cache_key(self, request, view):
        token = view.kwargs.get("token", "")
        # Anything that cannot be a token shares one bucket (and never puts odd characters in a cache key).
        return self.cache_format % {"scope": self.scope, "ident": token if TOKEN.fullmatch(token) else "-"}


class StripeWebhookView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # for the schema only: the signature covers the raw body, which is read as is
    throttle_classes = [StripeThrottle]
    openapi_raw_body = True  # the schema: a body is required (empty is not JSON), any media type (no 415)

    @extend_schema(
        request=OpenApiTypes.OBJECT, auth=[], summary="Stripe webhook: billing events into the journeys",
        responses={200: OpenApiResponse(description="Received (or a duplicate, or a type that is ignored)."),
                   400: OpenApiResponse(description="Bad or stale Stripe-Signature, or not a Stripe event."),
                   404: OpenApiResponse(description="No Stripe endpoint has this token.")})
    def post(self, request, token: str):
        endpoint = endpoint_for_token(token)
        if endpoint is None:
            return Response({"detail": "No Stripe endpoint has this token."}, status=status.HTTP_404_NOT_FOUND)
        body = request.body
        try:
            verify(endpoint, request.headers.get(HEADER, ""), body)
            try:
                event = json_input.loads(body)
            except json_input.BadJSON as exc:
                raise BadEvent("body", str(exc)) from None
            except (ValueError, UnicodeDecodeError):
                raise BadEvent("body", "not valid JSON") from None
            if not isinstance(event, dict):
                raise BadEvent("body", "must be a JSON object")
            with tenant_context(endpoint.tenant):
                row, duplicate = billing_event_receive(endpoint.tenant, translate(endpoint.tenant, event))
        except BadEvent as bad:
            return Response({bad.field: [bad.message]}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"received": True, "duplicate": duplicate, "id": row.pk, "type": row.type,
                         "outcome": row.outcome, "event_id": row.event_id})
