"""Cascade semantics a user can predict (docs/automation.md, "Cascades").

* A rule's conditions read the record as the event describes it: right after the change that raised the
  event (its snapshot, ``Event.payload``), not as later runs may have changed it since. Two rules reacting
  to one change both see that change, whichever of them runs first.
* A rule runs at most once per record per chain of runs (Odoo's ``__action_done``): a write by a rule's
  action raises a new event in its chain (``Event.chain_id``), processed after the current one; a rule
  that already ran for that record in the chain is skipped as ``loop_detected``.
"""

from __future__ import annotations

import copy

from django.core.exceptions import ValidationError
from django.db.models import Q

from . import waits
from .events import chain_of
from .models import Run

SNAPSHOT_EVENTS = ("model_created", "model_updated")
ACTED = (Run.Status.SUCCESS, Run.Status.FAILED, Run.Status.RUNNING)  # and runs waiting before an action (waits)


def describes(event_type: str | None, payload, subject, kinds=SNAPSHOT_EVENTS) -> bool:
    """Whether an event of ``event_type`` (one of ``kinds``) with this payload carries a snapshot of ``subject``."""
    return bool(subject is not None and payload and event_type in kinds and str(payload.get("id")) == str(subject.pk))


def as_described(subject, event):
    """``subject`` with the field values of ``event``'s snapshot of it (an unsaved copy, made once per event
    and shared by its rules, so a related row one rule's conditions load is loaded once), or ``subject``
    itself when the event carries no snapshot of that row."""
    if event is None or not describes(event.type, event.payload, subject):
        return subject
    views = event.__dict__.setdefault("_described", {})
    if id(subject) not in views:
        views[id(subject)] = (subject, _view(subject, event.payload))
    return views[id(subject)][1]


def _view(subject, payload: dict):
    view = copy.copy(subject)
    view._state = copy.copy(subject._state)
    view._state.fields_cache = dict(subject._state.fields_cache)
    for field in subject._meta.concrete_fields:
        if field.name not in payload:
            continue
        try:
            value = field.to_python(payload[field.name])
        except (ValidationError, TypeError, ValueError):  # a snapshot older than the field's type: read the row
            continue
        if getattr(view, field.attname) != value:
            setattr(view, field.attname, value)
            view._state.fields_cache.pop(field.name, None)  # a changed foreign key: read the related row again
    return view


def ran_in_chain(run: Run, batch) -> bool:
    """Whether ``run``'s rule already ran for its record in its event's chain (this batch's runs included,
    which are not on disk yet). Only events raised by runs (depth > 0) can be in a chain with earlier runs."""
    event = run.event
    if event is None or not event.depth or not (run.subject_id or run.account_id):
        return False
    chain = chain_of(event)
    record = {"subject_model": run.subject_model, "subject_id": run.subject_id} if run.subject_id else {
        "account_id": run.account_id}

    def same(other: Run) -> bool:
        acted = other.status in ACTED or (other.status == Run.Status.QUEUED and other.started_at is not None)
        return (other.workflow_id == run.workflow_id and acted and other.event is not None
                and chain_of(other.event) == chain and all(getattr(other, k) == v for k, v in record.items()))

    if batch is not None and any(same(other) for other in batch.new_runs + batch.saved_runs):
        return True
    return (Run.objects.for_tenant(run.tenant_id).filter(Q(status__in=ACTED) | waits.waiting(),
                                                         workflow_id=run.workflow_id, **record)
            .filter(Q(event_id=chain) | Q(event__chain_id=chain)).exists())
