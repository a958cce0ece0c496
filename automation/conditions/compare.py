"""Comparing a value read from an instance with the expected one, the way SQL will (see query.py).

Text compares case-insensitively. A missing value (None) fails every comparison but ``is_empty``,
``equals null`` and the negative operators, which are exactly "not" their positive twin. On a path with
several values (``tags.name``) an operator holds when one value satisfies it, ``contains`` means "has a
value equal to", and ``is_empty`` means "no value that is not empty".
"""

import operator

from .tree import NEGATIONS

_ORDER = {"greater_than": operator.gt, "less_than": operator.lt, "gte": operator.ge, "lte": operator.le}


def matches(op: str, kind: str, many: bool, actual, expected) -> bool:
    if op in NEGATIONS:
        return not matches(NEGATIONS[op], kind, many, actual, expected)
    if not many:
        return _one(op, kind, actual, expected)
    if op == "is_empty":
        return all(is_empty(kind, value) for value in actual)
    op = "equals" if op == "contains" else op
    return any(_one(op, kind, value, expected) for value in actual)


def is_empty(kind: str, value) -> bool:
    if value is None:
        return True
    if kind == "text":
        return value == ""
    return kind == "json" and value in ([], {})


def _one(op: str, kind: str, actual, expected) -> bool:
    if op == "is_empty":
        return is_empty(kind, actual)
    if op == "equals" and expected is None:
        return actual is None
    if actual is None:
        return False
    if op == "equals":
        return _same(kind, actual, expected)
    if op == "in":
        return any(_same(kind, actual, item) for item in expected)
    if op in _ORDER:
        return _ORDER[op](actual, expected)
    if op == "contains":
        if kind == "json":  # a JSON list holds the value (PostgreSQL's @>), true and 1 being different
            return isinstance(actual, list) and any(
                item == expected and isinstance(item, bool) == isinstance(expected, bool) for item in actual)
        return expected.casefold() in actual.casefold()
    raise ValueError(f"no in-memory comparison for '{op}'")  # pragma: no cover


def _same(kind: str, actual, expected) -> bool:
    if kind == "text":
        return actual.casefold() == expected.casefold()
    return actual == expected
