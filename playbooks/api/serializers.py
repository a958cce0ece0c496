"""Serializers of the playbook API (request shapes for the schema; executions)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from automation.api.serializers.rules import TriggerTypeField
from automation.api.serializers.runs import shown_deliveries
from automation.delivery_outcomes import DELIVERY_FAILED
from csplatform.api import TenantModelSerializer, closed
from csplatform.openapi import NOT_ONLY_SPACES

from ..models import PlaybookExecution, PlaybookType
from ..services import MAX_COOLDOWN_MINUTES


@closed
class TriggerSettingsRequest(serializers.Serializer):
    """Seed 000's body: thresholds of one type plus ``auto_trigger_enabled``; keys left out keep their value."""

    playbook_type = serializers.ChoiceField(choices=PlaybookType.choices)
    triggers = serializers.DictField()


@closed
class TriggerTestRequest(serializers.Serializer):
    playbook_type = serializers.ChoiceField(choices=PlaybookType.choices)
    triggers = serializers.DictField(required=False)


class PlaybookExecutionSerializer(TenantModelSerializer):
    account_name = serializers.CharField(source="account.name", read_only=True)
    playbook_type = serializers.ChoiceField(choices=PlaybookType.choices, allow_blank=True, read_only=True,
                                            help_text="The trigger setting that fired; blank for SuccessPlay runs.")

    class Meta:
        model = PlaybookExecution
        fields = [
            "id", "trigger", "playbook_type", "account", "account_name", "reason", "reasons", "metrics", "status",
            "source", "started_by", "started_at", "finished_at", "outcome", "created_at", "updated_at",
        ]
        read_only_fields = [
            "id", "trigger", "playbook_type", "account", "account_name", "reason", "reasons", "metrics", "source",
            "started_by", "started_at", "finished_at", "created_at", "updated_at",
        ]


EXECUTION_STATUSES = [*PlaybookExecution.Status.choices, (DELIVERY_FAILED, "Delivery failed")]


class SuccessPlayExecutionSerializer(PlaybookExecutionSerializer):
    """An execution with its SuccessPlay, who started it ("automation" or the user's email) and the engine Run.
    A completed play whose run wrote a message that died reads ``delivery_failed`` (see ``delivery``)."""

    status = serializers.ChoiceField(choices=EXECUTION_STATUSES, required=False, help_text=(
        "delivery_failed (read only): the play's actions ran but a message they wrote is dead; a re-queued "
        "message that gets through makes it completed again."))
    playbook_name = serializers.CharField(source="playbook.name", read_only=True, default=None, allow_null=True,
                                          help_text="Null for an execution that no SuccessPlay started.")
    started_by_label = serializers.CharField(read_only=True)
    delivery = serializers.SerializerMethodField(help_text=(
        "How many of the run's outbox messages are queued, retrying, delivered and dead; null when it wrote none."))

    class Meta(PlaybookExecutionSerializer.Meta):
        fields = [*PlaybookExecutionSerializer.Meta.fields, "playbook", "playbook_name", "started_by_label", "run",
                  "forced", "delivery"]
        read_only_fields = [*PlaybookExecutionSerializer.Meta.read_only_fields, "playbook", "playbook_name",
                            "started_by_label", "run", "forced", "delivery"]

    @staticmethod
    def run_id_of(execution):
        return execution.run_id

    def validate_status(self, value):
        if value == DELIVERY_FAILED:
            raise serializers.ValidationError("delivery_failed is what delivery says, not a status to set.")
        return value

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField(), allow_null=True))
    def get_delivery(self, execution):
        if execution.run_id is None:
            return None
        return shown_deliveries(self, execution.tenant_id, execution.run_id).by_run.get(execution.run_id)

    def to_representation(self, execution):
        data = super().to_representation(execution)
        if data.get("delivery") and data["delivery"].get("dead") and \
                execution.status == PlaybookExecution.Status.COMPLETED:
            data["status"] = DELIVERY_FAILED
        return data


@closed
class PlaybookSerializer(serializers.Serializer):
    """A SuccessPlay. Shapes are checked here; trigger, conditions and actions are validated (and
    normalised) by the automation engine when the play is saved (400 naming the field)."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    is_active = serializers.BooleanField(required=False, default=False)
    trigger_type = TriggerTypeField()
    trigger_config = serializers.DictField(required=False, default=dict)
    conditions = serializers.JSONField(required=False, default=dict)
    webhook_url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    actions = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    cooldown_minutes = serializers.IntegerField(required=False, default=60, min_value=0, max_value=MAX_COOLDOWN_MINUTES)
    workflow = serializers.IntegerField(source="workflow_id", read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["unknown field"] for key in unknown})
        return super().to_internal_value(data)


class PlaybookTriggerRequest(serializers.Serializer):
    """``POST /api/playbooks/{id}/trigger``: run the play for one account now."""

    @staticmethod
    def openapi_request_constraints(partial: bool) -> dict:
        # forcing a play past its cooldown takes a reason
        return {"additionalProperties": False, "anyOf": [
            {"properties": {"force": {"not": {"enum": [True]}}}},
            {"required": ["reason"], "properties": {"reason": {"pattern": NOT_ONLY_SPACES}}}]}

    account_id = serializers.UUIDField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    force = serializers.BooleanField(required=False, default=False)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["unknown field; expected account_id, reason, force"]
                                                   for key in unknown})
        return super().to_internal_value(data)

    def validate(self, attrs):
        if attrs.get("force") and not attrs.get("reason", "").strip():
            raise serializers.ValidationError({"reason": ["is required to force a play past its cooldown"]})
        return attrs
