"""A rule's definition as plain data: what a draft holds, what a ``WorkflowVersion`` keeps, and the rule as it
would be with its draft applied (for editing on top of a draft, and for showing it).

A definition is every rule field except the two switches (``status``, ``enabled``), which apply at once and
are never drafted, plus ``scope_accounts`` as a sorted list of account ids. Two definitions are equal
exactly when the rule would behave the same, so "did this edit change anything" is one comparison.
"""

from __future__ import annotations

import copy
import json
from typing import Iterable

from django.core.serializers.json import DjangoJSONEncoder

RULE_FIELDS = ("name", "description", "status", "enabled", "trigger_type", "model_type", "trigger_config",
               "conditions", "actions", "scope_all_accounts", "continue_on_error", "cooldown_minutes",
               "rate_limiting", "debug_mode", "allow_retries", "retry_configuration", "delay_minutes",
               "failure_threshold", "source")
SWITCHES = ("status", "enabled")
CONTENT_FIELDS = tuple(name for name in RULE_FIELDS if name not in SWITCHES)
DEFINITION_KEYS = (*CONTENT_FIELDS, "scope_accounts")


def scope_ids(accounts: Iterable) -> list[str]:
    """Accounts (rows or ids) as the sorted id strings a definition keeps."""
    return sorted(str(getattr(account, "pk", account)) for account in accounts or [])


def definition_of(rule, scope: list[str] | None = None) -> dict:
    """The rule's definition; ``scope`` (ids) when the rule's own many-to-many does not hold it yet."""
    data = {name: getattr(rule, name) for name in CONTENT_FIELDS}
    if scope is None:
        scope = getattr(rule, "draft_scope", None)
    if scope is None:
        scope = scope_ids(rule.scope_accounts.all()) if rule.pk is not None else []
    data["scope_accounts"] = scope_ids(scope)
    # Plain JSON, as the JSONField will give it back: compared with a stored draft, nothing differs by type.
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def apply_definition(rule, definition: dict):
    """An unsaved copy of ``rule`` holding ``definition`` (its switches, id and run figures are the rule's).
    Its scope is ``draft_scope`` (ids): the copy's many-to-many still reads the live rows."""
    view = copy.copy(rule)
    for name in CONTENT_FIELDS:
        if name in definition:
            setattr(view, name, copy.deepcopy(definition[name]))
    view.draft_scope = scope_ids(definition.get("scope_accounts"))
    view.draft = None  # the copy is the draft: it has none of its own
    return view


def draft_view(rule):
    """The rule as it will be once its draft is published (a copy of the rule itself when it has none).
    Always a copy with its own JSON values, so validating an edit on it never touches ``rule``."""
    return apply_definition(rule, rule.draft if rule.draft is not None else definition_of(rule))
