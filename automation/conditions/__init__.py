"""The condition language of the automation engine: one canonical tree, checked, evaluated in memory
or compiled to a Q.

    tree = normalize(raw)          # any accepted form -> {"op": "all"|"any"|"none", "conditions": [...]}
    validate(tree, Account)        # when a rule is saved: ConditionError names the path and the reason
    evaluate(tree, account, changes=..., now=..., trace=[])   # one instance (event-driven rules)
    Account.objects.for_tenant(t).filter(to_q(tree, Account, now=...))  # set-based (time-based rules)

Leaves are ``{"field": "account.industry", "operator": "equals", "value": "Software"}``. In short:
text compares case-insensitively; a missing value fails every comparison except is_empty, equals null
and the negative operators (each exactly "not" its twin, in memory and in SQL); on a path with several
values (``tags.name``) a comparison holds when one value satisfies it and ``contains`` is membership;
relative dates ("7 days ago", "in 30 days", "today") are resolved against ``now``.

Where the rest is written down: ``syntax`` (accepted forms, simplification), ``typed`` (seed 001's
typed conditions, churn risk = 100 - health score, engagement history), ``fields`` (paths, aliases,
what may be read), ``values`` (types, relative dates), ``compare``/``memory`` (evaluate), ``query``
(to_q), ``engagements`` (engagement fields), ``clock`` (time windows: ISO days, 0 = Sunday too).

Pure: no model of its own and no writes; it reads the instance and the relations it is given.
"""

from .clock import BUSINESS_HOURS
from .errors import ConditionError, NotCompilable
from .fields import FIELD_ALIASES, USER_FIELDS
from .memory import evaluate, watched_fields
from .query import to_q
from .syntax import normalize
from .tree import MAX_DEPTH, MAX_LEAVES, NOW_FIELD, OPERATOR_ALIASES, OPERATORS, TIME_WINDOW
from .typed import (
    ENGAGEMENT_COUNT, ENGAGEMENT_LAST_DAYS, SIZE_ALIASES, condition_types, register_condition_type,
)
from .validation import validate

__all__ = [
    "BUSINESS_HOURS", "ENGAGEMENT_COUNT", "ENGAGEMENT_LAST_DAYS", "FIELD_ALIASES", "MAX_DEPTH", "MAX_LEAVES",
    "NOW_FIELD", "OPERATORS", "OPERATOR_ALIASES", "SIZE_ALIASES", "TIME_WINDOW", "USER_FIELDS", "ConditionError",
    "NotCompilable", "condition_types", "evaluate", "normalize", "register_condition_type", "to_q", "validate", "watched_fields",
]
