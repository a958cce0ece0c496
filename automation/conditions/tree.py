"""The canonical tree: its vocabulary, limits and node builders.

A tree is ``{"op": "all"|"any"|"none", "conditions": [...]}``; each condition is a group again or a
leaf ``{"field": str, "operator": str, "value": any}`` (leaves on engagement fields may also carry
``"options"``). Trees are plain JSON, so a normalised tree can be stored and normalised again unchanged.
"""

MAX_DEPTH = 10  # nested groups, the root being 1
MAX_LEAVES = 200
MAX_LIST_ITEMS = 1000  # values of one in/not_in list

GROUP_OPS = ("all", "any", "none")

NOW_FIELD = "__now__"  # the clock: the only field of a time_window leaf
TIME_WINDOW = "time_window"

ORDER_OPERATORS = frozenset({"greater_than", "less_than", "gte", "lte"})
CHANGE_OPERATORS = frozenset({"changed", "changed_to", "changed_from"})
NO_VALUE_OPERATORS = frozenset({"is_empty", "is_not_empty", "changed"})
LIST_OPERATORS = frozenset({"in", "not_in"})
# Each negative operator is exactly "not" its positive twin, in memory and in SQL.
NEGATIONS = {"not_equals": "equals", "not_in": "in", "not_contains": "contains", "is_not_empty": "is_empty"}

#: Every canonical operator a normalised tree may contain (``time_window`` only on ``__now__``).
OPERATORS = frozenset({
    "equals", "not_equals", "greater_than", "less_than", "gte", "lte", "in", "not_in", "contains", "not_contains",
    "is_empty", "is_not_empty", "changed", "changed_to", "changed_from", TIME_WINDOW,
})

#: Other spellings (seeds 001/003, symbols, short forms) -> canonical name. Matched case-insensitively,
#: with spaces and hyphens read as underscores ("greater than or equal" works).
OPERATOR_ALIASES = {
    "eq": "equals", "equal": "equals", "is": "equals", "=": "equals", "==": "equals",
    "neq": "not_equals", "ne": "not_equals", "not_equal": "not_equals", "is_not": "not_equals", "!=": "not_equals",
    "<>": "not_equals",
    "gt": "greater_than", ">": "greater_than",
    "lt": "less_than", "<": "less_than",
    "ge": "gte", "greater_than_or_equal": "gte", "greater_than_or_equals": "gte", "greater_or_equal": "gte",
    ">=": "gte",
    "le": "lte", "less_than_or_equal": "lte", "less_than_or_equals": "lte", "less_or_equal": "lte", "<=": "lte",
    "nin": "not_in", "not_one_of": "not_in", "one_of": "in",
    "does_not_contain": "not_contains", "not_contain": "not_contains",
    "empty": "is_empty", "is_null": "is_empty", "not_empty": "is_not_empty", "is_not_null": "is_not_empty",
    "exists": "is_not_empty",
}


def leaf(field: str, operator: str, value=None, options: dict | None = None) -> dict:
    node = {"field": field, "operator": operator, "value": value}
    if options:
        node["options"] = options
    return node


def group(op: str, conditions: list) -> dict:
    return {"op": op, "conditions": conditions}


def is_group(node: dict) -> bool:
    return "op" in node


def iter_leaves(node: dict):
    if is_group(node):
        for child in node["conditions"]:
            yield from iter_leaves(child)
    else:
        yield node
