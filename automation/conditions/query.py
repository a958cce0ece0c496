"""``to_q``: the semantics of ``evaluate`` as one Q, for set-based evaluation over a queryset.

Django's negation adds ``IS NOT NULL`` to negated lookups on nullable columns and joins, which makes
SQL's three-valued logic agree with the two-valued logic of ``evaluate`` (``not_equals`` holds on a
missing value, ``greater_than`` does not). Paths with several values per row (``tags.name``) are tested
in a ``pk IN (subquery)`` so that two conditions on tags need not hold on the same tag.
"""

from functools import reduce
from operator import and_, or_

from django.db import connections, router
from django.db.models import Q

from . import engagements
from .engagements import NOTHING
from .errors import ConditionError, NotCompilable
from .memory import aware
from .operands import Prepared, prepare
from .syntax import parse
from .tree import CHANGE_OPERATORS, NEGATIONS, is_group

_ORDER = {"greater_than": "gt", "less_than": "lt", "gte": "gte", "lte": "lte"}


def to_q(tree, model, *, now=None) -> Q:
    """A Q selecting the rows of ``model`` that satisfy ``tree``; the caller scopes the queryset to the
    tenant. Raises NotCompilable for changed* (they need one save's changes) and time conditions."""
    root, origins = parse(tree)
    return _Compiler(model, aware(now), origins).node(root)


class _Compiler:
    def __init__(self, model, now, origins):
        self.model, self.now, self.origins = model, now, origins

    def node(self, node: dict) -> Q:
        if not is_group(node):
            return self.leaf(node)
        parts = [self.node(child) for child in node["conditions"]]
        if node["op"] == "all":
            return reduce(and_, parts, Q())
        if not parts:
            return NOTHING if node["op"] == "any" else Q()
        either = reduce(or_, parts)
        return either if node["op"] == "any" else ~either

    def leaf(self, leaf: dict) -> Q:
        path = self.origins.path_of(leaf)
        try:
            p = prepare(leaf, self.model, self.now)
        except ConditionError as exc:
            raise exc.under(path) from None
        if p.res is None:
            raise NotCompilable(path, "A time condition depends on the clock, not on rows; check it with evaluate.")
        if p.op in CHANGE_OPERATORS:
            raise NotCompilable(path, f"'{p.op}' needs the changes of one save; check it with evaluate.")
        if p.res.virtual:
            return engagements.to_q(p, self.now)
        if p.op in NEGATIONS:
            return ~self.positive(NEGATIONS[p.op], p, path)
        return self.positive(p.op, p, path)

    def positive(self, op: str, p: Prepared, path: str) -> Q:
        if not p.res.many:
            return self.row(op, p, path)
        if op == "is_empty":
            return ~self.having(self.non_empty(p))
        return self.having(self.row("equals" if op == "contains" else op, p, path))

    def having(self, q: Q) -> Q:
        return Q(pk__in=self.model._default_manager.filter(q).values("pk"))

    def row(self, op: str, p: Prepared, path: str) -> Q:
        """The lookup for one value; positive, so that inside a subquery it speaks of one related row."""
        lookup, kind, expected = p.res.lookup, p.res.kind, p.expected
        if op == "equals":
            if expected is None:
                return Q(**{f"{lookup}__isnull": True})
            return Q(**{f"{lookup}__iexact" if kind == "text" else lookup: expected})
        if op == "in":
            if kind != "text":
                return Q(**{f"{lookup}__in": expected})
            return reduce(or_, (Q(**{f"{lookup}__iexact": item}) for item in expected)) if expected else NOTHING
        if op in _ORDER:
            return Q(**{f"{lookup}__{_ORDER[op]}": expected})
        if op == "contains":
            if kind != "json":
                return Q(**{f"{lookup}__icontains": expected})
            if not connections[router.db_for_read(self.model)].features.supports_json_field_contains:
                raise NotCompilable(path, "This database cannot test membership in a JSON list; use evaluate.")
            return Q(**{f"{lookup}__contains": [expected]})
        if op == "is_empty":
            q = Q(**{f"{lookup}__isnull": True})
            if kind == "text":
                q |= Q(**{lookup: ""})
            elif kind == "json":
                q |= Q(**{lookup: []}) | Q(**{lookup: {}})
            return q
        raise AssertionError(f"no SQL for '{op}'")  # pragma: no cover

    def non_empty(self, p: Prepared) -> Q:
        # "> ''" is "not null and not empty" in one positive lookup, so it stays on one related row.
        return Q(**{f"{p.res.lookup}__gt": ""} if p.res.kind == "text" else {f"{p.res.lookup}__isnull": False})
