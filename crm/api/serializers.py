"""Serializers of the CRM owner API (``/api/v1/crm/``).

Named ``CRM…`` so that their OpenAPI components (``CRMPlaybook``, ``CRMExecution``, …) never collide with other
apps' (playbooks has a ``Playbook`` too: drf-spectacular would document one under the other's name).
"""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import Contact
from csplatform.api import QueryParametersSerializer, TenantRelatedField

from ..models import CRMDiscountCode, CRMPlaybook, CRMPlaybookExecution, CRMStep, CRMStepExecution


class CRMStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = CRMStep
        fields = ["id", "order", "name", "delay_hours", "channel", "template", "subject", "discount_percent",
                  "conditions", "on_condition_fail", "branch_to", "quiet_hours", "variants"]


class CRMPlaybookSerializer(serializers.ModelSerializer):
    steps = CRMStepSerializer(many=True, read_only=True)

    class Meta:
        model = CRMPlaybook
        fields = ["id", "name", "title", "description", "trigger_event", "active", "reentry_cooldown_hours",
                  "max_entries", "workflow", "conversion_workflow", "steps", "created_at", "updated_at"]
        # The journey's managed automation rules (their runs say why each journey started or did not).
        read_only_fields = ["workflow", "conversion_workflow"]


class CRMStepExecutionSerializer(serializers.ModelSerializer):
    # Null for a step that issued no code (documented as nullable: schemathesis found it typed a plain string).
    discount_code = serializers.CharField(source="discount_code.code", read_only=True, default=None, allow_null=True)

    class Meta:
        model = CRMStepExecution
        fields = ["id", "step_order", "channel", "status", "variant", "recipient", "subject", "scheduled_for",
                  "sent_at", "outbox_message_id", "discount_code", "error", "created_at", "updated_at"]


class CRMExecutionSerializer(serializers.ModelSerializer):
    playbook_name = serializers.CharField(source="playbook.name", read_only=True)
    contact_name = serializers.CharField(source="contact.name", read_only=True)
    account_name = serializers.CharField(source="account.name", read_only=True)
    steps = CRMStepExecutionSerializer(source="step_executions", many=True, read_only=True)

    class Meta:
        model = CRMPlaybookExecution
        fields = ["id", "playbook", "playbook_name", "contact", "contact_name", "account", "account_name", "status",
                  "current_step", "next_step_at", "context", "source", "conversion_value", "converted_at",
                  "started_at", "completed_at", "cancelled_at", "error", "steps", "updated_at"]
        read_only_fields = fields


class CRMExecutionStartSerializer(serializers.Serializer):
    """``POST /api/v1/crm/executions``: put a contact in a journey (by journey name or id)."""

    @staticmethod
    def openapi_request_constraints(partial: bool) -> dict:
        return {"anyOf": [{"required": ["playbook"]}, {"required": ["journey"]}]}

    contact = TenantRelatedField(Contact)
    playbook = serializers.CharField(max_length=64, required=False, help_text="Journey name (or id).")
    journey = serializers.CharField(max_length=64, required=False, write_only=True, help_text="Alias of playbook.")
    context = serializers.JSONField(required=False, default=dict)

    def validate_context(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        return value

    def validate(self, attrs):
        name = attrs.get("playbook") or attrs.pop("journey", None)
        attrs.pop("journey", None)
        if not name:
            raise serializers.ValidationError({"playbook": ["This field is required."]})
        attrs["playbook"] = name
        return attrs


class CRMConvertSerializer(serializers.Serializer):
    value = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False, allow_null=True,
                                     help_text="Conversion value (e.g. the recovered payment).")


class CRMDiscountCodeSerializer(serializers.ModelSerializer):
    contact_name = serializers.CharField(source="contact.name", read_only=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = CRMDiscountCode
        fields = ["id", "code", "percent", "state", "contact", "contact_name", "execution", "expires_at", "used_at",
                  "created_at"]
        read_only_fields = fields

    def get_state(self, obj) -> str:
        return obj.state()


class CRMRedeemSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=40)
    value = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False, allow_null=True,
                                     help_text="Order value; recorded as the journey's conversion value.")
    convert = serializers.BooleanField(required=False, default=True,
                                       help_text="Convert the journey that issued the code (default true).")


class CRMStatsQuerySerializer(QueryParametersSerializer):
    started_after = serializers.DateTimeField(required=False)
    started_before = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        after, before = attrs.get("started_after"), attrs.get("started_before")
        if after and before and before <= after:
            raise serializers.ValidationError({"started_before": ["Must be after started_after."]})
        return attrs
