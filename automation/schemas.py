"""The JSON schemas of a rule's parts, derived from what the registries declare (nothing is declared twice).

* ``config_schema(item)``: a trigger's ``trigger_config`` or an action's ``config``, from the item's declarations:
  a trigger's ``settings`` (each setting with its schema), an action's ``required``, ``templated``, ``known``,
  ``aliases`` and ``settings_schema`` (what a setting holds when it is not plain text). Every action also takes
  the engine's ``delay`` (``automation.waits``).
* ``actions_schema()``: a rule's ``actions``, a list of ``{type, config}``, one variant per registered action.
* ``conditions_schema()``: the canonical condition tree (``automation.conditions.tree``): a group of leaves;
  ``condition_fields(model)``: the field paths a leaf may name on a subject model, offered next to its input.
* ``rate_limiting_schema()`` and ``retry_configuration_schema()``: a rule's limits and retries, as
  ``services.workflow_validate`` reads them (durations in their stored units, shown in words).

The admin's editors are made from these (``automation.admin.editors``); what they post is validated by the same
code as the API's (``services.workflow_validate``), so a schema only decides which inputs are offered.
"""

from __future__ import annotations

from django.db import models

from csplatform import json_schema as js

from .actions import Action, actions
from .conditions import ConditionError
from .conditions.fields import resolve
from .conditions.tree import GROUP_OPS, LIST_OPERATORS, NO_VALUE_OPERATORS, OPERATORS, TIME_WINDOW
from .conditions.typed import ENGAGEMENT_FIELDS
from .services import MAX_DELAY_MINUTES, RETRY_KEYS
from .subjects import model_for
from .triggers import Trigger, triggers

DELAY = js.duration(description="Wait this long before this action (the run resumes then).")


def config_schema(item: Trigger | Action) -> dict:
    """The JSON schema of ``item``'s config, from its declarations (see the module's docstring)."""
    if isinstance(item, Trigger):
        properties = {name: dict(schema) for name, schema in item.settings.items()}
        required: list[str] = []
    else:
        names = dict.fromkeys((*item.required, *item.templated, *(item.known or ()), *item.settings_schema))
        properties = {name: dict(item.settings_schema.get(name) or (
            js.template() if name in item.templated else js.text())) for name in names}
        for name in item.templated:
            properties[name]["x-template"] = True
        for alias, name in item.aliases.items():
            if name in properties:
                properties[name].setdefault("x-aliases", []).append(alias)
        properties["delay"] = dict(DELAY)
        required = list(item.required)
    schema = {"type": "object", "title": item.type, "properties": properties,
              "additionalProperties": not isinstance(item, Trigger) and item.known is None}
    if item.__doc__:
        schema["description"] = " ".join(item.__doc__.split())
    if required:
        schema["required"] = required
    return schema


def trigger_config_schemas() -> dict[str, dict]:
    """Every registered trigger's config schema, by trigger type."""
    return {name: config_schema(triggers.get(name)) for name in triggers.keys()}


def action_schema(action_type: str) -> dict:
    """One item of a rule's ``actions``: ``{"type": <action_type>, "config": {...}}``."""
    return {"type": "object", "title": action_type, "required": ["type"],
            "properties": {"type": {"const": action_type}, "config": config_schema(actions.get(action_type))}}


def actions_schema() -> dict:
    """A rule's ``actions``: run in order, each one of the registered actions."""
    return {"type": "array", "items": {"title": "action", "oneOf": [action_schema(name) for name in actions.keys()],
                                       "x-discriminator": "type"}}


def conditions_schema() -> dict:
    """The canonical condition tree: ``{"op": all|any|none, "conditions": [leaf or group, ...]}``."""
    operators = sorted(OPERATORS - {TIME_WINDOW})
    leaf = {"type": "object", "title": "condition", "required": ["field", "operator"], "properties": {
        "field": js.text(description="A field of the rule's subject, e.g. industry or account.status."),
        "operator": js.enum(operators),
        "value": {**js.any_json(description="Text, a number, true/false; a list for in / not_in."),
                  "x-list-when": {"operator": sorted(LIST_OPERATORS)},
                  "x-absent-when": {"operator": sorted(NO_VALUE_OPERATORS)}},
        "options": js.json_object(description="Engagement fields: kinds, outcomes, within_days."),
    }}
    return {"$defs": {"leaf": leaf}, "type": "object", "title": "conditions", "x-closed": True, "properties": {
        "op": {**js.enum(GROUP_OPS, description="all: every condition holds; any: one does; none: none does."),
               "title": "Match"},
        "conditions": {"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/leaf"}, {"$ref": "#"}]},
                       "x-item": leaf, "title": "Conditions"},
    }}


def condition_fields(model_name: str | None) -> list[str]:
    """The field paths a condition on ``model_name`` ("account", "contact", ...) may name: its own fields, one
    step into its relations (``account.status``, ``current_stage.name``, ``owner.email``) and the engagement
    fields, each one ``conditions.fields.resolve`` accepts (the engine's own rule), sorted; [] for no model."""
    try:
        model = model_for(model_name or "")
    except (ValueError, LookupError):
        return []
    candidates = [*sorted(ENGAGEMENT_FIELDS)]
    for field in model._meta.get_fields():
        if not isinstance(field, models.Field) or not (field.concrete or field.many_to_many):
            continue
        candidates.append(field.name)
        if field.is_relation and field.related_model is not None:
            candidates += [f"{field.name}.{sub.name}" for sub in field.related_model._meta.get_fields()
                           if isinstance(sub, models.Field) and sub.concrete and not sub.is_relation]
    accepted = set()
    for path in candidates:
        try:
            accepted.add(resolve(model, path).path)
        except ConditionError:
            continue  # the tenant, secrets, reverse relations: not offered, as they are not accepted
    return sorted(accepted, key=lambda path: (path.count("."), path))


RATE_PERIODS = ("minute", "hour", "day")
RESET_STRATEGIES = ("sliding", "fixed")


def rate_limiting_schema() -> dict:
    """A rule's ``rate_limiting``: at most ``limit`` runs per account in a ``period`` (empty: no limit)."""
    return {"type": "object", "title": "rate limiting", "x-closed": True, "properties": {
        "limit": {**js.integer(minimum=1, description="Runs allowed per period; empty: no rate limit."),
                  "title": "Runs allowed"},
        "period": {**js.enum(RATE_PERIODS), "default": "hour", "title": "Per"},
        "burst_limit": {**js.integer(minimum=0, description="Extra runs allowed on top of the limit in a burst."),
                        "title": "Burst allowance"},
        "reset_strategy": {**js.enum(RESET_STRATEGIES, description="sliding: the last full period; fixed: the "
                                                                   "current calendar minute, hour or day."),
                           "default": "sliding", "title": "Window"},
    }}


def retry_configuration_schema() -> dict:
    """A rule's ``retry_configuration`` (used when "allow retries" is on): how often and how long to wait."""
    properties = {
        "max_retries": {**js.integer(minimum=0, maximum=10, description="At most 10."), "title": "Retries"},
        "delay_minutes": {**js.duration("minutes", minimum=0, maximum=MAX_DELAY_MINUTES,
                                        description="Before the first retry."), "title": "First wait"},
        "backoff_multiplier": {**js.number(minimum=1, description="Each wait is this many times the previous "
                                                                   "(1: always the same)."), "title": "Backoff"},
        "max_delay_hours": {**js.duration("hours", minimum=0, description="No wait is longer than this."),
                            "title": "Longest wait"},
    }
    return {"type": "object", "title": "retries", "x-closed": True,
            "properties": {key: properties[key] for key in RETRY_KEYS}}  # the service's keys: a new one fails here
