"""Saving rules: every part is validated (and normalised) when the rule is saved, never when it runs.

Drafts: a person (``actor``) editing the content of a live rule edits a draft (``Workflow.draft``); the
live definition keeps running until ``workflow_publish`` applies it as the next version. ``status`` and
``enabled`` are switches, not content: they apply at once. Everything else (paused and draft rules,
system callers without an actor, rules another app keeps: ``managed``) is saved in place and published
at once, so a version number always names one definition. The helpers are in ``definitions``.
"""

from __future__ import annotations

from typing import Any, Mapping

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record, audit_snapshot
from csplatform.conflicts import StateConflict

from . import conditions, managed, rule_index, waits
from .actions import actions
from .definitions import CONTENT_FIELDS, DEFINITION_KEYS, RULE_FIELDS, SWITCHES, definition_of, draft_view, scope_ids
from .models import Workflow, WorkflowVersion
from .models.rules import _new_token
from .subjects import model_for
from .triggers import ConfigError, triggers

__all__ = ["CONTENT_FIELDS", "DEFINITION_KEYS", "RULE_FIELDS", "SWITCHES", "draft_view", "workflow_delete",
           "workflow_discard_draft", "workflow_publish", "workflow_rotate_webhook_token", "workflow_save",
           "workflow_validate"]


def _validate_trigger(rule: Workflow) -> None:
    if rule.trigger_type not in triggers:
        raise ValidationError({"trigger_type": f"unknown trigger '{rule.trigger_type}'; known: {', '.join(triggers.keys())}"})
    config = rule.trigger_config or {}
    derived = _watches_its_conditions(rule, config)
    if derived:
        config = {k: v for k, v in config.items() if k not in ("fields_from", "field")}
        config["fields"] = _watched_fields(rule, config)  # none: the trigger says the field is required
    trigger = triggers.get(rule.trigger_type)
    try:
        rule.trigger_config, rule.model_type = trigger.validate_config(config, rule.model_type)
        trigger.check_for_rule(rule.trigger_config, rule)
    except ConfigError as exc:
        raise ValidationError({f"trigger_config.{exc.field}": exc.message}) from None
    if derived:
        rule.trigger_config["fields_from"] = "conditions"


def _watches_its_conditions(rule: Workflow, config) -> bool:
    """Seed 003's field_changed names no field: its conditions do. Derived again on every save
    (``fields_from: "conditions"``), so an edit of the conditions moves what the rule watches with them."""
    return rule.trigger_type == "field_changed" and isinstance(config, dict) and (
        config.get("fields_from") == "conditions" or not (config.get("field") or config.get("fields")))


def _watched_fields(rule: Workflow, config: dict) -> list[str]:
    """The change keys of the fields the conditions name (``conditions.watched_fields``)."""
    try:
        model = model_for(rule.model_type or config.get("model_type") or config.get("model") or "")
        return conditions.watched_fields(rule.conditions, model)
    except (ValueError, LookupError, conditions.ConditionError):
        return []  # the model's and the conditions' own checks name what is wrong


def _validate_conditions(rule: Workflow) -> None:
    default = triggers.get(rule.trigger_type).subject_model
    subject = (rule.model_type or default) if default else None  # a webhook's conditions read its body
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
        action = actions.get(spec["type"])
        try:
            # Seed 001's per-action delay belongs to the engine (automation.waits), whatever the action.
            has_delay = isinstance(raw, dict) and "delay" in raw
            delay = waits.check_delay(raw["delay"]) if has_delay else None
            config = action.validate_config({k: v for k, v in raw.items() if k != "delay"} if has_delay else raw or {})
            action.check_for_rule(config, rule)
        except ConfigError as exc:
            raise ValidationError({f"actions[{index}].config.{_as_written(exc.field, action, raw)}": exc.message}) from None
        cleaned.append({"type": spec["type"], "config": {**config, "delay": delay} if delay else config})
    rule.actions = cleaned


def _as_written(field: str, action, raw) -> str:
    """The setting's name as the client wrote it: seed 003's alias (``user_id``) if it used one."""
    written = [alias for alias, name in action.aliases.items() if name == field and alias in (raw or {})]
    return written[0] if written else field


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


def _chained(steps: list) -> list[int]:
    return [int(a["config"]["workflow_id"]) for a in steps or [] if a["type"] == "trigger_workflow"]


def _refuse_cycles(rule: Workflow) -> None:
    """A trigger_workflow chain that comes back to this rule would loop: refuse it at save time. The other
    rules count with their live actions only (what the engine runs); a draft that would close a loop with
    another draft is refused when the second of them is published, which validates again."""
    others = Workflow.objects.for_tenant(rule.tenant_id).exclude(pk=rule.pk).values_list("pk", "actions")
    graph = {pk: _chained(steps) for pk, steps in others}
    stack, seen = list(_chained(rule.actions)), set()
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
    if rule.pk is not None and _only_switches_off(data):
        return rule  # pausing must work even when what the rule relies on is gone (a member, a template)
    _validate_trigger(rule)
    _validate_conditions(rule)
    _validate_actions(rule)
    _validate_limits(rule)
    _validate_retries(rule)
    _refuse_cycles(rule)
    return rule


def _only_switches_off(data: Mapping[str, Any]) -> bool:
    """The save only pauses or disables the rule (or keeps it a draft): nothing it could fail on changes."""
    return (set(data) - {"publish"} <= set(SWITCHES) and data.get("status") != Workflow.Status.ACTIVE
            and data.get("enabled") is not True)


def _edits_a_draft(stored: Workflow | None, data: Mapping[str, Any], actor) -> bool:
    """A person changing the content of a live rule (or of one with a draft pending) edits the draft.
    System callers (no actor) and rules another app keeps apply at once: they are their own publishers."""
    if stored is None or actor is None or managed.is_managed(stored):
        return False
    if stored.status != Workflow.Status.ACTIVE and stored.draft is None:
        return False
    return any(name in data for name in (*CONTENT_FIELDS, "scope_accounts"))


@transaction.atomic
def workflow_save(*, rule: Workflow, data: Mapping[str, Any], actor=None) -> Workflow:
    """Validate and save a rule; the change is written to the tenant's audit trail. Returns the saved rule;
    ``rule`` ends as stored: when the edit went to the draft, its content fields hold the live definition
    and ``rule.draft`` the edit. ``data["publish"]`` true publishes the draft in the same call (the rule
    returned is then the published row)."""
    creating = rule.pk is None
    # Locked: a draft edit and a publish of the same rule must not interleave (one would be lost).
    stored = None if creating else Workflow.objects.select_for_update(of=("self",)).get(pk=rule.pk)
    if _edits_a_draft(stored, data, actor):
        rule = _save_draft(rule, stored, data, actor)
    else:
        rule = _save_in_place(rule, stored, data, actor)
    if data.get("publish") and rule.draft is not None:
        rule = workflow_publish(rule=rule, actor=actor)
    return rule


# Written by other paths (drafts, the engine, token rotation): an in-place save keeps what is stored, not
# what the caller's possibly older copy of the row says.
NOT_EDITED_HERE = ("draft", "draft_updated_at", "draft_by_id", "last_run_at", "webhook_token")


def _save_in_place(rule: Workflow, stored: Workflow | None, data: Mapping[str, Any], actor) -> Workflow:
    before = None if stored is None else audit_snapshot(stored)
    if stored is not None:
        for name in (*NOT_EDITED_HERE, *(switch for switch in SWITCHES if switch not in data)):
            setattr(rule, name, getattr(stored, name))
    workflow_validate(rule=rule, data=data)
    scope = scope_ids(data["scope_accounts"]) if "scope_accounts" in data else \
        ([] if stored is None else scope_ids(stored.scope_accounts.all()))
    definition = definition_of(rule, scope)
    # A content change applied at once is published at once: the version number follows the definition.
    changed = stored is None or definition != definition_of(stored)
    rule.version = 1 if stored is None else stored.version + (1 if changed else 0)
    rule.save()
    if "scope_accounts" in data:
        rule.scope_accounts.set(data["scope_accounts"])
    if changed:
        _record_version(rule, definition, actor)
    rule_index.invalidate(rule.tenant_id)
    audit_record(tenant=rule.tenant, actor=actor, action="create" if stored is None else "update", obj=rule,
                 before=before, after=audit_snapshot(rule))
    return rule


def _save_draft(rule: Workflow, stored: Workflow, data: Mapping[str, Any], actor) -> Workflow:
    """Validate the edit on top of the live rule and its pending draft, exactly as an in-place save would
    (trigger, conditions, actions, limits, cycles against the other rules' live definitions), and keep the
    result as the draft; only ``status`` / ``enabled`` reach the live rule."""
    before = audit_snapshot(stored)
    candidate = workflow_validate(rule=draft_view(stored), data=data)
    scope = scope_ids(data["scope_accounts"]) if "scope_accounts" in data else candidate.draft_scope
    draft = definition_of(candidate, scope)
    if draft == definition_of(stored):
        draft = None  # edited back to what runs: nothing is pending
    # The caller's object may hold the edit (an admin form writes it there): it ends as the stored row.
    for name in (*CONTENT_FIELDS, "version"):
        setattr(rule, name, getattr(stored, name))
    for name in SWITCHES:
        setattr(rule, name, data[name] if name in data else getattr(stored, name))
    if draft != stored.draft:
        rule.draft_updated_at, rule.draft_by = (timezone.now(), _user(actor)) if draft is not None else (None, None)
    else:
        rule.draft_updated_at, rule.draft_by_id = stored.draft_updated_at, stored.draft_by_id
    rule.draft = draft
    rule.save(update_fields=[*SWITCHES, "draft", "draft_updated_at", "draft_by", "updated_at"])
    rule_index.invalidate(rule.tenant_id)  # a switch may have changed what is live
    audit_record(tenant=rule.tenant, actor=actor, action="update", obj=rule, before=before,
                 after=audit_snapshot(rule))
    return rule


def _user(actor):
    return actor if getattr(actor, "pk", None) is not None else None  # AnonymousUser, the system: nobody


def _record_version(rule: Workflow, definition: dict, actor) -> WorkflowVersion:
    return WorkflowVersion.objects.create(tenant_id=rule.tenant_id, workflow=rule, number=rule.version,
                                          definition=definition, published_by=_user(actor))


@transaction.atomic
def workflow_publish(*, rule: Workflow, actor=None) -> Workflow:
    """Make the rule's draft its live definition: validated again (other rules, registries and accounts may
    have changed since it was saved), the next version number, a ``WorkflowVersion``, the draft cleared,
    the rule index refreshed and the change audited. No draft: ``StateConflict`` on ``draft`` (a 409)."""
    stored = Workflow.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=rule.pk)
    if stored.draft is None:
        raise StateConflict({"draft": "This rule has no draft to publish."})
    before = audit_snapshot(stored)
    draft = stored.draft
    workflow_validate(rule=stored, data={name: draft[name] for name in CONTENT_FIELDS if name in draft})
    # An account of the scope deleted since the draft was saved simply drops out of it.
    accounts = stored.scope_accounts.model.objects.for_tenant(stored.tenant_id).filter(
        pk__in=draft.get("scope_accounts") or [])
    stored.scope_accounts.set(accounts)
    stored.version += 1
    stored.draft, stored.draft_updated_at, stored.draft_by = None, None, None
    stored.save()
    _record_version(stored, definition_of(stored), actor)
    rule_index.invalidate(stored.tenant_id)
    audit_record(tenant=stored.tenant, actor=actor, action="update", obj=stored, before=before,
                 after=audit_snapshot(stored))
    return stored


@transaction.atomic
def workflow_discard_draft(*, rule: Workflow, actor=None) -> Workflow:
    """Drop the rule's pending draft (nothing to drop is fine); the live definition is untouched."""
    stored = Workflow.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=rule.pk)
    if stored.draft is not None:
        before = audit_snapshot(stored)
        stored.draft, stored.draft_updated_at, stored.draft_by = None, None, None
        stored.save(update_fields=["draft", "draft_updated_at", "draft_by", "updated_at"])
        audit_record(tenant=stored.tenant, actor=actor, action="update", obj=stored, before=before,
                     after=audit_snapshot(stored))
    return stored


@transaction.atomic
def workflow_delete(*, rule: Workflow, actor=None) -> None:
    tenant, before = rule.tenant, audit_snapshot(rule)
    audit_record(tenant=tenant, actor=actor, action="delete", obj=rule, before=before, after=None)
    rule.delete()
    rule_index.invalidate(tenant.pk)


@transaction.atomic
def workflow_rotate_webhook_token(*, rule: Workflow, actor=None) -> str:
    """Give the rule a new inbound webhook token; the old URL stops working at once."""
    rule.webhook_token = _new_token()
    rule.save(update_fields=["webhook_token", "updated_at"])
    audit_record(tenant=rule.tenant, actor=actor, action="update", obj=rule,
                 before={"webhook_token": "old"}, after={"webhook_token": "new"})
    return rule.webhook_token
