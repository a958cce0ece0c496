"""``/api/billing/``: billing events into the journeys (``crm.billing``).

* ``POST events/`` (tenant admins and practitioners, the members who run journeys): a generic billing event;
  ``GET events/`` lists the received ones (Stripe's too). A redelivered ``external_id`` answers 200 with
  ``duplicate: true`` and does nothing.
* ``GET|POST stripe/endpoint/`` (tenant admins only): the tenant's Stripe webhook URL; ``POST`` sets the
  signing secret (Stripe's ``whsec_...``, or a generated one) and returns it this once; it is never read back.
"""

from __future__ import annotations

import django_filters
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Account, Contact
from csplatform.api import TenantFilterSet, TenantModelViewSet, TenantRelatedField, TextOnlyField
from csplatform.permissions import ADMINS, MANAGERS, resolve_membership

from ..billing import Received, billing_event_receive, contact_by_email
from ..models import BillingEvent, StripeWebhookEndpoint
from ..stripe_webhooks import new_signing_secret, new_token

TYPES = {"payment_failed": BillingEvent.Type.PAYMENT_FAILED, "payment_succeeded": BillingEvent.Type.PAYMENT_SUCCEEDED,
         "trial_will_end": BillingEvent.Type.TRIAL_WILL_END, "trial_ending": BillingEvent.Type.TRIAL_WILL_END}


class BillingEventSerializer(serializers.ModelSerializer):
    duplicate = serializers.SerializerMethodField()

    class Meta:
        model = BillingEvent
        fields = ["id", "source", "external_id", "type", "source_type", "account", "contact", "customer_ref", "amount",
                  "currency", "occurred_at", "outcome", "event", "received_at", "duplicate"]
        read_only_fields = fields

    def get_duplicate(self, obj) -> bool:
        return bool(self.context.get("duplicate"))


class BillingEventInSerializer(serializers.Serializer):
    """A billing event: its type, whom it is about (a contact by id or email, or an account), its id."""

    type = serializers.ChoiceField(choices=sorted(TYPES), help_text="trial_ending is an alias of trial_will_end.")
    external_id = serializers.CharField(max_length=255, help_text="The billing system's event id: a second "
                                                                  "event with the same id is a duplicate.")
    contact_id = TenantRelatedField(Contact, required=False, help_text="The contact who pays (the rescue reaches them).")
    email = serializers.EmailField(required=False, help_text="Else the contact with this address.")
    account_id = TenantRelatedField(Account, required=False, help_text="Else the account (its primary contact).")
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False, allow_null=True)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, allow_blank=True,
                                      error_messages={"invalid": "Must be a three-letter ISO 4217 code."})
    occurred_at = serializers.DateTimeField(required=False, allow_null=True)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, help_text="Why it failed.")
    trial_ends_on = serializers.DateField(required=False, allow_null=True)

    @staticmethod
    def openapi_request_constraints(partial: bool) -> dict:
        return {"anyOf": [{"required": ["contact_id"]}, {"required": ["email"]}, {"required": ["account_id"]}]}

    def validate(self, attrs):
        contact, account = attrs.get("contact_id"), attrs.get("account_id")
        if contact is None and attrs.get("email"):
            contact = contact_by_email(resolve_membership(self.context["request"]).tenant, attrs["email"])
            if contact is None:
                raise serializers.ValidationError({"email": ["No contact has this address."]})
        if contact is None and account is None:
            raise serializers.ValidationError({"contact_id": ["Give contact_id, email or account_id."]})
        if contact is not None and account is not None and contact.account_id != account.pk:
            raise serializers.ValidationError({"account_id": ["The contact belongs to another account."]})
        attrs["contact"], attrs["account"] = contact, account or contact.account
        return attrs

    def received(self) -> Received:
        data = self.validated_data
        kind = TYPES[data["type"]]
        if kind == BillingEvent.Type.TRIAL_WILL_END:
            ends = data.get("trial_ends_on")
            context = {"trial_ends_on": ends.isoformat() if ends else None}
        else:
            context = {"invoice_id": data["external_id"], "reason": data.get("reason")}
        return Received(source=BillingEvent.Source.API, external_id=data["external_id"], type=kind,
                        source_type=data["type"], account=data["account"], contact=data["contact"],
                        amount=data.get("amount"), currency=data.get("currency") or "",
                        occurred_at=data.get("occurred_at"), context=context)


class BillingEventFilter(TenantFilterSet):
    received_after = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")

    class Meta:
        model = BillingEvent
        fields = ["source", "type", "outcome", "account", "contact", "external_id"]


class BillingEventViewSet(TenantModelViewSet):
    """Received billing events; ``POST`` reports one (it starts, converts or nudges a journey)."""

    read_roles = MANAGERS
    write_roles = MANAGERS
    http_method_names = ["get", "post", "head", "options"]
    queryset = BillingEvent.objects.all()
    serializer_class = BillingEventSerializer
    filterset_class = BillingEventFilter
    ordering_fields = ["received_at", "occurred_at", "amount"]

    @extend_schema(request=BillingEventInSerializer, responses={201: BillingEventSerializer,
                                                                200: BillingEventSerializer})
    def create(self, request, *args, **kwargs):
        payload = BillingEventInSerializer(data=request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        row, duplicate = billing_event_receive(resolve_membership(request).tenant, payload.received())
        return Response(BillingEventSerializer(row, context={"duplicate": duplicate}).data,
                        status=status.HTTP_200_OK if duplicate else status.HTTP_201_CREATED)


class StripeEndpointInSerializer(serializers.Serializer):
    signing_secret = TextOnlyField(max_length=255, required=False, help_text="Stripe's whsec_... secret of "
                                   "this endpoint; omitted: a new one is generated.")
    tolerance_seconds = serializers.IntegerField(min_value=1, max_value=86400, required=False)


def _endpoint_body(request, endpoint: StripeWebhookEndpoint | None, secret: str | None = None) -> dict:
    if endpoint is None:
        return {"configured": False}
    body = {"configured": True, "url": request.build_absolute_uri(f"/api/billing/stripe/{endpoint.token}/"),
            "tolerance_seconds": endpoint.tolerance_seconds, "updated_at": endpoint.updated_at}
    if secret is not None:
        body["signing_secret"] = secret  # only in the answer to the POST that set it
    return body


class StripeEndpointView(APIView):
    """The tenant's Stripe webhook endpoint (tenant admins): its URL; the secret is write-only."""

    read_roles = ADMINS
    write_roles = ADMINS

    @extend_schema(responses={200: dict})
    def get(self, request):
        tenant = resolve_membership(request).tenant
        return Response(_endpoint_body(request, StripeWebhookEndpoint.objects.for_tenant(tenant).first()))

    @extend_schema(request=StripeEndpointInSerializer, responses={200: dict})
    def post(self, request):
        payload = StripeEndpointInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        tenant = resolve_membership(request).tenant
        secret = payload.validated_data.get("signing_secret") or new_signing_secret()
        with transaction.atomic():
            endpoint = (StripeWebhookEndpoint.objects.for_tenant(tenant).select_for_update().first()
                        or StripeWebhookEndpoint(tenant=tenant, token=new_token()))
            endpoint.signing_secret = secret
            endpoint.tolerance_seconds = payload.validated_data.get("tolerance_seconds", endpoint.tolerance_seconds)
            endpoint.save()
        return Response(_endpoint_body(request, endpoint, secret))
