"""Seed 001's typed conditions ``{"type": ..., "config": {...}}``, each compiled to plain leaves.

A type is one function in the ``condition_types`` registry (``csplatform.registry.Registry``, as
triggers, actions and transports): ``(config, path) -> [(config key, node), ...]``; the key says which
setting produced the node, so later errors can name it. ``custom`` and ``group`` are
handled by the parser itself because they contain conditions.
"""

import math
from collections.abc import Callable
from numbers import Real

from csplatform.registry import Registry

from . import clock
from .errors import ConditionError, join_path
from .tree import NOW_FIELD, TIME_WINDOW, leaf

ENGAGEMENT_LAST_DAYS = "engagements.last_days"  # whole days since the last engagement (None: never)
ENGAGEMENT_COUNT = "engagements.count"  # engagements, optionally only the last ``within_days`` days
ENGAGEMENT_FIELDS = frozenset({ENGAGEMENT_LAST_DAYS, ENGAGEMENT_COUNT})

#: Seed 001 speaks of small/medium/large accounts; Account.Size has startup/smb/mid_market/enterprise.
SIZE_ALIASES = {"small": "smb", "medium": "mid_market", "mid-market": "mid_market", "midmarket": "mid_market",
                "large": "enterprise"}

TypeCompiler = Callable[[dict, str], list[tuple[str, dict]]]
condition_types: Registry[TypeCompiler] = Registry("condition type")
#: Decorator: ``@register_condition_type(name)`` makes ``{"type": name, "config": {...}}`` a condition
#: compiled by the function.
register_condition_type = condition_types.register


@register_condition_type("account_filter")
def account_filter(config: dict, path: str) -> list[tuple[str, dict]]:
    """Lists are "one of" (an empty list is no filter, as in a multi-select left empty); *_min/*_max are
    inclusive. Churn risk has no column: it is read as ``100 - health_score``, so ``churn_risk_min: 70``
    means ``health_score <= 30``; accounts without a score match no churn or health bound."""
    _only(config, {"industry", "size", "risk_level", "arr_min", "arr_max", "health_score_min", "health_score_max",
                   "churn_risk_min", "churn_risk_max"}, path)
    out = []
    for key in ("industry", "size", "risk_level"):
        values = _strings(config.get(key), join_path(path, key))
        if key == "size":
            values = [SIZE_ALIASES.get(v.lower(), v) for v in values]
        if values:
            out.append((key, leaf(key, "in", values)))
    bounds = (("arr_min", "arr", "gte"), ("arr_max", "arr", "lte"), ("health_score_min", "health_score", "gte"),
              ("health_score_max", "health_score", "lte"))
    for key, field, op in bounds:
        if config.get(key) is not None:
            out.append((key, leaf(field, op, _number(config[key], join_path(path, key)))))
    for key, op in (("churn_risk_min", "lte"), ("churn_risk_max", "gte")):
        if config.get(key) is not None:
            out.append((key, leaf("health_score", op, 100 - _number(config[key], join_path(path, key)))))
    return out


@register_condition_type("engagement_history")
def engagement_history(config: dict, path: str) -> list[tuple[str, dict]]:
    """The account's engagements of the given types and outcomes: the last one at most
    ``last_engagement_days`` days ago, and at least ``engagement_count_min`` of them in that same window
    (all time without it). Types or outcomes alone mean "has at least one such engagement"."""
    _only(config, {"last_engagement_days", "engagement_count_min", "engagement_types", "outcomes"}, path)
    options = {}
    for key, option in (("engagement_types", "kinds"), ("outcomes", "outcomes")):
        values = _strings(config.get(key), join_path(path, key))
        if values:
            options[option] = values
    days = _whole(config.get("last_engagement_days"), join_path(path, "last_engagement_days"))
    count = _whole(config.get("engagement_count_min"), join_path(path, "engagement_count_min"))
    out = []
    if days is not None:
        out.append(("last_engagement_days", leaf(ENGAGEMENT_LAST_DAYS, "lte", days, dict(options))))
    if count is not None:
        window = {"within_days": days} if days is not None else {}
        out.append(("engagement_count_min", leaf(ENGAGEMENT_COUNT, "gte", count, {**options, **window})))
    if not out and options:
        out.append(("", leaf(ENGAGEMENT_COUNT, "gte", 1, options)))
    return out


@register_condition_type("time_condition")
def time_condition(config: dict, path: str) -> list[tuple[str, dict]]:
    return [("", leaf(NOW_FIELD, TIME_WINDOW, clock.window_config(config, path)))]


def engagement_options(options, path: str) -> dict:
    """Check the ``options`` of an engagement leaf: kinds, outcomes (lists of names), within_days."""
    if not isinstance(options, dict):
        raise ConditionError(path, "Options must be an object with kinds, outcomes and within_days.")
    _only(options, {"kinds", "outcomes", "within_days"}, path)
    out = {key: _strings(options[key], join_path(path, key)) for key in ("kinds", "outcomes") if options.get(key)}
    if options.get("within_days") is not None:
        out["within_days"] = _whole(options["within_days"], join_path(path, "within_days"))
    return out


def _only(config: dict, allowed: set[str], path: str) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConditionError(join_path(path, unknown[0]),
                             f"Unknown setting; expected one of {', '.join(sorted(allowed))}.")


def _strings(value, path: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]  # a single choice written without brackets
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConditionError(path, "Must be a list of names.")
    return list(value)


def _number(value, path: str):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ConditionError(path, "Must be a number.")
    return value


def _whole(value, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value != int(value) \
            or value < 0:
        raise ConditionError(path, "Must be a whole number of 0 or more.")
    return int(value)
