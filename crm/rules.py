"""How a journey starts: its managed rules in the automation engine (DESIGN.md, "The one flow").

Every journey with a trigger (``trigger_event`` other than manual) keeps one automation rule (``Workflow``
with ``source="crm"``): the engine trigger below, and one action, ``add_to_cadence``, naming the journey and
the trigger. The engine matches the event, records a Run saying why the journey started or why not (no
contact to reach, already in it, the re-entry rule), and the action starts it. A journey started by
``payment_failed`` keeps a second rule on ``payment_succeeded`` whose ``convert_cadence`` converts the
account's open executions (seed 002's conversion on payment).

| trigger_event | the rule's trigger |
| --- | --- |
| cancellation | ``status_change`` to churned or cancelled, from any other status (``entering``) |
| churn_risk | ``health_score_change`` whose risk level *becomes* at_risk or critical (``risk_levels`` +
  ``entering``), on condition that the account is still at risk (a backdated score is history) |
| milestone | ``goal_event`` achieved |
| payment_failed, trial_ending, inactivity | ``event`` of that type (``crm.triggers`` emits them) |

The rules follow their journey: written when it is saved (``crm.signals`` -> ``journey_rules_sync``), created
with the default journeys and for any journey missing them (``crm_journeys_ensure``), paused while it is
inactive (the conversion rule stays: running rescues still convert), deleted with it. crm registers
``source="crm"`` as a rule owner (``CrmConfig.ready``), so the generic rule API and the Workflow admin show
them read-only. Migration ``crm.0003`` gave the journeys that existed before their rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from django.db import transaction
from django.db.models import OuterRef, Q, Subquery

from accounts.models import Account, RiskLevel
from automation import rule_index
from automation.managed import Owner, register_owner
from automation.models import Workflow
from automation.services import workflow_save, workflow_validate

from .models import CRMPlaybook, TriggerEvent, journeys_labelled

SOURCE = "crm"
START_ACTION = "add_to_cadence"
CONVERT_ACTION = "convert_cadence"
RISKY = [RiskLevel.AT_RISK.value, RiskLevel.CRITICAL.value]
CANCELLED = [Account.Status.CHURNED.value, Account.Status.CANCELLED.value]


def _payload_context(payload: dict) -> dict:
    return {key: value for key, value in payload.items() if key != "account_id"}


@dataclass(frozen=True)
class JourneyTrigger:
    trigger_type: str
    config: dict
    says: str  # when the journey starts, for the rule's description
    conditions: dict = field(default_factory=dict)
    context: Callable[[dict], dict] = _payload_context  # the event's payload -> the execution's context


TRIGGERS: dict[str, JourneyTrigger] = {
    TriggerEvent.CANCELLATION: JourneyTrigger(
        "status_change", {"to_status": CANCELLED, "entering": True},
        "the account's status becomes churned or cancelled",
        context=lambda p: {"from_status": p.get("from_status"), "to_status": p.get("to_status")}),
    TriggerEvent.CHURN_RISK: JourneyTrigger(
        "health_score_change", {"risk_levels": RISKY, "entering": True, "direction": "any"},
        "a health score's risk level becomes At Risk or Critical and the account is still at risk",
        conditions={"field": "risk_level", "operator": "in", "value": RISKY},
        context=lambda p: {"risk_level": p.get("risk_level"), "health_score": p.get("current_score"),
                           "previous_score": p.get("previous_score")}),
    TriggerEvent.MILESTONE: JourneyTrigger(
        "goal_event", {"event": "achieved", "include_created": True}, "a goal of the account is achieved",
        context=lambda p: {"goal_id": p.get("goal_id"), "goal_title": p.get("title"), "goal_type": p.get("goal_type")}),
    TriggerEvent.PAYMENT_FAILED: JourneyTrigger(
        "event", {"event_type": TriggerEvent.PAYMENT_FAILED.value}, "a payment of the account fails"),
    TriggerEvent.TRIAL_ENDING: JourneyTrigger(
        "event", {"event_type": TriggerEvent.TRIAL_ENDING.value}, "the account's trial ends within 3 days"),
    TriggerEvent.INACTIVITY: JourneyTrigger(
        "event", {"event_type": TriggerEvent.INACTIVITY.value}, "nobody at the account logged in for 14 days"),
}
#: The event that converts the open executions of the journeys a trigger starts.
CONVERTED_BY = {TriggerEvent.PAYMENT_FAILED: "payment_succeeded"}

# Every rule of a journey: a refusal (no contact, the re-entry rule) is an outcome of the journey, not a broken
# rule, so the circuit breaker never pauses one (failure_threshold 0).
_COMMON = {"enabled": True, "model_type": "", "scope_all_accounts": True, "continue_on_error": False,
           "cooldown_minutes": None, "rate_limiting": {}, "allow_retries": False, "retry_configuration": {},
           "delay_minutes": 0, "failure_threshold": 0, "source": SOURCE}


def trigger_context(trigger: str, payload: dict | None) -> dict:
    """What an execution started by ``trigger`` keeps of the event (templates read it as ``context``)."""
    spec = TRIGGERS.get(trigger)
    data = (spec.context if spec else _payload_context)(payload or {})
    return {"trigger": trigger, **data}


def _title(journey: CRMPlaybook) -> str:
    return f"CRM journey: {journey.title or journey.name}"[:180]


def start_rule(journey: CRMPlaybook) -> dict | None:
    """The rule that starts ``journey`` (None for a journey without a trigger)."""
    spec = TRIGGERS.get(journey.trigger_event)
    if spec is None:
        return None
    return {
        **_COMMON, "name": _title(journey),
        "description": f"Starts the CRM journey '{journey.name}' when {spec.says}. Kept by the journey: "
                       f"change the journey (its trigger, active), not this rule.",
        "status": Workflow.Status.ACTIVE if journey.active else Workflow.Status.PAUSED,
        "trigger_type": spec.trigger_type, "trigger_config": dict(spec.config), "conditions": dict(spec.conditions),
        # The condition's trace shows on a skipped run why the journey did not start.
        "debug_mode": bool(spec.conditions),
        "actions": [{"type": START_ACTION, "config": {"journey": journey.pk, "trigger": journey.trigger_event}}],
    }


def conversion_rule(journey: CRMPlaybook) -> dict | None:
    """The rule that converts ``journey``'s open executions (None unless its trigger has a converting event).
    Active also while the journey is inactive: running executions go on, and still convert."""
    event = CONVERTED_BY.get(journey.trigger_event)
    if event is None:
        return None
    return {
        **_COMMON, "name": f"{_title(journey)} (conversion)",
        "description": f"Converts the account's open executions of the CRM journey '{journey.name}' on the "
                       f"{event} event. Kept by the journey.",
        "status": Workflow.Status.ACTIVE, "trigger_type": "event", "trigger_config": {"event_type": event},
        "conditions": {}, "debug_mode": False,
        "actions": [{"type": CONVERT_ACTION, "config": {"journey": journey.pk, "trigger": event}}],
    }


RULES = (("workflow", start_rule), ("conversion_workflow", conversion_rule))


def rules_missing(journey: CRMPlaybook) -> bool:
    """Whether the journey lacks a rule it should keep (no query: reads its trigger and its rule ids)."""
    return ((journey.trigger_event in TRIGGERS and journey.workflow_id is None)
            or (journey.trigger_event in CONVERTED_BY and journey.conversion_workflow_id is None))


def _differs(rule: Workflow, data: dict) -> bool:
    wanted = workflow_validate(rule=Workflow(tenant_id=rule.tenant_id, pk=rule.pk), data=data)
    return any(getattr(wanted, name) != getattr(rule, name) for name in data)


def journey_rules_sync(journey: CRMPlaybook, *, created: bool = False) -> None:
    """Bring the journey's rules in line with it: create the missing ones, save the changed ones (through
    ``workflow_save``: validated, versioned, audited), pause the ones it no longer needs. Nothing is written
    when they already match. The journey's row is locked, so concurrent syncs create each rule once; a journey
    ``created`` in the caller's transaction is invisible to the others and has no rules yet: it is used as is."""
    if created:
        _sync(journey, journey)
        return
    with transaction.atomic():
        row = (CRMPlaybook.objects.for_tenant(journey.tenant_id).select_related("tenant")
               .select_for_update(of=("self",)).filter(pk=journey.pk).first())
        if row is not None:
            _sync(row, journey)


def _sync(row: CRMPlaybook, journey: CRMPlaybook) -> None:
    tenant = row.tenant if CRMPlaybook.tenant.is_cached(row) else None  # the audit entry reads it
    links = {}
    for name, build in RULES:
        data = build(row)
        rule_id = getattr(row, f"{name}_id")
        rule = Workflow.objects.for_tenant(row.tenant_id).filter(pk=rule_id).first() if rule_id else None
        if data is None:
            if rule is not None and rule.status != Workflow.Status.PAUSED:
                workflow_save(rule=rule, data={"status": Workflow.Status.PAUSED})
            continue
        if rule is not None and not _differs(rule, data):
            continue
        new = Workflow(tenant=tenant) if tenant is not None else Workflow(tenant_id=row.tenant_id)
        rule = workflow_save(rule=rule or new, data=data)
        if rule.pk != rule_id:
            links[name] = rule
        setattr(journey, f"{name}_id", rule.pk)
    if links:
        CRMPlaybook.objects.filter(pk=row.pk).update(**links)  # an update: no post_save, no second sync


def journey_rules_delete(journey: CRMPlaybook) -> None:
    """Delete the rules of a deleted journey (their runs go with them, as the journey's executions did)."""
    ids = [pk for pk in (journey.workflow_id, journey.conversion_workflow_id) if pk]
    if ids:
        Workflow.objects.for_tenant(journey.tenant_id).filter(pk__in=ids, source=SOURCE).delete()
        rule_index.invalidate(journey.tenant_id)


def keeper_columns(tenant_id):
    """(id, label) of the journey that keeps the rule ``OuterRef("pk")`` (its main or conversion rule), for
    ``automation.managed``."""
    keeping = journeys_labelled(CRMPlaybook.objects.for_tenant(tenant_id).filter(
        Q(workflow_id=OuterRef("pk")) | Q(conversion_workflow_id=OuterRef("pk")))).order_by("pk")
    return Subquery(keeping.values("pk")[:1]), Subquery(keeping.values("label")[:1])


def register() -> None:
    """The journeys' rules are read-only in the generic rule API and admin (called from ``CrmConfig.ready``)."""
    register_owner(Owner(source=SOURCE, kind="CRM journey", columns=keeper_columns, api_path="/api/v1/crm/playbooks/{id}",
                         admin_url_name="admin:crm_crmplaybook_change"))
