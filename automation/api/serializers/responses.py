"""Response shapes the schema names: seed 001's page envelopes, published versions, the 409 of kept rules."""

from __future__ import annotations

from rest_framework import serializers

from .runs import RunSerializer
from .workflows import WorkflowSerializer


def page_serializer(name: str, key: str, item):
    """Seed 001's page envelope ``{<key>: [...], total, page, limit}`` for the schema."""
    return type(name, (serializers.Serializer,), {
        key: item(many=True), "total": serializers.IntegerField(), "page": serializers.IntegerField(),
        "limit": serializers.IntegerField()})


WorkflowPageSerializer = page_serializer("WorkflowPage", "workflows", WorkflowSerializer)
RunPageSerializer = page_serializer("RunPage", "runs", RunSerializer)


class WorkflowVersionSerializer(serializers.Serializer):
    """One published definition of a rule (``GET /{id}/versions``), newest first."""

    number = serializers.IntegerField()
    live = serializers.BooleanField(help_text="This is the version that runs now.")
    published_at = serializers.DateTimeField()
    published_by = serializers.IntegerField(allow_null=True, help_text="User id; null for the system.")
    published_by_email = serializers.CharField(allow_blank=True)
    definition = serializers.DictField(help_text="The rule as published, in this API's shape.")


VersionPageSerializer = page_serializer("WorkflowVersionPage", "versions", WorkflowVersionSerializer)


class ManagedBySerializer(serializers.Serializer):
    type = serializers.CharField(help_text="What keeps the rule, e.g. SuccessPlay.")
    id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_blank=True)
    endpoint = serializers.CharField(help_text="Where to change it instead.")


class ConflictSerializer(serializers.Serializer):
    """409: the rule is kept by another object (``managed_by``), or rows still point at it (``protected_by``)."""

    detail = serializers.CharField()
    managed_by = ManagedBySerializer(required=False)
    protected_by = serializers.ListField(child=serializers.CharField(), required=False)
