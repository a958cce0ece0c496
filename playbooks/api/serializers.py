"""Serializers of the playbook API (request shapes for the schema; executions)."""

from __future__ import annotations

from rest_framework import serializers

from csplatform.api import TenantModelSerializer

from ..models import PlaybookExecution, PlaybookType


class TriggerSettingsRequest(serializers.Serializer):
    """Seed 000's body: thresholds of one type plus ``auto_trigger_enabled``; keys left out keep their value."""

    playbook_type = serializers.ChoiceField(choices=PlaybookType.choices)
    triggers = serializers.DictField()


class TriggerTestRequest(serializers.Serializer):
    playbook_type = serializers.ChoiceField(choices=PlaybookType.choices)
    triggers = serializers.DictField(required=False)


class PlaybookExecutionSerializer(TenantModelSerializer):
    account_name = serializers.CharField(source="account.name", read_only=True)

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
