"""``evaluate``: a condition tree on one model instance, in memory."""

import datetime
import uuid
from decimal import Decimal

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.utils import timezone

from . import clock, engagements
from .compare import matches
from .errors import ConditionError
from .fields import resolve
from .operands import Prepared, prepare
from .syntax import parse
from .tree import CHANGE_OPERATORS, is_group, iter_leaves
from .values import coerce


def evaluate(tree, obj, *, changes=None, now=None, trace=None) -> bool:
    """Does ``obj`` satisfy ``tree`` (any form ``normalize`` accepts)?

    ``changes`` = ``{field: {"old": x, "new": y}}`` feeds changed / changed_to / changed_from; a change is
    looked up under the field as written in the condition, then under its resolved path, then (for a path
    through one foreign key, e.g. ``stage`` = ``current_stage.name``) under the foreign key, whose old and
    new ids are then read as the related rows' values. ``trace``, if a
    list, receives one JSON-ready dict per leaf: field, operator, expected, actual, passed; every leaf is
    then evaluated (no short-circuit) so the trace is complete.
    """
    root, origins = parse(tree)
    run = _Run(obj, changes or {}, aware(now), trace if isinstance(trace, list) else None, origins)
    return run.node(root)


def one_relation(res):
    """The foreign key of a path through exactly one (``stage`` = ``current_stage.name``), else None."""
    return res.relations[0] if len(res.relations) == 1 and not res.many else None


def change_keys(written: str, res) -> list[str]:
    """Where a save reports a change of the field a condition reads: under the field as written, its resolved
    path, the one foreign key it goes through ("stage" changes as ``current_stage``), or the key itself."""
    relation = one_relation(res)
    keys = [written, res.path] + ([relation.name, relation.attname] if relation else [])
    if res.field is not None and res.field.is_relation:  # "owner", "parent_id": reported as {"parent": ...}
        keys += [res.field.name, res.field.attname]
    return keys


def watched_fields(tree, model) -> list[str]:
    """The change keys a ``field_changed`` rule without a named field watches (seed 003): those of its
    changed / changed_to / changed_from conditions, else of every field its conditions read."""
    named = [leaf for leaf in iter_leaves(parse(tree)[0]) if "field" in leaf and not str(leaf["field"]).startswith("engagements.")]
    chosen = [leaf for leaf in named if leaf.get("operator") in CHANGE_OPERATORS] or named
    keys = []
    for leaf in chosen:
        try:
            res = resolve(model, leaf["field"])
        except ConditionError:
            continue  # validation names it
        if res.virtual:
            continue
        keys += [k for k in change_keys(leaf["field"], res) if k not in keys]
    return keys


def aware(now) -> datetime.datetime:
    now = now or timezone.now()
    return timezone.make_aware(now) if timezone.is_naive(now) else now


class _Run:
    def __init__(self, obj, changes: dict, now: datetime.datetime, trace: list | None, origins):
        self.obj, self.changes, self.now, self.trace, self.origins = obj, changes, now, trace, origins

    def node(self, node: dict) -> bool:
        if not is_group(node):
            return self.leaf(node)
        results = map(self.node, node["conditions"])
        if self.trace is not None:
            results = list(results)
        if node["op"] == "all":
            return all(results)
        return any(results) if node["op"] == "any" else not any(results)

    def leaf(self, leaf: dict) -> bool:
        try:
            p = prepare(leaf, type(self.obj), self.now)
            passed, actual = self.check(leaf, p)
        except ConditionError as exc:
            raise exc.under(self.origins.path_of(leaf)) from None
        if self.trace is not None:
            self.trace.append({"field": leaf["field"], "operator": leaf["operator"], "expected": jsonable(p.expected),
                               "actual": jsonable(actual), "passed": passed})
        return passed

    def check(self, leaf: dict, p: Prepared) -> tuple[bool, object]:
        if p.res is None:  # the clock
            is_open, local = clock.window_open(p.expected, self.now, p.expected["timezone"] or self.tenant_timezone())
            return is_open, local.isoformat()
        if p.op in CHANGE_OPERATORS:
            return self.changed(leaf, p)
        actual = engagements.value(self.obj, p, self.now) if p.res.virtual else read(self.obj, p)
        return matches(p.op, p.res.kind, p.res.many, actual, p.expected), actual

    def changed(self, leaf: dict, p: Prepared) -> tuple[bool, object]:
        # "stage" reads current_stage.name, but a save reports the foreign key: {"current_stage": {ids}}.
        relation = one_relation(p.res)
        key = next((k for k in change_keys(leaf["field"], p.res) if k in self.changes), None)
        if key is None:
            return False, None
        entry = self.changes[key]
        if not isinstance(entry, dict):
            raise TypeError(f"changes[{key!r}] must be {{'old': ..., 'new': ...}}")
        old, new = entry.get("old"), entry.get("new")
        if relation is not None and key in (relation.name, relation.attname):
            old, new = related_values(relation, p.res.field, old, new)
        # Changes may arrive serialised (an event's JSON): read them as the field's type before comparing.
        old, new = self.soft(p.res.kind, old), self.soft(p.res.kind, new)
        moved = old != new
        if p.op == "changed" or not moved:
            return moved, {"old": old, "new": new}
        side = new if p.op == "changed_to" else old
        op = "in" if isinstance(p.expected, list) else "equals"
        return matches(op, p.res.kind, False, side, p.expected), {"old": old, "new": new}

    def soft(self, kind: str, value):
        try:
            return coerce(kind, value, self.now)
        except ConditionError:
            return value

    def tenant_timezone(self) -> str:
        try:
            self.obj._meta.get_field("tenant")
        except FieldDoesNotExist:
            return ""
        return getattr(self.obj.tenant, "timezone", "") or ""


def related_values(relation, field, *keys) -> list:
    """The ``field`` of the related rows with these keys (None for a key that is None or not found)."""
    try:
        keys = [None if key is None else relation.target_field.to_python(key) for key in keys]
    except ValidationError:
        return list(keys)  # not keys after all: compare them as given
    found = dict(relation.related_model._default_manager.filter(pk__in=[k for k in keys if k is not None])
                 .values_list("pk", field.name))
    return [found.get(key) for key in keys]


def read(obj, p: Prepared):
    """The value at the leaf's path: one value (None when a relation on the way is empty), or a list of
    values when the path crosses a many-to-many. Only resolved model fields are read."""
    objects = [obj]
    for relation in p.res.relations:
        following = []
        for current in objects:
            if relation.many_to_many:
                following.extend(getattr(current, relation.name).all())
            elif (target := getattr(current, relation.name)) is not None:
                following.append(target)
        objects = following
    values = [p.res.field.value_from_object(current) for current in objects]
    if p.res.many:
        return values
    return values[0] if values else None


def jsonable(value):
    """Trace values as JSON: numbers stay numbers, dates become ISO text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple, set)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
