"""The variables every rendered template sees, built in one place for every kind of run (event, time-based,
scheduled, manual, webhook, retry, delayed, debounced, dry run, backtest).

    {{entity.*}}    the record the run is about: the event's snapshot of it when the event describes it (model
                    events), else the row as loaded; without a row (an inbound webhook), the event's payload.
                    Besides its fields: ``company`` (its account, seed 003's name), ``contact`` (a deal's: its
                    account's primary contact), ``full_name`` and ``assigned_to`` (its owner's email).
    {{account.*}}   the run's account
    {{contact.*}}   the subject if it is a contact, else the account's primary contact (read only when a
                    template names ``contact``)
    {{trigger_event}}   the event's type; without an event, the run's trigger (``manual``, ``time_based``, …)
    {{entity_type}}, {{entity_id}}   seed 003's flat names
    {{workflow.*}}, {{event.*}} (the event's payload), {{custom.*}} (the run's extra data)

Plain data only: templates cannot reach methods or other tenants' rows. Values are copies: a template may
call a dict's or list's methods ({{ event.clear }}); that must not change what the run saved.
"""

from __future__ import annotations

import copy

from django.db import models

from accounts.models import Contact

from .chains import describes
from .events import payload_of

MODEL_EVENTS = ("model_created", "model_updated", "model_deleted")


def account_variables(a) -> dict | None:
    if a is None:
        return None
    return {"id": str(a.pk), "name": a.name, "status": a.status, "industry": a.industry, "arr": float(a.arr),
            "health_score": float(a.health_score) if a.health_score is not None else None,
            "risk_level": a.risk_level, "renewal_date": str(a.renewal_date or ""),
            "owner_email": a.owner.email if a.owner_id else ""}


def contact_variables(contact) -> dict | None:
    if contact is None:
        return None
    first, _, last = contact.name.partition(" ")
    return {"id": str(contact.pk), "name": contact.name, "full_name": contact.name, "first_name": first,
            "last_name": last, "email": contact.email, "phone": contact.phone, "role": contact.role}


def trigger_event(ctx) -> str:
    event = getattr(ctx.run, "event", None) if ctx.run is not None else None
    if event is not None:
        return event.type
    data_type = ((ctx.run.trigger_data or {}).get("type") if ctx.run is not None else None)
    if data_type:
        return data_type
    if ctx.run is not None and ctx.run.manual:
        return "manual"
    return ctx.workflow.trigger_type if ctx.workflow is not None else ""


def _entity(ctx, subject, account: dict | None, text: str) -> dict:
    event = getattr(ctx.run, "event", None) if ctx.run is not None else None
    payload = ctx.event_payload or {}
    if not isinstance(subject, models.Model):  # none, or an inbound webhook's body (webhook_subject)
        return copy.deepcopy(payload)
    entity = copy.deepcopy(payload) if describes(getattr(event, "type", None), payload, subject, MODEL_EVENTS) else payload_of(subject)
    if subject._meta.model_name != "account":
        entity.setdefault("company", account)
        if "contact" in text and not isinstance(subject, Contact):  # a deal's contact: its account's primary one
            entity.setdefault("contact", contact_variables(_contact(ctx, subject)))
    entity.setdefault("full_name", entity.get("name", ""))
    owner = getattr(subject, "owner", None) if hasattr(subject, "owner_id") else None
    entity.setdefault("assigned_to", owner.email if owner is not None else "")
    return entity


def _contact(ctx, subject):
    """The contact the run is about: the subject, else the account's primary one (remembered per run)."""
    if isinstance(subject, Contact):
        return subject
    if ctx.account is None:
        return None
    if "contact" not in ctx.memo:
        ctx.memo["contact"] = (Contact.objects.for_tenant(ctx.account.tenant_id).filter(account=ctx.account)
                               .order_by("-is_primary", "pk").first())
    return ctx.memo["contact"]


def template_variables(ctx, text: str = "") -> dict:
    """The variables for rendering ``text`` in the run behind ``ctx`` (an ``ActionContext``)."""
    subject = ctx.subject if ctx.subject is not None else ctx.account
    account = account_variables(ctx.account)
    payload = copy.deepcopy(ctx.event_payload)
    return {"account": account, "entity": _entity(ctx, subject, account, text), "event": payload,
            "contact": contact_variables(_contact(ctx, subject)) if "contact" in text else None,
            "workflow": {"id": ctx.workflow.pk, "name": ctx.workflow.name} if ctx.workflow is not None else None,
            "custom": copy.deepcopy(ctx.extra),
            "entity_type": subject._meta.model_name if subject is not None else "",
            "entity_id": str(subject.pk) if subject is not None else "",
            "trigger_event": trigger_event(ctx)}
