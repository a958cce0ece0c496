"""Seed 001's workflow (``/api/admin/automation``): ``condition_config`` and a single ``action_type`` /
``action_config`` (or an ``actions`` list)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from automation.actions.base import actions as action_types
from automation.models import Workflow

from .. import shapes
from .rules import RuleSerializer


@extend_schema_field(OpenApiTypes.STR)
class FirstActionTypeField(serializers.Field):
    """Seed 001's single ``action_type``: the first action's type when read (null: the rule has no action)."""

    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, **kwargs)

    @staticmethod
    def openapi_schema(direction: str) -> dict:
        if direction == "request":
            return {"enum": action_types.keys()}
        return {"enum": [*action_types.keys(), None], "nullable": True}

    def to_representation(self, rule):
        return rule.actions[0]["type"] if rule.actions else None

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data:
            raise serializers.ValidationError("Must be an action type such as create_task.")
        return {"action_type": data}


@extend_schema_field(OpenApiTypes.OBJECT)
class FirstActionConfigField(serializers.Field):
    """Seed 001's single ``action_config``: the first action's config when read (null: the rule has no action)."""

    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, **kwargs)

    @staticmethod
    def openapi_schema(direction: str) -> dict:
        return {} if direction == "request" else {"nullable": True}

    def to_representation(self, rule):
        return rule.actions[0].get("config", {}) if rule.actions else None

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be an object.")
        return {"action_config": data}


class WorkflowSerializer(RuleSerializer):
    """Seed 001's workflow. ``condition_config`` takes the typed form (``{"account_filter": {...}}``) or any
    other form of the condition language and reads back as the normalised tree; the action is either
    ``action_type`` + ``action_config`` or an ``actions`` list (``{"type", "config"}`` or flat items)."""

    source_name = "workflow"

    condition_config = serializers.JSONField(source="conditions", required=False, allow_null=True)
    action_type = FirstActionTypeField()
    action_config = FirstActionConfigField()
    actions = serializers.JSONField(required=False, help_text='[{"type": "create_task", "config": {...}}, ...]')

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "status", "enabled", "trigger_type", "trigger_config", "model_type",
                  "condition_config", "action_type", "action_config", "actions", *RuleSerializer.common_fields]
        read_only_fields = RuleSerializer.read_only

    def shape(self, attrs):
        self.renames = shapes.condition_renames("condition_config", attrs.get("conditions"))
        single = {key: attrs.pop(key) for key in ("action_type", "action_config") if key in attrs}
        if single and "actions" in attrs:
            raise serializers.ValidationError({"action_type": ["Give action_type/action_config or actions, not both."]})
        if single:
            attrs["actions"] = [self._single_action(single)]
            self.renames += [("actions[0].config", "action_config"), ("actions[0].type", "action_type"),
                             ("actions[0]", "action_type"), ("actions", "action_type")]
        elif "actions" in attrs:
            attrs["actions"], flat = shapes.canonical_actions(attrs["actions"])
            self.renames += shapes.action_renames("actions", flat)
        return attrs

    def definition_renames(self, definition):
        return shapes.condition_renames("condition_config", definition.get("conditions"))

    def _single_action(self, single: dict) -> dict:
        stored = self.current("actions") or []
        if len(stored) > 1:
            raise serializers.ValidationError(
                {"action_type": [f"This workflow has {len(stored)} actions: edit them through actions."]})
        kind = single.get("action_type") or (stored[0]["type"] if stored else None)
        if not kind:
            raise serializers.ValidationError({"action_type": ["This field is required with action_config."]})
        if "action_config" in single:
            config = single["action_config"]
        else:  # a new type keeps no settings of the old one
            config = stored[0].get("config", {}) if stored and stored[0]["type"] == kind else {}
        return {"type": kind, "config": config}
