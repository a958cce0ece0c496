"""``POST /api/hooks/<token>/``: an outside system starts a webhook rule with a JSON body.

There is no login: the rule's ``webhook_token`` (random, 256 bits) is the secret. The request does not know
its tenant until the token is found, so that one lookup runs in a system context (logged); everything
after it runs in the rule's tenant. Unknown tokens and rules that are not live answer the same 404, so
the endpoint tells a guesser nothing.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from csplatform import json_input
from automation import running
from automation.selectors import live_webhook_rule
from csplatform.tenancy import tenant_context

from .serializers import WebhookAcceptedSerializer


class WebhookThrottle(SimpleRateThrottle):
    """Per token, so one noisy sender cannot starve the others (the rule's own rate_limiting still holds)."""

    scope = "automation-webhook"

    def get_rate(self):
        return getattr(settings, "AUTOMATION_WEBHOOK_RATE", "600/min")

    def get_cache_key(self, request, view):
        # A digest, not the token: the cache key stays printable whatever the path holds, and no secret sits in Redis.
        token = view.kwargs.get("token", "").encode("utf-8", "surrogatepass")
        return self.cache_format % {"scope": self.scope, "ident": hashlib.sha256(token).hexdigest()[:32]}


class InboundWebhookView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # for the schema only: the raw body is read, whatever its content type
    throttle_classes = [WebhookThrottle]
    openapi_raw_body = True  # the schema: a body is required (empty is not JSON), any media type (no 415)

    @extend_schema(
        request=OpenApiTypes.OBJECT, auth=[], summary="Inbound webhook: start the rule owning this token",
        responses={202: WebhookAcceptedSerializer,
                   400: OpenApiResponse(description="The body is not a JSON object."),
                   404: OpenApiResponse(description="No live webhook rule has this token.")})
    def post(self, request, token: str):
        rule = live_webhook_rule(token)
        if rule is None:
            return Response({"detail": "No live webhook rule has this token."}, status=status.HTTP_404_NOT_FOUND)
        try:
            # The raw body, not request.data: senders rarely set a JSON content type.
            body = json_input.loads(request.body or b"")
        except json_input.BadJSON as exc:
            return Response({"body": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        except (ValueError, UnicodeDecodeError):
            return Response({"body": ["Not valid JSON."]}, status=status.HTTP_400_BAD_REQUEST)
        if not isinstance(body, dict):
            return Response({"body": ["Must be a JSON object."]}, status=status.HTTP_400_BAD_REQUEST)
        with tenant_context(rule.tenant):
            run = running.receive(rule, body)
        return Response({"run_id": run.pk, "status": run.status, "skip_reason": run.skip_reason},
                        status=status.HTTP_202_ACCEPTED)
