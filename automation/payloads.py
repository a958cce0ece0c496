"""The default JSON body of a webhook: seed 004's event payload.

::

    {"event_type": "health_score_drop",
     "account": {"id": …, "name": …, "arr": 85000.0, "renewal_date": "2025-03-01"},
     "health_score": {"current_score": 35, "previous_score": 65, "risk_level": "Critical",
                      "usage_score": 25, "engagement_score": 30, …},
     "csm": {"email": …, "name": …},
     "event": {…the event's own payload…}, "workflow": {"id": …, "name": …}, "run_id": …, "occurred_at": …}

``health_score`` is present for health score events and otherwise carries the account's latest score.
"""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import HealthScore
from accounts.models.customers import RiskLevel
from accounts.models.health import COMPONENTS

from .batch import ScoreMemo
from .events import running


def _num(value):
    return None if value is None else float(value)


def _risk_label(code: str | None) -> str | None:
    if not code:
        return None
    try:
        return RiskLevel(code).label
    except ValueError:
        return code


def event_type_of(event_type: str, payload: dict) -> str:
    if event_type == "health_score_change":
        current, previous = payload.get("current_score"), payload.get("previous_score")
        if current is not None and previous is not None:
            if current < previous:
                return "health_score_drop"
            if current > previous:
                return "health_score_increase"
    if event_type == "stage_change":
        return "stage_transition"
    return event_type or "manual"


def account_block(account) -> dict | None:
    if account is None:
        return None
    return {"id": str(account.pk), "name": account.name, "arr": float(account.arr),
            "renewal_date": account.renewal_date.isoformat() if account.renewal_date else None,
            "status": account.status, "industry": account.industry}


def csm_block(account) -> dict | None:
    owner = getattr(account, "owner", None) if account is not None else None
    if owner is None:
        return None
    return {"email": owner.email, "name": owner.get_full_name() or owner.email}


# An engine batch reads its accounts' latest scores in one query (its ``ScoreMemo``, PostgreSQL); a score
# recorded meanwhile (an action's update_health_score) drops its account's entry, so nothing stale is sent.

@receiver(post_save, sender=HealthScore, dispatch_uid="automation.payloads.forget_score")
def _forget_score(sender, instance, **kwargs):
    cause = running()
    if cause is not None and cause.batch.scores is not None:
        cause.batch.scores.forget(instance.account_id)


def latest_score(account, memo: ScoreMemo | None = None) -> HealthScore | None:
    if memo is not None and account.pk in memo.found:
        return memo.found[account.pk]
    scores = HealthScore.objects.for_tenant(account.tenant_id).order_by("account_id", "-calculated_at", "-id")
    if memo is None:
        return scores.filter(account=account).first()
    found = memo.found
    wanted = (memo.wanted | {account.pk}) - found.keys()
    found.update(dict.fromkeys(wanted))
    found.update({score.account_id: score for score in scores.filter(account_id__in=wanted).distinct("account_id")})
    return found[account.pk]


def health_block(account, event_type: str, payload: dict, memo: ScoreMemo | None = None) -> dict | None:
    score = None
    if event_type == "health_score_change" and payload.get("health_score_id"):
        score = HealthScore.objects.for_tenant(account.tenant_id).filter(pk=payload["health_score_id"]).first()
    if score is None and account is not None:
        score = latest_score(account, memo)
    if score is None:
        return None
    block = {"current_score": _num(score.overall_score), "previous_score": _num(score.previous_score),
             "risk_level": _risk_label(score.risk_level)}
    for name in COMPONENTS:
        block[name] = _num(getattr(score, name))
    return block


def event_payload(ctx) -> dict:
    """Seed 004's payload for the run behind ``ctx`` (an ``automation.actions.ActionContext``)."""
    event = getattr(ctx.run, "event", None) if ctx.run is not None else None
    trigger_data = (ctx.run.trigger_data or {}) if ctx.run is not None else {}
    raw_type = event.type if event is not None else trigger_data.get("type", "")
    # Manual, delayed and catch-up runs have no Event row: their trigger data carries the payload.
    payload = ctx.event_payload or trigger_data.get("payload") or {}
    body = {
        "event_type": event_type_of(raw_type, payload),
        "account": account_block(ctx.account),
        "health_score": (health_block(ctx.account, raw_type, payload, ctx.batch.scores if ctx.batch else None)
                         if ctx.account is not None else None),
        "csm": csm_block(ctx.account),
        "event": payload,
        "workflow": {"id": ctx.workflow.pk, "name": ctx.workflow.name} if ctx.workflow is not None else None,
        "run_id": ctx.run.pk if ctx.run is not None else None,
        "occurred_at": (event.created_at if event is not None else timezone.now()).isoformat(),
    }
    if raw_type == "stage_change":
        body["stage"] = {"from": payload.get("from_stage"), "to": payload.get("to_stage")}
    return body
