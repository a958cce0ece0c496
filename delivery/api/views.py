"""The delivery APIs (docs/delivery.md "API"): the outbox, email templates, webhook secrets, integration credentials.

* ``/api/outbox/``: read-only history of what the platform sends; ``POST /api/outbox/{id}/requeue`` puts a
  dead or failed message back with the same message id (tenant admins and practitioners).
* ``/api/email-templates/``: CRUD through ``email_template_save`` (unknown variables are a 400 naming the
  field and the variable); ``POST /api/email-templates/{id}/preview`` renders one (everyone).
* ``/api/webhook-secrets/``: the signing secrets, never their values; ``POST`` rotates and returns the new
  secret once (tenant admins only).
* ``/api/integration-credentials/``: Slack, SMS, HubSpot, Salesforce tokens; the token is write-only
  (tenant admins only).

Secrets never leave in a response after they were created: outbox headers that look secret are masked,
webhook secrets are shown as a fingerprint, tokens not at all. Template, secret and credential changes are
written to the audit trail with the request's user.
"""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.audit import audit_record, audit_snapshot, mask_secrets
from accounts.models import Account, Contact
from csplatform.api import (IntegerFilter, JSONObjectField, TenantFilterSet, TenantModelSerializer, TenantModelViewSet,
                            TenantRelatedField, TextOnlyField)
from csplatform.permissions import ADMINS, MANAGERS, resolve_membership

from .. import email as email_service
from .. import policy
from ..ab_results import variant_results
from ..masking import masked_headers, masked_payload
from ..models import EmailTemplate, IntegrationCredential, Outbox, WebhookSecret
from ..previews import PreviewError, render_preview
from ..secrets import webhook_secret_rotate
from ..services import outbox_requeue
from ..tracking import engagement_annotations

def _tenant(request):
    return resolve_membership(request).tenant


# --- outbox --------------------------------------------------------------------------------------

class OutboxFilter(TenantFilterSet):
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte",
                                                     help_text="Created at or after (ISO 8601).")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte",
                                                      help_text="Created at or before (ISO 8601).")
    run = IntegerFilter(field_name="run_id", help_text="Id of the automation run that wrote it.")
    run_step = IntegerFilter(field_name="run_step_id", help_text="Id of the run step that wrote it.")

    class Meta:
        model = Outbox
        fields = ["status", "channel", "run", "run_step"]


class OutboxSerializer(serializers.ModelSerializer):
    # A plain string in the schema: crm's Channel choices share the name (an enum collision warning fails
    # ``check --deploy``); ENUM_NAME_OVERRIDES in settings would let this be an enum again.
    channel = serializers.CharField(read_only=True, help_text="webhook, email, sms, slack, hubspot or salesforce")
    headers = serializers.SerializerMethodField(help_text="Secret-looking header values are shown as ***.")
    payload = serializers.SerializerMethodField()
    run = serializers.IntegerField(source="run_id", read_only=True, allow_null=True,
                                   help_text="The automation run that wrote it.")
    run_step = serializers.IntegerField(source="run_step_id", read_only=True, allow_null=True,
                                        help_text="The run step that wrote it.")
    opens = serializers.IntegerField(read_only=True, default=0, help_text="Times the email's pixel was fetched.")
    first_opened_at = serializers.DateTimeField(read_only=True, default=None, allow_null=True)
    clicks = serializers.IntegerField(read_only=True, default=0, help_text="Tracked links followed.")

    class Meta:
        model = Outbox
        # Not the idempotency key: internal (searchable with ?search=), and the schema check treats "*key" as secret.
        fields = ["id", "message_id", "channel", "target", "method", "headers", "payload", "status",
                  "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "delivered_at",
                  "last_status_code", "last_response", "error", "run", "run_step", "opens", "first_opened_at", "clicks",
                  "created_at", "updated_at"]
        read_only_fields = fields

    def get_headers(self, obj) -> dict:
        return masked_headers(obj.headers)

    def get_payload(self, obj) -> dict:
        return masked_payload(obj.payload)


@extend_schema_view(list=extend_schema(summary="Outgoing messages (read-only)"),
                    create=extend_schema(exclude=True))  # a 405: not an operation of the API
class OutboxViewSet(TenantModelViewSet):
    """What the platform sent or will send; filter by ``status``, ``channel``, ``run``, ``run_step``,
    ``created_after`` / ``created_before``; search by target, message id or idempotency key."""

    http_method_names = ["get", "post", "head", "options"]
    queryset = Outbox.objects.all()
    serializer_class = OutboxSerializer
    filterset_class = OutboxFilter
    search_fields = ["target", "message_id", "idempotency_key"]
    ordering_fields = ["created_at", "next_attempt_at", "last_attempt_at", "attempts", "status"]
    lookup_value_regex = "[0-9]+"
    write_roles = MANAGERS  # the only write is requeue; creating is a 405
    action_roles = {"requeue": MANAGERS}

    def get_queryset(self):
        # An aggregate drops Meta.ordering: keep the newest-first order explicitly.
        return super().get_queryset().annotate(**engagement_annotations()).order_by(*Outbox._meta.ordering)

    def create(self, request, *args, **kwargs):
        return Response({"detail": "Messages are written by actions; this list is read-only."},
                        status=status.HTTP_405_METHOD_NOT_ALLOWED)

    @extend_schema(request=None, responses={200: OutboxSerializer, 409: OpenApiResponse(
                       description="The message is not dead or failed (status names its state).")},
                   summary="Re-queue a dead or failed message (fresh attempts, same message id)")
    @action(detail=True, methods=["post"])
    def requeue(self, request, pk=None):
        message = outbox_requeue(self.get_object())
        return Response(OutboxSerializer(message).data)


# --- email templates -----------------------------------------------------------------------------

class EmailTemplateSerializer(serializers.ModelSerializer):
    """Validated by ``email_template_save`` (in the view), which names the field and the variable. Seed 001's
    names ``html_content`` / ``text_content`` are accepted for ``html`` / ``text`` and read back too."""

    variables = serializers.JSONField(required=False, help_text='Declared custom variables, e.g. ["product_name"].')
    html_content = serializers.CharField(source="html", required=False, help_text="Seed 001's name for html.")
    text_content = serializers.CharField(source="text", required=False, allow_blank=True,
                                         help_text="Seed 001's name for text.")
    SEED_NAMES = {"html_content": "html", "text_content": "text"}

    class Meta:
        model = EmailTemplate
        fields = ["id", "name", "subject", "html", "text", "html_content", "text_content", "category", "variables",
                  "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"html": {"required": False}}  # or html_content: one of them, checked in validate

    def validate(self, attrs):
        if self.instance is None and not attrs.get("html"):
            raise ValidationError({"html": ["This field is required (or html_content)."]})
        return attrs

    @staticmethod
    def openapi_request_constraints(partial: bool) -> dict:
        # one name or the other for each, not both (equal values are let through); creating needs the html
        either = [{"not": {"required": [ours, seed]}} for seed, ours in EmailTemplateSerializer.SEED_NAMES.items()]
        return {"allOf": either}

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            for seed, ours in self.SEED_NAMES.items():
                if seed in data and ours in data and data[seed] != data[ours]:
                    raise ValidationError({seed: [f"Differs from {ours}; send one of them."]})
        return super().to_internal_value(data)


class NewEmailTemplateSerializer(EmailTemplateSerializer):
    """For the schema: creating a template takes its html (or seed 001's html_content)."""

    @staticmethod
    def openapi_request_constraints(partial: bool) -> dict:
        either = EmailTemplateSerializer.openapi_request_constraints(partial)["allOf"]
        return {"allOf": [*either, {"anyOf": [{"required": ["html"]}, {"required": ["html_content"]}]}]}


class PreviewSerializer(serializers.Serializer):
    account_id = TenantRelatedField(model=Account, required=False, allow_null=True)
    contact_id = TenantRelatedField(model=Contact, required=False, allow_null=True)
    custom = serializers.DictField(required=False, default=dict, help_text="Values of custom variables.")

    def validate(self, attrs):
        account, contact = attrs.get("account_id"), attrs.get("contact_id")
        if account is not None and contact is not None and contact.account_id != account.pk:
            raise ValidationError({"contact_id": ["This contact does not belong to the account."]})
        return attrs


class SignificanceSerializer(serializers.Serializer):
    against = serializers.CharField(help_text="The control variant.")
    metric = serializers.CharField(help_text="converted, or clicked when nothing converted yet.")
    z = serializers.FloatField()
    p_value = serializers.FloatField(help_text="Two-sided.")
    significant = serializers.BooleanField(help_text="p < 0.05 with at least 30 messages on each side.")


class VariantResultSerializer(serializers.Serializer):
    """One variant of ``GET /api/email-templates/{id}/results/`` (``delivery.ab_results``)."""

    variant = serializers.CharField()
    configured = serializers.BooleanField()
    weight = serializers.FloatField()
    share = serializers.FloatField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    dead = serializers.IntegerField()
    pending = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    converted = serializers.IntegerField()
    delivery_rate = serializers.FloatField(allow_null=True)
    opened_rate = serializers.FloatField(allow_null=True)
    clicked_rate = serializers.FloatField(allow_null=True)
    converted_rate = serializers.FloatField(allow_null=True)
    significance = SignificanceSerializer(allow_null=True)


class PreviewResultSerializer(serializers.Serializer):
    subject = serializers.CharField()
    text = serializers.CharField()
    html = serializers.CharField()
    sample = serializers.BooleanField(help_text="Rendered with sample data (no account or contact given).")


@extend_schema_view(list=extend_schema(summary="Email templates"),
                    create=extend_schema(request=NewEmailTemplateSerializer, responses={201: EmailTemplateSerializer}))
class EmailTemplateViewSet(TenantModelViewSet):
    """Tenant admins write; everyone reads and previews."""

    queryset = EmailTemplate.objects.all()
    serializer_class = EmailTemplateSerializer
    filterset_fields = ["category", "name"]
    search_fields = ["name", "subject", "category"]
    ordering_fields = ["name", "category", "created_at", "updated_at"]
    lookup_value_regex = "[0-9]+"
    write_roles = ADMINS
    action_roles = {"preview": ADMINS}  # what may be rendered is for those who may edit it (issue 15)

    def _save(self, serializer, template: EmailTemplate, action_name: str):
        before = audit_snapshot(template) if template.pk else None
        with transaction.atomic():
            email_service.email_template_save(template=template, data=dict(serializer.validated_data))
            audit_record(tenant=template.tenant_id, actor=self.request.user, action=action_name, obj=template,
                         before=before, after=audit_snapshot(template))
        serializer.instance = template

    def perform_create(self, serializer):
        self._save(serializer, EmailTemplate(tenant=_tenant(self.request)), "create")

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance, "update")

    def perform_destroy(self, instance):
        with transaction.atomic():
            audit_record(tenant=instance.tenant_id, actor=self.request.user, action="delete", obj=instance,
                         before=audit_snapshot(instance))
            instance.delete()

    @extend_schema(responses=VariantResultSerializer(many=True),
                   summary="A/B results per variant: sent, delivered, opened, clicked, converted, significance")
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])  # one row per variant
    def results(self, request, pk=None):
        return Response(VariantResultSerializer(variant_results(self.get_object()), many=True).data)

    @extend_schema(request=PreviewSerializer, responses=PreviewResultSerializer,
                   summary="Render the template for an account/contact, or with sample data")
    @action(detail=True, methods=["post"])
    def preview(self, request, pk=None):
        template = self.get_object()
        body = PreviewSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            return Response(render_preview(template, account=data.get("account_id"), contact=data.get("contact_id"),
                                           custom=data.get("custom")))
        except PreviewError as exc:
            raise ValidationError({"template": [str(exc)]}) from None


# --- webhook secrets -----------------------------------------------------------------------------

class WebhookSecretSerializer(serializers.ModelSerializer):
    fingerprint = serializers.SerializerMethodField(help_text="sha256 of the secret, first 12 hex digits.")
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = WebhookSecret
        fields = ["id", "fingerprint", "is_active", "created_at", "expires_at"]
        read_only_fields = fields

    def get_fingerprint(self, obj) -> str:
        return obj.fingerprint


class RotateSerializer(serializers.Serializer):
    overlap_hours = serializers.FloatField(default=24, min_value=0, max_value=24 * 7,
                                           help_text="How long the current secrets keep signing (0: stop now).")


class NewWebhookSecretSerializer(WebhookSecretSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown this once; store it now.")

    class Meta(WebhookSecretSerializer.Meta):
        fields = [*WebhookSecretSerializer.Meta.fields, "secret"]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(summary="Webhook signing secrets (never their values)"),
                    create=extend_schema(request=RotateSerializer, responses={201: NewWebhookSecretSerializer},
                                         summary="Rotate: a new secret, returned once"))
class WebhookSecretViewSet(TenantModelViewSet):
    """Tenant admins only. ``POST`` (or ``POST rotate``) adds a new secret and lets the current ones expire
    after ``overlap_hours``; the response carries the new secret, the only time it is shown."""

    http_method_names = ["get", "post", "head", "options"]
    queryset = WebhookSecret.objects.all()
    serializer_class = WebhookSecretSerializer
    ordering_fields = ["created_at", "expires_at"]
    lookup_value_regex = "[0-9]+"
    read_roles = ADMINS
    write_roles = ADMINS

    def get_queryset(self):
        return super().get_queryset().order_by("-created_at", "-id")

    def create(self, request, *args, **kwargs):
        body = RotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        new = webhook_secret_rotate(_tenant(request), overlap=timedelta(hours=body.validated_data["overlap_hours"]),
                                    actor=request.user)
        return Response(NewWebhookSecretSerializer(new).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RotateSerializer, responses={201: NewWebhookSecretSerializer},
                   summary="Rotate: a new secret, returned once (same as POST on the list)")
    @action(detail=False, methods=["post"])
    def rotate(self, request):
        return self.create(request)


# --- integration credentials ---------------------------------------------------------------------

class IntegrationCredentialSerializer(TenantModelSerializer):
    token = TextOnlyField(write_only=True, required=False, max_length=500,
                          help_text="Write-only: never returned. Required when creating; omit to keep it.")
    connected = serializers.SerializerMethodField(help_text="Whether a token is stored.")
    config = JSONObjectField(required=False, help_text='Settings of the integration, e.g. {"from": "+15550100"} '
                                                       'for SMS.')

    class Meta:
        model = IntegrationCredential
        fields = ["id", "integration", "base_url", "token", "connected", "config", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_connected(self, obj) -> bool:
        return bool(obj.token)

    def validate_base_url(self, value):
        if value:
            try:
                policy.check_static(value)
            except (policy.Refused, ValueError) as exc:
                raise ValidationError(str(exc)) from None
        return value

    def validate(self, attrs):
        if self.instance is None and not attrs.get("token"):
            raise ValidationError({"token": ["This field is required."]})
        return super().validate(attrs)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["config"] = mask_secrets(data.get("config") or {})
        return data


class NewIntegrationCredentialSerializer(IntegrationCredentialSerializer):
    """For the schema: creating a credential takes its token (an update may leave it out to keep it)."""

    token = TextOnlyField(write_only=True, max_length=500, help_text="Write-only: never returned.")


@extend_schema_view(list=extend_schema(summary="Integration credentials (tokens are write-only)"),
                    create=extend_schema(request=NewIntegrationCredentialSerializer,
                                         responses={201: IntegrationCredentialSerializer}))
class IntegrationCredentialViewSet(TenantModelViewSet):
    queryset = IntegrationCredential.objects.all()
    serializer_class = IntegrationCredentialSerializer
    filterset_fields = ["integration"]
    ordering_fields = ["integration", "created_at", "updated_at"]
    lookup_value_regex = "[0-9]+"
    read_roles = ADMINS
    write_roles = ADMINS

    def perform_create(self, serializer):
        with transaction.atomic():
            credential = serializer.save(tenant=_tenant(self.request))
            audit_record(tenant=credential.tenant_id, actor=self.request.user, action="create", obj=credential,
                         after=audit_snapshot(credential))

    def perform_update(self, serializer):
        before = audit_snapshot(serializer.instance)
        with transaction.atomic():
            credential = serializer.save()
            audit_record(tenant=credential.tenant_id, actor=self.request.user, action="update", obj=credential,
                         before=before, after=audit_snapshot(credential))

    def perform_destroy(self, instance):
        with transaction.atomic():
            audit_record(tenant=instance.tenant_id, actor=self.request.user, action="delete", obj=instance,
                         before=audit_snapshot(instance))
            instance.delete()
