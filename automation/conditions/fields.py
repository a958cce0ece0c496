"""Resolving a dotted field path on a model, and the rules that keep a path inside the tenant.

A path walks concrete fields and forward relations only (foreign keys, one-to-ones, many-to-manys
declared on the model), every step through a tenant-owned model. Refused: the ``tenant`` relation and
anything else leading out of the tenant, reverse relations, private (``_``) and secret-looking names,
and every attribute of a user but ``USER_FIELDS``. A path that ends on a relation compares the related
object's ``name`` when it has one (``tags contains "vip"``, ``parent equals "GlobalTech"``), else its
key (``owner``, ``parent_id``). Aliases, applied to the first step when the model has no field of that
name, are ``FIELD_ALIASES``; on an account, seed 003's ``company.`` prefix is the account itself.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from csplatform.tenancy import TenantOwnedModel

from .errors import ConditionError
from .typed import ENGAGEMENT_FIELDS

#: First step of a path -> the field it stands for (seed 003's ``company.employee_count`` on a contact is
#: ``account.employee_count``; on an account it is its own ``employee_count``).
FIELD_ALIASES = {"company": "account", "stage": "current_stage"}
#: The only attributes of a user (``owner.email`` ...) a condition may read.
USER_FIELDS = frozenset({"email", "first_name", "last_name"})
MAX_STEPS = 4
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SECRET = ("password", "secret", "token", "api_key", "apikey")
# Engagement fields read by the virtual engagement fields; checked to exist on the related model.
ENGAGEMENT_COLUMNS = ("occurred_at", "kind", "outcome")

_KINDS = {
    "CharField": "text", "TextField": "text", "EmailField": "text", "SlugField": "text", "URLField": "text",
    "IntegerField": "integer", "BigIntegerField": "integer", "SmallIntegerField": "integer",
    "PositiveIntegerField": "integer", "PositiveBigIntegerField": "integer", "PositiveSmallIntegerField": "integer",
    "AutoField": "integer", "BigAutoField": "integer", "SmallAutoField": "integer",
    "DecimalField": "number", "FloatField": "number", "BooleanField": "bool",
    "DateField": "date", "DateTimeField": "datetime", "TimeField": "time", "UUIDField": "uuid", "JSONField": "json",
}


@dataclass(frozen=True)
class Resolved:
    path: str  # the path after aliases and the name rule, e.g. "parent.name"
    kind: str  # text, integer, number, bool, date, datetime, time, uuid, json
    field: models.Field | None = None  # the compared field (None for a virtual field)
    relations: tuple = ()  # relation fields walked from the model to the object holding ``field``
    many: bool = False  # a many-to-many on the way: the path has several values
    virtual: str = ""  # engagements.last_days / engagements.count
    reverse: object = None  # for virtual fields: the reverse relation to the engagements

    @property
    def lookup(self) -> str:
        """The ORM lookup, e.g. ``account__industry``."""
        return "__".join([r.name for r in self.relations] + ([self.field.name] if self.field else []))

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(str(c[0]) for c in (self.field.flatchoices or ())) if self.field is not None else ()


@lru_cache(maxsize=2048)
def resolve(model: type[models.Model], path: str) -> Resolved:
    """Resolve ``path`` on ``model``; raises ConditionError (without a path prefix) when it may not be read."""
    steps = path.split(".")
    if len(steps) > MAX_STEPS:
        raise ConditionError("", f"'{path}' is too long a path: at most {MAX_STEPS} steps.")
    steps = _aliased(model, steps, path)
    if ".".join(steps) in ENGAGEMENT_FIELDS:
        return _engagement_field(model, ".".join(steps))
    relations, current, many = [], model, False
    for i, name in enumerate(steps):
        _check_name(name, path)
        field = _forward_field(current, name, path)
        last = i == len(steps) - 1
        if not field.is_relation:
            if not last:
                raise ConditionError("", f"'{name}' in '{path}' is not a relation, so nothing follows it.")
            return Resolved(".".join(steps), _kind(field, path), field, tuple(relations), many)
        target = field.related_model
        _check_target(field, target, steps[i + 1:], path)
        if last and (name != field.name or _name_field(target) is None):  # "parent_id", or no name to compare
            if field.many_to_many:
                raise ConditionError("", f"Name a field of '{name}', e.g. '{name}.name'.")
            # Compare the key itself: owner, parent_id.
            return Resolved(".".join(steps), _kind(field.target_field, path), field, tuple(relations), many)
        relations.append(field)
        many = many or field.many_to_many
        current = target
        if last:
            steps.append("name")  # a path ending on a relation compares the related object's name
            return Resolved(".".join(steps), "text", _name_field(target), tuple(relations), many)
    raise AssertionError("unreachable")  # pragma: no cover


def _aliased(model, steps: list[str], path: str) -> list[str]:
    first = steps[0]
    if first not in FIELD_ALIASES or _has_field(model, first):
        return steps
    if first == "company" and not _has_field(model, "account") and model._meta.model_name == "account":
        if len(steps) == 1:
            raise ConditionError("", "Name a field of the company, e.g. 'company.employee_count'.")
        return steps[1:]
    return [FIELD_ALIASES[first], *steps[1:]]


def _has_field(model, name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def _check_name(name: str, path: str) -> None:
    if name.startswith("_"):
        raise ConditionError("", f"'{path}' uses the private name '{name}'.")
    if not _NAME.fullmatch(name) or any(word in name for word in _SECRET):
        raise ConditionError("", f"'{name}' in '{path}' may not be used in conditions.")


def _forward_field(model, name: str, path: str) -> models.Field:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        raise ConditionError("", f"Unknown field '{name}' on {model._meta.object_name} (in '{path}').") from None
    # get_field also finds reverse relations (Account.contacts) and private fields; a path follows
    # concrete columns and relations declared on the model only.
    if not isinstance(field, models.Field) or not (field.concrete or field.many_to_many):
        raise ConditionError("", f"'{name}' on {model._meta.object_name} is not a field declared on it (reverse "
                                 f"relations cannot be followed), in '{path}'.")
    return field


def _check_target(field, target, rest: list[str], path: str) -> None:
    """Only tenant-owned rows, and a few attributes of a user, are reachable."""
    if target is get_user_model():
        if len(rest) > 1 or (rest and rest[0] not in USER_FIELDS):
            raise ConditionError("", f"'{path}' reads a user; only {', '.join(sorted(USER_FIELDS))} may be used.")
        return
    if field.name == "tenant" or not issubclass(target, TenantOwnedModel):
        raise ConditionError("", f"'{path}' leaves the tenant's data and may not be used in conditions.")


def _name_field(target) -> models.Field | None:
    try:
        field = target._meta.get_field("name")
    except FieldDoesNotExist:
        return None
    return field if getattr(field, "concrete", False) and not field.is_relation else None


def _kind(field: models.Field, path: str) -> str:
    kind = _KINDS.get(field.get_internal_type())
    if kind is None:
        raise ConditionError("", f"'{path}' is a {field.get_internal_type()}, which conditions cannot compare.")
    return kind


def _engagement_field(model, path: str) -> Resolved:
    try:
        reverse = model._meta.get_field("engagements")
    except FieldDoesNotExist:
        reverse = None
    related = getattr(reverse, "related_model", None)
    if reverse is None or not reverse.one_to_many or not all(_has_field(related, c) for c in ENGAGEMENT_COLUMNS):
        raise ConditionError("", f"'{path}' exists on accounts only, not on {model._meta.object_name}.")
    return Resolved(path, "integer", virtual=path, reverse=reverse)
