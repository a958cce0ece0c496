"""What one leaf means on a model: its resolved field, whether its operator applies, the value to compare.

``prepare`` is shared by ``validate``, ``evaluate`` and ``to_q``, so a leaf is refused, or understood,
the same way by all three.
"""

from dataclasses import dataclass

from .errors import ConditionError
from .fields import Resolved, resolve
from .tree import CHANGE_OPERATORS, NO_VALUE_OPERATORS, ORDER_OPERATORS, TIME_WINDOW
from .values import coerce

_ORDERED = frozenset({"integer", "number", "date", "datetime", "time"})
_VIRTUAL_OPERATORS = frozenset({"equals", "not_equals", "in", "not_in", "is_empty", "is_not_empty"}) | ORDER_OPERATORS


@dataclass(frozen=True)
class Prepared:
    res: Resolved | None  # None for the clock leaf
    op: str
    expected: object  # the value as the field's type (a list for in/not_in), relative dates resolved
    options: dict


def prepare(leaf: dict, model, now) -> Prepared:
    """Raises ConditionError whose path is relative to the leaf ("field", "operator", "value[1]")."""
    op = leaf["operator"]
    if op == TIME_WINDOW:
        return Prepared(None, op, leaf["value"], {})
    try:
        res = resolve(model, leaf["field"])
    except ConditionError as exc:
        raise exc.under("field") from None
    check_operator(res, op)
    return Prepared(res, op, expected_value(res, op, leaf["value"], now), leaf.get("options") or {})


def check_operator(res: Resolved, op: str) -> None:
    if res.virtual:
        ok = op in _VIRTUAL_OPERATORS
    elif res.many and res.kind == "json":
        ok = False
    elif op in ORDER_OPERATORS:
        ok = res.kind in _ORDERED
    elif op in ("contains", "not_contains"):
        ok = res.many or res.kind in ("text", "json")
    elif op in CHANGE_OPERATORS:
        ok = not res.many
    elif op in ("in", "not_in"):
        ok = res.kind != "json"
    else:
        ok = True
    if not ok:
        what = "a count of days or engagements" if res.virtual else f"a {res.kind}{' list' if res.many else ''} field"
        raise ConditionError("operator", f"'{op}' does not apply to '{res.path}', {what}.")


def expected_value(res: Resolved, op: str, value, now):
    if op in NO_VALUE_OPERATORS:
        return None
    if res.virtual and value is None:
        raise ConditionError("value", f"'{op}' on '{res.path}' needs a whole number.")
    if res.many and value is None:
        raise ConditionError("value", f"'{res.path}' has several values; test it with is_empty / is_not_empty.")
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            try:
                items.append(coerce(res.kind, item, now))
            except ConditionError as exc:
                raise ConditionError(f"value[{i}]", exc.message) from None
        return items
    return coerce(res.kind, value, now)
