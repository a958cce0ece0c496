"""What both rule shapes share: ``RuleSerializer`` (common fields, run figures, drafts, the save path through
``automation.services.workflow_save`` with errors renamed to the client's words) and the retry settings."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Account
from automation import webhook_subject
from automation.conditions import ConditionError
from automation.definitions import apply_definition, draft_view
from automation.models import Workflow
from automation.selectors import rate
from automation.services import workflow_save
from automation.subjects import ALIASES, WATCHED
from automation.triggers import triggers
from csplatform.api import JSONObjectField, TenantRelatedField, closed, request_tenant
from csplatform.permissions import django_validation_error_detail

from .. import shapes

class TriggerTypeField(serializers.CharField):
    """A registered trigger type (``automation.triggers``); the schema lists them."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    @staticmethod
    def openapi_schema(direction: str) -> dict:
        return {"enum": triggers.keys()}


class ModelTypeField(serializers.CharField):
    """A model rules watch (``automation.subjects``): ``account``, ``contact``, ... (``App\\Models\\Contact`` and
    ``accounts.Contact`` are read too); blank for triggers that watch none. Reads back as the short name."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)

    def openapi_schema(self, direction: str) -> dict:
        return {"enum": [*([""] if self.allow_blank else []), *sorted({*WATCHED, *ALIASES})]}


@closed
class RetryConfigurationSerializer(serializers.Serializer):
    """Seed 003's retry settings (``max_retries`` is kept here too)."""

    max_retries = serializers.IntegerField(min_value=0, max_value=10, required=False)
    delay_minutes = serializers.IntegerField(min_value=0, max_value=7 * 24 * 60, required=False)
    backoff_multiplier = serializers.FloatField(min_value=1, max_value=10, required=False)
    max_delay_hours = serializers.FloatField(min_value=0, max_value=7 * 24, required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(self.fields))):
            expected = ", ".join(self.fields)
            raise serializers.ValidationError({unknown[0]: [f"Unknown setting; expected one of {expected}."]})
        return super().to_internal_value(data)


@extend_schema_field(RetryConfigurationSerializer)
class RetryConfigurationField(JSONObjectField):
    """An object (a 400 otherwise, before seed 003's max_retries is merged into it); its settings are checked in
    ``RuleSerializer.validate``, errors as dotted keys."""


def checked(serializer_class, data, name: str) -> dict:
    """``data`` validated by a nested serializer, its errors under dotted keys (``retry_configuration.x``)."""
    if not isinstance(data, dict):
        raise serializers.ValidationError({name: ["Must be an object."]})
    nested = serializer_class(data=data)
    if not nested.is_valid():
        raise serializers.ValidationError(shapes.flat_errors(nested.errors, name))
    return dict(nested.validated_data)


class RuleSerializer(serializers.ModelSerializer):
    """The rule fields common to both APIs, the run figures and the save path."""

    source_name = "workflow"  # which front door made the rule

    trigger_type = TriggerTypeField()
    model_type = ModelTypeField(required=False, allow_blank=True)
    scope_accounts = TenantRelatedField(Account, many=True, required=False)
    retry_configuration = RetryConfigurationField(required=False)
    delay_minutes = serializers.IntegerField(min_value=0, max_value=7 * 24 * 60, required=False)
    trigger_config = serializers.JSONField(required=False)
    rate_limiting = serializers.JSONField(required=False)
    run_count = serializers.IntegerField(read_only=True, default=0)
    success_rate = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField(help_text="Inbound webhook URL (webhook rules; tenant admins).")
    webhook_token = serializers.SerializerMethodField(help_text="The secret part of webhook_url.")
    version = serializers.IntegerField(read_only=True, help_text="Number of the live definition (see /versions).")
    has_draft = serializers.BooleanField(read_only=True, help_text="Edits are waiting to be published.")
    draft = serializers.SerializerMethodField(help_text=(
        "The pending edits of this live rule, as the whole rule in this API's shape (null: none). The live "
        "fields keep running until POST /{id}/publish; DELETE /{id}/draft drops them."))
    publish = serializers.BooleanField(write_only=True, required=False, help_text=(
        "With an edit of an active rule: publish it at once (the default through this API; send "
        '"draft": true to keep the edit as a draft instead).'))

    # Fields every shape has, after its own trigger/condition/action fields.
    common_fields = ["scope_all_accounts", "scope_accounts", "continue_on_error", "cooldown_minutes", "rate_limiting",
                     "allow_retries", "retry_configuration", "delay_minutes", "failure_threshold", "debug_mode",
                     "source", "last_run_at", "run_count", "success_rate", "webhook_url", "webhook_token",
                     "version", "has_draft", "draft", "draft_updated_at", "draft_by", "publish",
                     "created_at", "updated_at"]
    read_only = ["id", "source", "last_run_at", "created_at", "updated_at"]
    # What a rendered definition (a draft, a version) leaves out: switches, figures, secrets, bookkeeping.
    not_definition = {"id", "status", "enabled", "is_active", "source", "last_run_at", "run_count", "success_rate",
                      "webhook_url", "webhook_token", "version", "has_draft", "draft", "draft_updated_at",
                      "draft_by", "publish", "created_at", "updated_at"}

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_success_rate(self, rule) -> float | None:
        return rate(getattr(rule, "success_count", 0), getattr(rule, "failed_count", 0))

    def _shows_secret(self, rule) -> bool:
        return bool(self.context.get("show_secret")) and rule.trigger_type == "webhook"

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_webhook_url(self, rule) -> str | None:
        if not self._shows_secret(rule):
            return None
        # The route takes its trailing slash as optional, so reverse() leaves it out; show the usual form.
        path = reverse("automation-webhook", kwargs={"token": rule.webhook_token}).rstrip("/") + "/"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_webhook_token(self, rule) -> str | None:
        return rule.webhook_token if self._shows_secret(rule) else None

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": {},
                          "description": "The draft in this API's shape (the definition fields only)."})
    def get_draft(self, rule) -> dict | None:
        return self.render_definition(rule, rule.draft) if rule.draft is not None else None

    def render_definition(self, rule, definition: dict) -> dict:
        """A stored definition (a draft, a version) in this serializer's shape: the definition fields only."""
        view = apply_definition(rule, definition)
        data = type(self)(view, context=self.context).data
        shown = {name: data[name] for name in self.Meta.fields if name not in self.not_definition and name in data}
        # The copy's many-to-many reads the live scope; the definition has its own.
        shown["scope_accounts"] = view.draft_scope
        return shown

    # --- writing ---

    def current(self, name, default=None):
        """A value of the rule as it will be: from this request, else as stored (with its pending draft: an
        edit of a rule with a draft continues the draft)."""
        if name in getattr(self, "_attrs", {}):
            return self._attrs[name]
        if self.instance is None:
            return default
        if self.instance.draft is not None and name not in ("status", "enabled"):
            if getattr(self, "_draft_view", None) is None:
                self._draft_view = draft_view(self.instance)
            return getattr(self._draft_view, name, default)
        return getattr(self.instance, name, default)

    def to_internal_value(self, data):
        """``"draft": true`` in a write keeps an edit of an active rule as a draft; without it the edit applies
        at once, as the seeds' clients expect (``draft`` reads back as the pending draft)."""
        keep_draft = isinstance(data, dict) and data.get("draft") is True
        if isinstance(data, dict) and "draft" in data:  # a GET's draft (null or the pending draft) sent back
            data = {k: v for k, v in data.items() if k != "draft"}
        attrs = super().to_internal_value(data)
        # A switch alone (is_active, status, enabled) publishes nothing: a pending draft waits for its reviewer.
        switches = {"status", "enabled", "is_active", "publish"}
        attrs.setdefault("publish", not keep_draft and isinstance(data, dict) and bool(set(data) - switches))
        return attrs

    def validate(self, attrs):
        self._attrs = attrs
        attrs = self.shape(dict(attrs))
        if "retry_configuration" in attrs:
            attrs["retry_configuration"] = checked(RetryConfigurationSerializer, attrs["retry_configuration"],
                                                   "retry_configuration")
        self._check_webhook_conditions(attrs)
        return attrs

    def shape(self, attrs: dict) -> dict:
        """Seed-specific translation of ``attrs`` to workflow_save's data; sets ``self.renames``."""
        self.renames = []
        return attrs

    def definition_renames(self, definition: dict) -> list[tuple[str, str]]:
        """Error renames for a stored definition (publishing a draft): the service's names in this shape."""
        return []

    def _check_webhook_conditions(self, attrs):
        """A webhook rule's conditions read the JSON body, which the service cannot check against a model."""
        if self.current("trigger_type") != "webhook" or not {"conditions", "trigger_type"} & set(attrs):
            return
        try:
            webhook_subject.check_conditions(attrs.get("conditions", self.current("conditions")))
        except ConditionError as exc:
            key = f"conditions.{exc.field}"
            raise serializers.ValidationError(shapes.rename_errors({key: [exc.message]}, self.renames)) from None

    def create(self, validated_data):
        request = self.context.get("request")
        rule = Workflow(tenant=request_tenant(self.context), source=self.source_name,
                        created_by=request.user if request is not None else None)
        return self._save(rule, validated_data)

    def update(self, instance, validated_data):
        return self._save(instance, validated_data)

    def _save(self, rule: Workflow, data: dict) -> Workflow:
        try:
            request = self.context.get("request")
            return workflow_save(rule=rule, data=data, actor=request.user if request is not None else None)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                shapes.rename_errors(django_validation_error_detail(exc), self.renames)) from None
