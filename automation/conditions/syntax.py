"""``normalize``: every accepted way of writing conditions -> one canonical tree.

Accepted forms, freely nested:

* ``None`` / ``{}`` / ``[]``: no conditions (always true);
* a leaf ``{"field", "operator", "value"}``;
* ``{"all"|"any"|"none": [...]}`` and the canonical ``{"op": ..., "conditions": [...]}``;
* a list (= all), which may use seed 003's separators ``[A, {"logic": "OR"}, B]`` and
  ``{"group": [...]}`` items; AND binds tighter than OR, so ``A AND B OR C`` is ``(A AND B) OR C``;
* ``{"logic": "AND"|"OR"|"NONE", "conditions": [...]}``, also with ``"type": "group"``;
* seed 001's typed conditions ``{"type": "account_filter"|"time_condition"|"engagement_history"|"custom",
  "config": {...}}`` and its ``condition_config`` keyed by type: ``{"account_filter": {...}, ...}``.

The result is simplified so that equivalent inputs give equal trees: a group of one condition is that
condition, an all inside an all (any inside any) is merged into it, and the root is always a group.
Errors name the path in the input, e.g. ``conditions[2].group[0].operator``.
"""

import math
import re

from . import clock
from .errors import ConditionError, join_path
from .tree import (
    GROUP_OPS, LIST_OPERATORS, MAX_DEPTH, MAX_LEAVES, MAX_LIST_ITEMS, NO_VALUE_OPERATORS, NOW_FIELD, OPERATOR_ALIASES,
    OPERATORS, TIME_WINDOW, group, is_group, leaf,
)
from .typed import ENGAGEMENT_FIELDS, condition_types, engagement_options

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_LOGIC = {"and": "all", "all": "all", "or": "any", "any": "any", "none": "none", "not": "none"}
_LEAF_KEYS = {"field", "operator", "value", "options"}
_MAX_TEXT = 10_000


class Origins:
    """Where each node of a canonical tree came from in the input, for error messages."""

    def __init__(self):
        self._paths: dict[int, tuple[dict, str]] = {}  # id -> (node, path); holding the node keeps its id unique

    def mark(self, node: dict, path: str) -> dict:
        self._paths[id(node)] = (node, path)
        return node

    def path_of(self, node: dict) -> str:
        entry = self._paths.get(id(node))
        return entry[1] if entry and entry[0] is node else ""


def normalize(raw) -> dict:
    """The canonical tree of ``raw``; raises ConditionError naming the path of the first problem."""
    return parse(raw)[0]


def parse(raw) -> tuple[dict, Origins]:
    """``normalize`` plus the input path of every node (used by validate, evaluate and to_q)."""
    parser = _Parser()
    node = _unwrap(parser.node(raw, "", 0)) if raw is not None else group("all", [])
    if not is_group(node):
        node = group("all", [node])
    return parser.origins.mark(node, ""), parser.origins


class _Parser:
    def __init__(self):
        self.origins = Origins()
        self.leaves = 0

    def mark(self, node: dict, path: str) -> dict:
        if not is_group(node):
            self.leaves += 1
            if self.leaves > MAX_LEAVES:
                raise ConditionError(path, f"Too many conditions: at most {MAX_LEAVES}.")
        return self.origins.mark(node, path)

    def node(self, raw, path: str, depth: int) -> dict:
        """One condition of any form; ``depth`` is that of the group containing it."""
        if isinstance(raw, list):
            return self.sequence(raw, path or "conditions", path, depth + 1, op=None)
        if not isinstance(raw, dict):
            raise ConditionError(path, "A condition must be an object or a list of conditions.")
        keys = set(raw)
        if not keys:
            return self.origins.mark(group("all", []), path)
        if len(keys) == 1 and keys <= set(GROUP_OPS):
            (op,) = keys
            return self.sequence(raw[op], join_path(path, op), path, depth + 1, op=op)
        if "op" in keys:
            _only(raw, {"op", "conditions"}, path)
            if raw["op"] not in GROUP_OPS:
                raise ConditionError(join_path(path, "op"), "Must be all, any or none.")
            return self.sequence(raw.get("conditions", []), join_path(path, "conditions"), path, depth + 1, raw["op"])
        if "type" in keys:
            return self.typed(raw, path, depth)
        if keys & {"conditions", "group"}:
            return self.logic_group(raw, path, depth)
        if "field" in keys:
            return self.leaf(raw, path)
        if keys <= _type_names():
            # Seed 001's condition_config: {"account_filter": {...}, "time_condition": {...}} = all of them.
            children = [self.typed_config(name, raw[name], join_path(path, name), depth + 1) for name in sorted(keys)]
            return self.origins.mark(_simplify(group("all", children)), path)
        if keys == {"logic"}:
            raise ConditionError(path, "A logic separator belongs between two conditions of a list.")
        raise ConditionError(path, f"Unrecognised condition (keys: {', '.join(sorted(map(str, keys)))}); expected "
                                   "field/operator/value, all/any/none, logic/conditions or type/config.")

    def sequence(self, items, list_path: str, path: str, depth: int, op: str | None) -> dict:
        """A list of conditions; ``op`` None means an implicit AND that may contain logic separators."""
        if depth > MAX_DEPTH:
            raise ConditionError(path or "conditions", f"Conditions are nested too deep: at most {MAX_DEPTH} levels.")
        if not isinstance(items, list):
            raise ConditionError(list_path, "Must be a list of conditions.")
        if len(items) > 2 * MAX_LEAVES + 1:  # fail fast before walking a huge list
            raise ConditionError(list_path, f"Too many conditions: at most {MAX_LEAVES}.")
        segments: list[list[dict]] = [[]]
        pending = None  # a separator waiting for the condition on its right
        for i, item in enumerate(items):
            at = f"{list_path}[{i}]"
            if isinstance(item, dict) and set(item) == {"logic"}:
                if op is not None:
                    raise ConditionError(at, "Logic separators only belong in a plain list of conditions.")
                if pending is not None or not segments[-1]:
                    raise ConditionError(at, "A logic separator must sit between two conditions.")
                pending = _logic(item["logic"], join_path(at, "logic"), separator=True)
                continue
            if pending == "any":
                segments.append([])
            pending = None
            segments[-1].append(self.node(item, at, depth))
        if pending is not None:
            raise ConditionError(f"{list_path}[{len(items) - 1}]", "A logic separator must sit between two conditions.")
        if len(segments) == 1:
            return self.origins.mark(_simplify(group(op or "all", segments[0])), path)
        if depth + 1 > MAX_DEPTH:  # "A AND B OR C" becomes any[all[A, B], C]: one level more
            raise ConditionError(path or "conditions", f"Conditions are nested too deep: at most {MAX_DEPTH} levels.")
        ands = [self.origins.mark(_simplify(group("all", segment)), path) for segment in segments]
        return self.origins.mark(_simplify(group("any", ands)), path)

    def logic_group(self, raw: dict, path: str, depth: int) -> dict:
        _only(raw, {"type", "logic", "conditions", "group"}, path)
        if "conditions" in raw and "group" in raw:
            raise ConditionError(path, "Give either conditions or group, not both.")
        key = "conditions" if "conditions" in raw else "group"
        op = _logic(raw["logic"], join_path(path, "logic")) if raw.get("logic") is not None else None
        return self.sequence(raw[key], join_path(path, key), path, depth + 1, op)

    def typed(self, raw: dict, path: str, depth: int) -> dict:
        name = raw["type"]
        if name == "group":
            return self.logic_group(raw, path, depth)
        if not isinstance(name, str) or name not in _type_names():
            raise ConditionError(join_path(path, "type"), f"Unknown condition type '{name}'; expected one of "
                                                          f"{', '.join(sorted(_type_names() | {'group'}))}.")
        _only(raw, {"type", "config"}, path)
        return self.typed_config(name, raw.get("config"), join_path(path, "config"), depth + 1)

    def typed_config(self, name: str, config, path: str, depth: int) -> dict:
        if depth > MAX_DEPTH:
            raise ConditionError(path, f"Conditions are nested too deep: at most {MAX_DEPTH} levels.")
        config = {} if config is None else config
        if not isinstance(config, dict):
            raise ConditionError(path, "The config of a condition must be an object.")
        if name == "custom":
            return self.leaf(config, path)
        children = [self.mark(node, join_path(path, key)) for key, node in condition_types.get(name)(config, path)]
        return self.origins.mark(_simplify(group("all", children)), path)

    def leaf(self, raw: dict, path: str) -> dict:
        _only(raw, _LEAF_KEYS, path)
        field = raw.get("field")
        field = field.strip() if isinstance(field, str) else field
        if not isinstance(field, str) or len(field) > 200 or not _FIELD.fullmatch(field):
            raise ConditionError(join_path(path, "field"),
                                 "A condition needs a field name such as 'industry' or 'account.industry'.")
        op = _operator(raw.get("operator"), join_path(path, "operator"))
        if (field == NOW_FIELD) != (op == TIME_WINDOW):
            raise ConditionError(join_path(path, "operator"),
                                 f"'{TIME_WINDOW}' is the operator of the clock field '{NOW_FIELD}' only.")
        value = _value(op, raw.get("value"), join_path(path, "value"))
        options = None
        if raw.get("options") is not None:
            if field not in ENGAGEMENT_FIELDS:
                raise ConditionError(join_path(path, "options"), "Only engagement fields take options.")
            options = engagement_options(raw["options"], join_path(path, "options"))
        return self.mark(leaf(field, op, value, options), path)


def _value(op: str, value, path: str):
    """The value checked for its shape; what it means for a field is checked later, against the model."""
    if op in NO_VALUE_OPERATORS:
        return None
    if op == TIME_WINDOW:
        return clock.window_config(value, path)
    if op in LIST_OPERATORS or (op in ("changed_to", "changed_from") and isinstance(value, list)):
        if not isinstance(value, list):
            raise ConditionError(path, f"'{op}' needs a list of values, e.g. [\"a\", \"b\"].")
        if len(value) > MAX_LIST_ITEMS:
            raise ConditionError(path, f"At most {MAX_LIST_ITEMS} values.")
        if not all(v is not None and _scalar(v) for v in value):
            raise ConditionError(path, "List items must be text, numbers or true/false; test null with is_empty.")
        return list(value)
    if not _scalar(value):
        raise ConditionError(path, f"'{op}' needs a single value: text, a number, true/false or null.")
    if value is None and op not in ("equals", "not_equals", "changed_to", "changed_from"):
        raise ConditionError(path, f"'{op}' needs a value.")
    return value


def _scalar(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= _MAX_TEXT
    return value is None or isinstance(value, (bool, int))


def _operator(raw, path: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConditionError(path, "A condition needs an operator.")
    key = re.sub(r"[\s-]+", "_", raw.strip().lower())
    name = OPERATOR_ALIASES.get(key, key)
    if name not in OPERATORS:
        raise ConditionError(path, f"Unknown operator '{raw}'; use one of "
                                   f"{', '.join(sorted(OPERATORS - {TIME_WINDOW}))}.")
    return name


def _logic(raw, path: str, separator: bool = False) -> str:
    op = _LOGIC.get(raw.strip().lower()) if isinstance(raw, str) else None
    if op is None or (separator and op == "none"):
        raise ConditionError(path, "Logic must be AND or OR." if separator else "Logic must be AND, OR or NONE.")
    return op


def _only(raw: dict, allowed: set[str], path: str) -> None:
    unknown = sorted(map(str, set(raw) - allowed))
    if unknown:
        raise ConditionError(join_path(path, unknown[0]), f"Unknown key; expected {', '.join(sorted(allowed))}.")


def _type_names() -> set[str]:
    return set(condition_types.keys()) | {"custom"}


def _unwrap(node: dict) -> dict:
    """all/any of a single condition is that condition."""
    while is_group(node) and node["op"] != "none" and len(node["conditions"]) == 1:
        node = node["conditions"][0]
    return node


def _simplify(node: dict) -> dict:
    """Unwrap single-condition children and merge children with the same associative op (all, any)."""
    op, out = node["op"], []
    for child in map(_unwrap, node["conditions"]):
        if is_group(child) and child["op"] == op and op != "none":
            out.extend(child["conditions"])
        else:
            out.append(child)
    return group(op, out)
