"""The JSON schemas of a rule's parts, derived from what the registries declare (nothing is declared twice).

* ``config_schema(item)``: a trigger's ``trigger_config`` or an action's ``config``, from the item's declarations:
  a trigger's ``settings`` (each setting with its schema), an action's ``required``, ``templated``, ``known``,
  ``aliases`` and ``settings_schema`` (what a setting holds when it is not plain text). Every action also takes
  the engine's ``delay`` (``automation.waits``).
* ``actions_schema()``: a rule's ``actions``, a list of ``{type, config}``, one variant per registered action.
* ``conditions_schema()``: the canonical condition tree (``automation.conditions.tree``): a group of leaves.

The admin's editors are made from these (``automation.admin.editors``); what they post is validated by the same
code as the API's (``services.workflow_validate``), so a schema only decides which inputs are offered.
"""

from __future__ import annotations

from csplatform import json_schema as js

from .actions import Action, actions
from .conditions.tree import GROUP_OPS, LIST_OPERATORS, NO_VALUE_OPERATORS, OPERATORS, TIME_WINDOW
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
