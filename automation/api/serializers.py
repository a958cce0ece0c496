"""Serializers of the rule APIs. Seed 001's workflow and seed 003's event trigger are two shapes of the one
``Workflow`` row; both save through ``automation.services.workflow_save``, which validates and normalises
the rule, and its errors come back named in the shape the client wrote (see ``shapes``)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Account
from automation.conditions import ConditionError
from automation.definitions import apply_definition, draft_view
from automation.models import Run, RunStep, Workflow
from automation.services import workflow_save
from csplatform.api import TenantRelatedField, request_tenant
from csplatform.permissions import django_validation_error_detail

from . import payload, shapes
from .stats import rate

# --- runs -----------------------------------------------------------------------------------------------

class RunStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunStep
        fields = ["position", "action_type", "status", "attempts", "output", "error", "duration_ms", "created_at"]


class RunSerializer(serializers.ModelSerializer):
    workflow_name = serializers.CharField(source="workflow.name", read_only=True)
    skip_reason = serializers.ChoiceField(choices=Run.SkipReason.choices, allow_blank=True, read_only=True,
                                          help_text="Why the run was skipped; blank when it was not.")
    steps = RunStepSerializer(many=True, read_only=True)

    class Meta:
        model = Run
        fields = ["id", "workflow", "workflow_name", "workflow_version", "account", "subject_model", "subject_id",
                  "status", "skip_reason", "manual", "depth", "attempt", "retry_of", "scheduled_for", "trigger_data", "result", "trace",
                  "error", "started_at", "finished_at", "created_at", "steps"]
        read_only_fields = fields


# --- the parts both rule shapes share ---------------------------------------------------------------------

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
class RetryConfigurationField(serializers.JSONField):
    """Checked in ``RuleSerializer.validate`` (after seed 003's max_retries joins it), errors as dotted keys."""


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
        "With an edit of an active rule: publish it at once instead of keeping it as a draft."))

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
            payload.check_conditions(attrs.get("conditions", self.current("conditions")))
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


# --- seed 001: /api/admin/automation --------------------------------------------------------------------

@extend_schema_field(OpenApiTypes.STR)
class FirstActionTypeField(serializers.Field):
    """Seed 001's single ``action_type``: the first action's type when read."""

    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, **kwargs)

    def to_representation(self, rule):
        return rule.actions[0]["type"] if rule.actions else None

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data:
            raise serializers.ValidationError("Must be an action type such as create_task.")
        return {"action_type": data}


@extend_schema_field(OpenApiTypes.OBJECT)
class FirstActionConfigField(serializers.Field):
    """Seed 001's single ``action_config``: the first action's config when read."""

    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, **kwargs)

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


# --- seed 003: /api/event-triggers ----------------------------------------------------------------------

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
    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, **kwargs)

    def to_representation(self, rule):
        return (rule.retry_configuration or {}).get("max_retries")

    def to_internal_value(self, data):
        return {"max_retries": serializers.IntegerField(min_value=0, max_value=10).run_validation(data)}


class EventTriggerSerializer(RuleSerializer):
    """Seed 003's event trigger. ``model_type`` may be written ``App\\Models\\Contact``, ``contact`` or
    ``accounts.Contact`` and reads back as ``contact``; ``trigger_conditions`` takes the list form with
    ``logic``/``group`` and reads back as the normalised tree."""

    source_name = "event_trigger"

    model_type = serializers.CharField(required=False, allow_blank=True, max_length=200)
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


# --- requests to run a rule -----------------------------------------------------------------------------

class RunRequestSerializer(serializers.Serializer):
    """What a run started by hand reads: an account, an entity of the rule's model, or a webhook body."""

    account_id = TenantRelatedField(Account, required=False, allow_null=True)
    entity_type = serializers.CharField(required=False, allow_blank=True, max_length=200)
    entity_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    payload = serializers.DictField(required=False, help_text="For webhook rules: the JSON body to run on.")
    context = serializers.DictField(required=False, default=dict, help_text="Extra data, {{ custom.… }} in templates.")


class ExecuteSerializer(RunRequestSerializer):
    workflow_id = TenantRelatedField(Workflow)


class SampleEventSerializer(serializers.Serializer):
    type = serializers.RegexField(r"^[a-z][a-z0-9_]{1,63}$")
    payload = serializers.DictField(required=False, default=dict)
    changes = serializers.DictField(required=False, default=dict, help_text='{"field": {"old": x, "new": y}}')


class TestRequestSerializer(RunRequestSerializer):
    event = SampleEventSerializer(required=False, help_text="A sample event: the answer says whether the "
                                                             "trigger matches it, and conditions see its changes.")
    backtest_days = serializers.IntegerField(min_value=1, max_value=90, required=False, help_text=(
        "Also replay the trigger and conditions over the stored events of the last N days (see backtest)."))


class DryRunStepSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    type = serializers.CharField()
    status = serializers.CharField()
    output = serializers.JSONField()
    error = serializers.CharField()
    duration_ms = serializers.FloatField()


class DryRunSerializer(serializers.Serializer):
    """The answer of ``POST /{id}/test``; nothing it describes was kept."""

    dry_run = serializers.BooleanField()
    workflow_id = serializers.IntegerField()
    live = serializers.BooleanField(help_text="Whether the rule fires on its own now (active and enabled).")
    account_id = serializers.CharField(allow_null=True)
    subject = serializers.DictField()
    trigger = serializers.DictField(help_text="checked: a sample event was given; matched: the trigger took it.")
    conditions = serializers.DictField(help_text="passed, and the trace: each condition with the values seen.")
    status = serializers.CharField()
    skip_reason = serializers.CharField()
    error = serializers.CharField()
    actions = DryRunStepSerializer(many=True)
    would_fire = serializers.BooleanField()
    backtest = serializers.DictField(required=False, help_text=(
        "With backtest_days: events_scanned, trigger_matched, would_run and the accounts it would have run for."))


class WebhookAcceptedSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    status = serializers.CharField()
    skip_reason = serializers.CharField()


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


class StatsSerializer(serializers.Serializer):
    total_workflows = serializers.IntegerField()
    active_workflows = serializers.IntegerField()
    workflows = serializers.DictField(child=serializers.IntegerField())
    run_count = serializers.IntegerField(help_text="Runs that acted (not skipped).")
    runs = serializers.DictField(child=serializers.IntegerField())
    success_rate = serializers.FloatField(allow_null=True, help_text="success / (success + failed)")
    skipped_by_reason = serializers.DictField(child=serializers.IntegerField())
    runs_per_day = serializers.ListField(child=serializers.DictField())
