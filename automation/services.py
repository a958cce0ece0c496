"""Saving rules: every part is validated (and normalised) when the rule is saved, never when it runs."""

from __future__ import annotations

from typing import Any, Mapping

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.audit import audit_record, audit_snapshot

from . import conditions, rule_index
from .actions import actions
from .models import Workflow
from .subjects import model_for
from .triggers import ConfigError, triggers

RULE_FIELDS = ("name", "description", "status", "enabled", "trigger_type", "model_type", "trigger_config",
               "conditions", "actions", "scope_all_accounts", "continue_on_error", "cooldown_minutes",
               "rate_limiting", "debug_mode", "allow_retries", "retry_configuration", "delay_minutes",
               "failure_threshold", "source")


def _validate_trigger(rule: Workflow) -> None:
    if rule.trigger_type not in triggers:
        raise ValidationError({"trigger_type": f"unknown trigger '{rule.trigger_type}'; known: {', '.join(triggers.keys())}"})
    try:
        rule.trigger_config, rule.model_type = triggers.get(rule.trigger_type).validate_config(
            rule.trigger_config or {}, rule.model_type)
    except ConfigError as exc:
        raise ValidationError({f"trigger_config.{exc.field}": exc.message}) from None


def _validate_conditions(rule: Workflow) -> None:
    subject = rule.model_type or triggers.get(rule.trigger_type).subject_model
    try:
        tree = conditions.normalize(rule.conditions)
        if subject:
            conditions.validate(tree, model_for(subject))
    except conditions.ConditionError as exc:
        raise ValidationError({f"conditions.{exc.field}" if exc.field else "conditions": exc.message}) from None
    rule.conditions = tree


def _validate_actions(rule: Workflow) -> None:
    if not isinstance(rule.actions, list):
        raise ValidationError({"actions": "must be a list of {type, config}"})
    cleaned = []
    for index, spec in enumerate(rule.actions):
        if not isinstance(spec, dict) or spec.get("type") not in actions:
            kind = spec.get("type") if isinstance(spec, dict) else spec
            raise ValidationError({f"actions[{index}].type": f"unknown action '{kind}'; known: {', '.join(actions.keys())}"})
        # Seed 001 nests settings under "config"; seed 003 writes them beside "type".
        raw = spec.get("config") if "config" in spec else {k: v for k, v in spec.items() if k != "type"}
        try:
            config = actions.get(spec["type"]).validate_config(raw or {})
        except ConfigError as exc:
            raise ValidationError({f"actions[{index}].config.{exc.field}": exc.message}) from None
        cleaned.append({"type": spec["type"], "config": config})
    rule.actions = cleaned


RETRY_KEYS = ("max_retries", "delay_minutes", "backoff_multiplier", "max_delay_hours")
MAX_DELAY_MINUTES = 7 * 24 * 60


def _validate_retries(rule: Workflow) -> None:
    config = rule.retry_configuration or {}
    if not isinstance(config, dict):
        raise ValidationError({"retry_configuration": "must be an object"})
    unknown = sorted(set(config) - set(RETRY_KEYS))
    if unknown:
        raise ValidationError({f"retry_configuration.{unknown[0]}": f"unknown setting; known: {', '.join(RETRY_KEYS)}"})
    if config.get("backoff_multiplier") is not None and config["backoff_multiplier"] < 1:
        raise ValidationError({"retry_configuration.backoff_multiplier": "must be at least 1"})
    if rule.delay_minutes and rule.delay_minutes > MAX_DELAY_MINUTES:
        raise ValidationError({"delay_minutes": f"must be at most {MAX_DELAY_MINUTES} (one week)"})
    for key in RETRY_KEYS:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValidationError({f"retry_configuration.{key}": "must be a non-negative number"})
    if config.get("max_retries") is not None and config["max_retries"] > 10:
        raise ValidationError({"retry_configuration.max_retries": "must be at most 10"})


def _validate_limits(rule: Workflow) -> None:
    limit = rule.rate_limiting or {}
    if not isinstance(limit, dict):
        raise ValidationError({"rate_limiting": "must be an object"})
    if limit:
        if not isinstance(limit.get("limit"), int) or limit["limit"] < 1:
            raise ValidationError({"rate_limiting.limit": "must be a positive integer"})
        if limit.get("period", "hour") not in ("minute", "hour", "day"):
            raise ValidationError({"rate_limiting.period": "must be minute, hour or day"})
        if limit.get("reset_strategy", "sliding") not in ("sliding", "fixed"):
            raise ValidationError({"rate_limiting.reset_strategy": "must be sliding or fixed"})


def _chained(rule: Workflow) -> list[int]:
    return [int(a["config"]["workflow_id"]) for a in rule.actions if a["type"] == "trigger_workflow"]


def _refuse_cycles(rule: Workflow) -> None:
    """A trigger_workflow chain that comes back to this rule would loop: refuse it at save time."""
    graph = {w.pk: _chained(w) for w in Workflow.objects.for_tenant(rule.tenant_id).exclude(pk=rule.pk)}
    stack, seen = list(_chained(rule)), set()
    while stack:
        current = stack.pop()
        if rule.pk is not None and current == rule.pk:
            raise ValidationError({"actions": "trigger_workflow chain loops back to this workflow"})
        if current in seen:
            continue
        seen.add(current)
        stack.extend(graph.get(current, []))


def workflow_validate(*, rule: Workflow, data: Mapping[str, Any]) -> Workflow:
    """Apply ``data`` to ``rule`` in memory, validated and normalised; raises ValidationError naming the
    field. Nothing is saved (forms call this to show errors; ``workflow_save`` calls it before saving)."""
    for name, value in data.items():
        if name in RULE_FIELDS:
            setattr(rule, name, value)
    _validate_trigger(rule)
    _validate_conditions(rule)
    _validate_actions(rule)
    _validate_limits(rule)
    _validate_retries(rule)
    _refuse_cycles(rule)
    return rule


@transaction.atomic
def workflow_save(*, rule: Workflow, data: Mapping[str, Any], actor=None) -> Workflow:
    """Validate and save a rule; the change is written to the tenant's audit trail."""
    creating = rule.pk is None
    before = None if creating else audit_snapshot(Workflow.objects.get(pk=rule.pk))
    workflow_validate(rule=rule, data=data)
    rule.save()
    if "scope_accounts" in data:
        rule.scope_accounts.set(data["scope_accounts"])
    rule_index.invalidate(rule.tenant_id)
    audit_record(tenant=rule.tenant, actor=actor, action="create" if creating else "update", obj=rule,
                 before=before, after=audit_snapshot(rule))
    return rule


@transaction.atomic
def workflow_delete(*, rule: Workflow, actor=None) -> None:
    tenant, before = rule.tenant, audit_snapshot(rule)
    audit_record(tenant=tenant, actor=actor, action="delete", obj=rule, before=before, after=None)
    rule.delete()
    rule_index.invalidate(tenant.pk)


@transaction.atomic
def workflow_rotate_webhook_token(*, rule: Workflow, actor=None) -> str:
    """Give the rule a new inbound webhook token; the old URL stops working at once."""
    from .models.rules import _new_token

    rule.webhook_token = _new_token()
    rule.save(update_fields=["webhook_token", "updated_at"])
    audit_record(tenant=rule.tenant, actor=actor, action="update", obj=rule,
                 before={"webhook_token": "old"}, after={"webhook_token": "new"})
    return rule.webhook_token
