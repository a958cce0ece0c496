"""Seed 003's event trigger (``/api/event-triggers``): ``trigger_conditions`` with ``logic``/``group``, flat
actions in ``action_configuration``, ``is_active`` and ``max_retries``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from automation.models import Workflow

from .. import shapes
from .rules import RuleSerializer, checked


class ActionConfigurationSerializer(serializers.Serializer):
    """Seed 003's ``action_configuration``: flat actions and, for time-based rules, how often to check."""

    actions = serializers.ListField(child=serializers.JSONField(), allow_empty=True)
    schedule = serializers.ChoiceField(choices=list(shapes.SCHEDULE_EVERY), required=False, allow_null=True)


@extend_schema_field(ActionConfigurationSerializer)
class ActionConfigurationField(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, **kwargs)

    def to_representation(self, rule):
        return {"actions": [shapes.flat_action(a) for a in rule.actions or []],
                "schedule": (rule.trigger_config or {}).get("schedule")}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError('Must be an object: {"actions": [...], "schedule": "daily"}.')
        return {"action_configuration": data}  # checked in EventTriggerSerializer.shape, errors named in full


@extend_schema_field(OpenApiTypes.BOOL)
class IsActiveField(serializers.Field):
    """Seed 003's ``is_active``: read, the rule fires (status active and enabled); written, see
    ``shapes.status_for``."""

    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, **kwargs)

    def to_representation(self, rule):
        return rule.is_live

    def to_internal_value(self, data):
        return {"is_active": serializers.BooleanField().run_validation(data)}


@extend_schema_field(serializers.IntegerField(allow_null=True, min_value=0, max_value=10))
class MaxRetriesField(serializers.Field):
    """Read: null when the rule has no retry settings; written: a number of retries."""

    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, **kwargs)

    @staticmethod
    def openapi_schema(direction: str) -> dict:
        return {"nullable": None} if direction == "request" else {}

    def to_representation(self, rule):
        return (rule.retry_configuration or {}).get("max_retries")

    def to_internal_value(self, data):
        return {"max_retries": serializers.IntegerField(min_value=0, max_value=10).run_validation(data)}


class EventTriggerSerializer(RuleSerializer):
    """Seed 003's event trigger. ``model_type`` may be written ``App\\Models\\Contact``, ``contact`` or
    ``accounts.Contact`` and reads back as ``contact``; ``trigger_conditions`` takes the list form with
    ``logic``/``group`` and reads back as the normalised tree."""

    source_name = "event_trigger"

    # Plain text, not a second enum of the same choices (OpenAPI names one enum per set of choices).
    status = serializers.CharField(read_only=True, help_text="draft, active or paused; written through is_active.")
    trigger_conditions = serializers.JSONField(source="conditions", required=False, allow_null=True)
    action_configuration = ActionConfigurationField()
    is_active = IsActiveField()
    max_retries = MaxRetriesField()

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "is_active", "status", "enabled", "trigger_type", "model_type",
                  "trigger_config", "trigger_conditions", "action_configuration", "max_retries",
                  *RuleSerializer.common_fields]
        read_only_fields = [*RuleSerializer.read_only, "status", "enabled"]

    def shape(self, attrs):
        self.renames = [*shapes.condition_renames("trigger_conditions", attrs.get("conditions")),
                        ("trigger_config.model_type", "model_type"),
                        ("trigger_config.check_every", "action_configuration.schedule")]
        if "is_active" in attrs:
            active = attrs.pop("is_active")
            attrs["status"] = shapes.status_for(active, self.instance.status if self.instance else None)
            if active:
                attrs["enabled"] = True  # "active" must mean it fires
        configuration = attrs.pop("action_configuration", None)
        if configuration is not None:
            configuration = checked(ActionConfigurationSerializer, configuration, "action_configuration")
            attrs["actions"], flat = shapes.canonical_actions(configuration["actions"])
            self.renames += shapes.action_renames("action_configuration.actions", flat)
            if configuration.get("schedule"):
                attrs["trigger_config"] = self._scheduled(configuration["schedule"], attrs)
        if "max_retries" in attrs:
            retry = dict(attrs.get("retry_configuration", self.current("retry_configuration") or {}))
            retry["max_retries"] = attrs.pop("max_retries")
            attrs["retry_configuration"] = retry
        return attrs

    def definition_renames(self, definition):
        actions = definition.get("actions") if isinstance(definition.get("actions"), list) else []
        return [*shapes.condition_renames("trigger_conditions", definition.get("conditions")),
                ("trigger_config.model_type", "model_type"),
                *shapes.action_renames("action_configuration.actions", list(range(len(actions))))]

    def _scheduled(self, schedule: str, attrs: dict) -> dict:
        config = dict(attrs.get("trigger_config", self.current("trigger_config") or {}))
        config["schedule"] = schedule
        if self.current("trigger_type") == "time_based":
            config["check_every"] = shapes.SCHEDULE_EVERY[schedule]
        return config
