"""Many-to-many changes of watched records (the tags of an account or a contact) as ``model_updated`` events of
the record that owns the relation, with the related rows' names before and after:
``changes = {"tags": {"old": ["at-risk"], "new": ["at-risk", "vip"]}}``, so ``field_changed`` / ``model_updated``
rules with ``fields: ["tags"]`` see them. Either side may write (``account.tags.add``, ``tag.accounts.add``);
deleting a tag takes it off its records, which Django's cascade does without ``m2m_changed``.

The relation is read before and after only when a live rule listens (the rule index), so a tag change nobody
listens to costs no query.
"""

from __future__ import annotations

from functools import cache

from django.apps import apps
from django.db import transaction

from . import events, rule_index
from .models import Event
from .subjects import WATCHED, account_of, name_of


def _listening(tenant_id, model: str) -> bool:
    cause = events.running()
    return rule_index.interested(tenant_id, "model_updated", model, memo=cause.batch.rule_index if cause else None)


@cache
def _watched_m2m_fields() -> tuple:
    return tuple(field for label in WATCHED.values() for field in apps.get_model(label)._meta.many_to_many)


def _names(field, owner_ids) -> dict:
    """{owner pk: sorted names of its related rows}, in one query."""
    source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
    names = {pk: [] for pk in owner_ids}
    for row in field.remote_field.through.objects.filter(**{f"{source}__in": owner_ids}).select_related(target):
        names[getattr(row, f"{source}_id")].append(str(getattr(row, target)))
    return {pk: sorted(values) for pk, values in names.items()}


def _owner_ids(field, instance, reverse: bool, pk_set) -> list:
    if not reverse:
        return [instance.pk]
    if pk_set is None:  # clear() from the tag's side: every record that has it
        return list(getattr(instance, field.remote_field.get_accessor_name()).values_list("pk", flat=True))
    return list(pk_set)


def relation_changed(through, instance, action: str, reverse: bool, model, pk_set) -> None:
    """The ``m2m_changed`` receiver's work: remember the names at ``pre_*``, report the change at ``post_*``."""
    field = next((f for f in _watched_m2m_fields() if f.remote_field.through is through), None)
    if field is None or (action.endswith(("_add", "_remove")) and not pk_set):
        return
    pending = instance.__dict__.setdefault("_automation_m2m_before", {})
    if action.startswith("pre_"):
        if _listening(instance.tenant_id, name_of(field.model)):
            pending[through] = _names(field, _owner_ids(field, instance, reverse, pk_set))
        return
    before = pending.pop(through, None)
    if before is not None:
        owners = field.model.objects.for_tenant(instance.tenant_id).filter(pk__in=before) if reverse else [instance]
        _report(field, owners, before, _names(field, list(before)))


def related_row_deleting(model, instance) -> None:
    """The ``pre_delete`` receiver's work: a deleted tag leaves every record that had it."""
    for field in _watched_m2m_fields():
        if field.related_model is not model or not _listening(instance.tenant_id, name_of(field.model)):
            continue
        before = _names(field, _owner_ids(field, instance, True, None))
        after = {pk: [name for name in names if name != str(instance)] for pk, names in before.items()}
        _report(field, field.model.objects.for_tenant(instance.tenant_id).filter(pk__in=before), before, after)


def _report(field, owners, before: dict, after: dict) -> None:
    for owner in owners:
        old, new = before.get(owner.pk, []), after.get(owner.pk, [])
        if old == new or _merged(owner, field.name, new):
            continue
        event = events.emit(tenant_id=owner.tenant_id, type="model_updated", model=name_of(type(owner)),
                            object_id=owner.pk, account=account_of(owner),
                            payload=lambda owner=owner, new=new: {**events.payload_of(owner), field.name: new},
                            changes={field.name: {"old": old, "new": new}})
        if event is not None:
            reported = owner.__dict__.setdefault("_automation_m2m_events", {})
            reported[field.name] = (event, events.running())
            # Forgotten at commit: a committed event is never rewritten.
            transaction.on_commit(lambda reported=reported: reported.pop(field.name, None))


def _merged(owner, name: str, new: list) -> bool:
    """``set()`` is a remove then an add: a second change of the same record's relation, by the same writer in the
    same transaction, extends the first one's event (old from the first, new from the last) so that a rule fires
    once. False when there is none (or a savepoint rolled it back): then a new event is raised."""
    event, cause = owner.__dict__.get("_automation_m2m_events", {}).get(name, (None, None))
    if event is None or cause is not events.running():
        return False
    event.changes = {name: {"old": event.changes[name]["old"], "new": new}}
    event.payload = {**event.payload, name: new}
    return bool(Event.objects.for_tenant(event.tenant_id).filter(pk=event.pk, processed_at__isnull=True)
                .update(changes=event.changes, payload=event.payload))
