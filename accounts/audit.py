"""The audit trail service: record who changed which configuration of a tenant, with before/after values.

The contract for every app (see ``docs/security.md``)::

    before = audit_snapshot(rule)            # None when creating
    ... change and save the row ...
    audit_record(tenant=rule.tenant, actor=user_or_None, action="update", obj=rule,
                 before=before, after=audit_snapshot(rule))

* Call it inside the transaction that writes the change, after the write: a rollback removes both.
* ``before`` / ``after`` are plain dicts of field values (``audit_snapshot`` builds them); the row
  stores only the fields that differ, as ``{field: [before, after]}``. An update that changed nothing
  writes no row and returns ``None``.
* Values under a key containing ``secret``, ``token``, ``password`` or ``key`` (at any depth) are
  stored as ``"***"``: the trail says that a webhook secret changed, never what it is.
* The caller must be in a scope that may write the tenant's rows (a request of that tenant,
  ``tenant_context(tenant)`` in tasks and commands); the audit trail never widens row-level security.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Iterable

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from .models import AuditLog, Tenant

MASK = "***"
SECRET_MARKERS = ("secret", "token", "password", "key")


def is_secret_key(name: Any) -> bool:
    lowered = str(name).lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def _json_safe(value: Any) -> Any:
    """Plain JSON: decimals keep their digits as strings, dates and times become ISO strings, rows their pk."""
    if isinstance(value, models.Model):
        value = value.pk
    elif isinstance(value, (set, frozenset)):
        value = sorted(value, key=str)
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))


def mask_secrets(value: Any) -> Any:
    """``value`` with every entry under a secret-looking key (at any depth) replaced by ``"***"``."""
    if isinstance(value, dict):
        return {k: _mask_scalar(v) if is_secret_key(k) else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def _mask_scalar(value: Any) -> Any:
    # "set" and "cleared" stay visible (None / ""), the secret itself never does
    return value if value in (None, "", [], {}) else MASK


def audit_snapshot(obj: models.Model, *, fields: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> dict:
    """The audited values of ``obj``: every concrete field (foreign keys as ids) except the primary key,
    ``tenant`` and automatic timestamps, or exactly ``fields`` (many-to-many fields allowed there)."""
    exclude = set(exclude)
    if fields is None:
        chosen = [
            f for f in obj._meta.concrete_fields
            if not f.primary_key and f.name != "tenant" and not getattr(f, "auto_now", False)
            and not getattr(f, "auto_now_add", False) and f.name not in exclude
        ]
    else:
        chosen = [obj._meta.get_field(name) for name in fields if name not in exclude]
    snapshot = {}
    for field in chosen:
        if field.many_to_many:
            snapshot[field.name] = sorted(str(pk) for pk in getattr(obj, field.name).values_list("pk", flat=True)) \
                if obj.pk is not None else []
        elif field.is_relation:
            snapshot[field.name] = getattr(obj, field.attname)
        else:
            value = getattr(obj, field.name)
            if isinstance(field, models.DecimalField) and value is not None:
                try:  # "40" from a form and 40.00 from the database are the same setting
                    value = Decimal(value).quantize(Decimal(1).scaleb(-field.decimal_places))
                except (ArithmeticError, ValueError, TypeError):
                    pass
            snapshot[field.name] = value
    return _json_safe(snapshot)


def audit_diff(before: dict | None, after: dict | None) -> dict:
    """``{field: [before, after]}`` of the fields whose values differ, secrets masked."""
    before, after = before or {}, after or {}
    changes = {}
    for name in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(name), after.get(name)
        # compared as given (Decimal("40") == Decimal("40.00")), stored as plain JSON
        if old == new:
            continue
        old, new = _json_safe(old), _json_safe(new)
        if old == new:
            continue
        name = str(name)
        if is_secret_key(name):
            changes[name] = [_mask_scalar(old), _mask_scalar(new)]
        else:
            changes[name] = [mask_secrets(old), mask_secrets(new)]
    return changes


def audit_record(*, tenant: Tenant | Any, actor=None, action: str, obj: models.Model | None = None,
                 object_type: str | None = None, object_id: Any = None, object_repr: str | None = None,
                 before: dict | None = None, after: dict | None = None) -> AuditLog | None:
    """Write one audit entry of ``tenant``; returns it, or ``None`` for an update that changed nothing.

    ``obj`` gives the defaults of ``object_type`` (``app_label.model``), ``object_id`` (its pk) and
    ``object_repr`` (``str(obj)``); without ``obj`` pass ``object_type`` (and usually ``object_id``).
    ``actor`` is the user who made the change, or ``None`` for the system.
    """
    if action not in AuditLog.Action.values:
        raise ValueError(f"Unknown audit action {action!r}; use one of {', '.join(AuditLog.Action.values)}.")
    if object_type is None:
        if obj is None:
            raise ValueError("audit_record() needs obj or object_type.")
        object_type = obj._meta.label_lower
    if object_id is None and obj is not None and obj.pk is not None:
        object_id = obj.pk
    if object_repr is None:
        object_repr = str(obj) if obj is not None else ""
    changes = audit_diff(before if action != AuditLog.Action.CREATE else None,
                         after if action != AuditLog.Action.DELETE else None)
    if action == AuditLog.Action.UPDATE and not changes:
        return None
    if actor is not None and not (isinstance(actor, get_user_model()) and actor.pk is not None):
        actor = None  # AnonymousUser, an unsaved user: the system
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    if tenant_id is None:
        raise ValueError("audit_record() needs the tenant the change belongs to.")
    return AuditLog.objects.create(
        tenant_id=tenant_id, actor=actor, actor_email=(actor.email or actor.get_username()) if actor else "",
        action=action, object_type=object_type[:100], object_id="" if object_id is None else str(object_id)[:64],
        object_repr=str(object_repr)[:200], changes=changes,
    )
