"""An inbound webhook's JSON body as a subject the condition language (and so ``engine.fire``) can read.

``conditions.evaluate`` reads model instances: it resolves each condition's field through the model's
``_meta`` and reads the value with ``field.value_from_object``. A webhook body has no model, so ``subject``
describes the body's top-level keys that the rule's conditions name as unsaved Django fields of a small
throwaway class, typed from the values (a number compares as a number, ``"2025-01-31"`` under ``less_than``
as a date). That keeps one condition language and lets the engine record the trace and skip reasons as
for any other rule. Only top-level keys can be read: ``check_conditions`` refuses dotted paths when the
rule is saved. ``running`` builds the subject of every webhook run (inbound, executed, tested); the rule
APIs check conditions with ``check_conditions``. (A dict entry point in ``automation.conditions`` would
remove the need for this module.)
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils import timezone

from .conditions import ConditionError
from .conditions.syntax import parse
from .conditions.tree import CHANGE_OPERATORS, NO_VALUE_OPERATORS, NOW_FIELD, ORDER_OPERATORS, iter_leaves
from .conditions.values import coerce

_FIELD_TYPES = {"text": models.TextField, "number": models.FloatField, "bool": models.BooleanField,
                "datetime": models.DateTimeField, "json": models.JSONField}
_TEXT_OPERATORS = frozenset({"contains", "not_contains"})


def check_conditions(raw) -> None:
    """Refuse, when a webhook rule is saved, conditions its body cannot answer; ConditionError names the
    path in the input. Malformed trees are left to the service, which reports them the usual way."""
    try:
        root, origins = parse(raw)
    except ConditionError:
        return
    for leaf in iter_leaves(root):
        if leaf["field"] == NOW_FIELD:
            continue
        at = origins.path_of(leaf)
        if "." in leaf["field"] or leaf.get("options"):
            raise ConditionError(f"{at}.field" if at else "field",
                                 f"'{leaf['field']}': a webhook rule reads top-level keys of the JSON body only.")
        if leaf["operator"] in CHANGE_OPERATORS:
            raise ConditionError(f"{at}.operator" if at else "operator",
                                 f"'{leaf['operator']}' needs a saved change; a webhook body has none.")
        if leaf["operator"] in ORDER_OPERATORS and _kind(leaf["value"], ("number", "datetime")) is None:
            raise ConditionError(f"{at}.value" if at else "value",
                                 f"'{leaf['operator']}' needs a number or a date, not {leaf['value']!r}.")


def subject(tree, body: dict):
    """The body as an object ``conditions.evaluate`` (and ``engine.fire``) can read."""
    now = timezone.now()
    leaves: dict[str, list[dict]] = {}
    for leaf in iter_leaves(parse(tree)[0]):
        if leaf["field"] != NOW_FIELD and "." not in leaf["field"]:
            leaves.setdefault(leaf["field"], []).append(leaf)
    schema, values = [], {}
    for name, named in sorted(leaves.items()):
        kind, value = _typed(body.get(name), named, now)
        schema.append((name, kind))
        values[name] = value
    return _body_class(tuple(schema))(body, values)


class WebhookBody:
    """An unsaved, model-less subject: ``pk`` is empty and ``_meta`` lists the typed fields."""

    _meta: "_Meta"

    def __init__(self, body: dict, values: dict):
        self.pk = ""
        self.body = body
        for name, value in values.items():
            setattr(self, _attname(name), value)


class _Meta:
    app_label, model_name, object_name, label = "automation", "webhook", "WebhookBody", "automation.WebhookBody"

    def __init__(self, fields: dict):
        self._fields = fields

    def get_field(self, name: str):
        try:
            return self._fields[name]
        except KeyError:
            raise FieldDoesNotExist(f"the webhook body has no '{name}'") from None


def _attname(name: str) -> str:
    # Kept apart from the wrapper's own attributes: a body may well have a key called "pk" or "body".
    return f"_body_{name}"


@lru_cache(maxsize=256)  # one class per shape of body: conditions.fields caches its answers per class
def _body_class(schema: tuple[tuple[str, str], ...]) -> type:
    fields = {}
    for name, kind in schema:
        field = _FIELD_TYPES[kind](null=True)
        field.set_attributes_from_name(name)
        field.attname = _attname(name)
        fields[name] = field
    return type("WebhookBody", (WebhookBody,), {"_meta": _Meta(fields)})


def _typed(actual, leaves: list[dict], now) -> tuple[str, object]:
    """The kind this key is compared as, and its value as that kind. The first kind that fits the body's
    value, every expected value and every operator wins; a value that fits none is read as missing (which
    fails every comparison but the negative ones and is_empty), never an error at run time."""
    expected = [v for leaf in leaves if leaf["operator"] not in NO_VALUE_OPERATORS
                for v in (leaf["value"] if isinstance(leaf["value"], list) else [leaf["value"]]) if v is not None]
    operators = {leaf["operator"] for leaf in leaves}

    def fits(kind: str) -> bool:
        return _operators_fit(kind, operators) and all(_as(kind, v, now) is not None for v in expected)

    for kind in _candidates(actual, operators):
        if fits(kind):
            value = _as(kind, actual, now) if actual is not None else None
            if actual is None or value is not None:
                return kind, value
    # The body's value cannot be compared the way the rule expects: read it as missing.
    for kind in _candidates(expected[0] if expected else None, operators):
        if fits(kind):
            return kind, None
    return "text", None


def _candidates(value, operators: set[str]) -> list[str]:
    ordered = bool(operators & ORDER_OPERATORS)
    if isinstance(value, bool):
        return ["bool", "text"]
    if isinstance(value, (int, float, Decimal)):
        return ["number", "text"]
    if isinstance(value, str):
        return ["number", "datetime", "text"] if ordered else ["text", "bool", "number"]
    if isinstance(value, (list, dict)):
        return ["json"]
    return ["text"]


def _operators_fit(kind: str, operators: set[str]) -> bool:
    if operators & ORDER_OPERATORS and kind not in ("number", "datetime"):
        return False
    if operators & _TEXT_OPERATORS and kind not in ("text", "json"):
        return False
    return not (kind == "json" and operators & {"in", "not_in", *ORDER_OPERATORS})


def _as(kind: str, value, now):
    try:
        return coerce(kind, value, now)
    except ConditionError:
        return None


def _kind(value, kinds) -> str | None:
    now = timezone.now()
    return next((k for k in kinds if _as(k, value, now) is not None), None)
