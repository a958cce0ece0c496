"""Serializers of the rule APIs. Seed 001's workflow (``workflows``) and seed 003's event trigger
(``event_triggers``) are two shapes of the one ``Workflow`` row; both save through
``automation.services.workflow_save`` (``rules``), which validates and normalises the rule, and its errors
come back named in the shape the client wrote (``automation.api.shapes``). Runs and the requests that start a rule
are in ``runs``; envelopes and other response shapes in ``responses``. The views import them from here."""

from .event_triggers import (ActionConfigurationField, ActionConfigurationSerializer, EventTriggerSerializer,
                             IsActiveField, MaxRetriesField)
from .responses import (ConflictSerializer, ManagedBySerializer, RunPageSerializer, VersionPageSerializer,
                        WorkflowPageSerializer, WorkflowVersionSerializer, page_serializer)
from .rules import (ModelTypeField, RetryConfigurationField, RetryConfigurationSerializer, RuleSerializer,
                    TriggerTypeField, checked)
from .runs import (DryRunSerializer, DryRunStepSerializer, ExecuteSerializer, RunRequestSerializer, RunSerializer,
                   RunStepSerializer, SampleEventSerializer, StatsSerializer, TestRequestSerializer,
                   WebhookAcceptedSerializer)
from .workflows import FirstActionConfigField, FirstActionTypeField, WorkflowSerializer

__all__ = [
    "ActionConfigurationField", "ActionConfigurationSerializer", "ConflictSerializer", "DryRunSerializer",
    "DryRunStepSerializer", "EventTriggerSerializer", "ExecuteSerializer", "FirstActionConfigField",
    "FirstActionTypeField", "IsActiveField", "ManagedBySerializer", "MaxRetriesField", "ModelTypeField",
    "RetryConfigurationField", "RetryConfigurationSerializer", "RuleSerializer", "RunPageSerializer",
    "RunRequestSerializer", "RunSerializer", "RunStepSerializer", "SampleEventSerializer", "StatsSerializer",
    "TestRequestSerializer", "TriggerTypeField", "VersionPageSerializer",
    "WebhookAcceptedSerializer", "WorkflowPageSerializer", "WorkflowSerializer", "WorkflowVersionSerializer",
    "checked", "page_serializer",
]
