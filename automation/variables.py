"""The variables every rendered template sees, built in one place for every kind of run.

    {{entity.*}}    the record the run is about (the event's snapshot of it, else the row as loaded now)
    {{account.*}}   its account;  {{contact.*}}: its contact (the subject, else the account's primary one)
    {{trigger_event}}, {{entity_type}}, {{entity_id}}   seed 003's flat names
    {{workflow.*}}, {{event.*}} (the event's payload), {{custom.*}} (the run's extra data)

Plain data only: templates cannot reach methods or other tenants' rows. Values are copies: a template may
call a dict's or list's methods ({{ event.clear }}); that must not change what the run saved.
"""

from __future__ import annotations

import copy


def template_variables(ctx) -> dict:
    a = ctx.account
    account = None if a is None else {
        "id": str(a.pk), "name": a.name, "status": a.status, "industry": a.industry, "arr": float(a.arr),
        "health_score": float(a.health_score) if a.health_score is not None else None,
        "risk_level": a.risk_level, "renewal_date": str(a.renewal_date or ""),
        "owner_email": a.owner.email if a.owner_id else "",
    }
    subject = ctx.subject if ctx.subject is not None else a
    event = getattr(ctx.run, "event", None) if ctx.run is not None else None
    payload = copy.deepcopy(ctx.event_payload)
    return {"account": account, "entity": payload, "event": payload,
            "workflow": {"id": ctx.workflow.pk, "name": ctx.workflow.name}, "custom": copy.deepcopy(ctx.extra),
            "entity_type": subject._meta.model_name if subject is not None else "",
            "entity_id": str(subject.pk) if subject is not None else "",
            "trigger_event": event.type if event is not None else ""}
