"""crm's actions for the automation engine, registered from ``CrmConfig.ready`` (automation never imports crm).

``add_to_cadence`` starts a journey. Config: ``{"journey": "payment_failed_rescue"}`` (a journey's name or
id; aliases ``playbook``, ``cadence``, ``cadence_id``, ``playbook_name``), optional ``"context": {...}``
passed to the execution, ``"trigger"``: the journey trigger the rule stands for, and seed 003's
``start_step`` (1-based: the journey starts at that step, the earlier ones are skipped) and ``delay_hours``
(the first step waits that long instead of its own delay). The journey and its step are checked at save. A journey's own rule
(``crm.rules``) names it, so the execution gets the event's data in its context (the goal's title, the
risk level, the invoice, ...) and the source ``trigger``; other rules' executions have the source
``automation``. The contact is the rule's subject when it is a contact, else the contact the event names
(``contact_id`` in its payload, one of the account's: a billing event's payer), else the account's recipient
contact (primary, else first). A contact already in the journey is not an error: the step reports
``already_active`` with that execution. No contact to reach, an unknown or inactive journey and the
re-entry rule fail the step with the reason, so the Run says why no journey started.

``convert_cadence`` converts the account's open executions of a journey (active, or completed in the last
30 days) with the event's ``amount``: ``{"journey": ..., "trigger": "payment_succeeded"}``. A payment
rescue's conversion rule uses it.
"""

from __future__ import annotations

import re

from accounts.models import Contact
from automation.actions import Action, ActionContext, ActionError, ActionRefused
from automation.triggers import ConfigError
from csplatform import json_schema as js

from .journeys import DEFAULT_JOURNEYS
from .models import CRMPlaybook, CRMPlaybookExecution, CRMStep
from .rules import TRIGGERS, trigger_context
from .services import JourneyRefused, journey_convert_open, playbook_get, recipient_contact, start_journey

NAME = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
ALIASES = {"playbook": "journey", "cadence": "journey", "cadence_id": "journey", "playbook_name": "journey"}


def _check_keys(config: dict, known: tuple[str, ...]) -> None:
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ConfigError(unknown[0], f"unknown setting; known: {', '.join(known)}")
    journey = config.get("journey")
    if journey in (None, ""):
        raise ConfigError("journey", "is required (e.g. payment_failed_rescue)")
    if isinstance(journey, bool) or not isinstance(journey, (str, int)) or not NAME.match(str(journey)):
        raise ConfigError("journey", "must be a journey name such as payment_failed_rescue, or its id")


def _journey_steps(config: dict, rule) -> int:
    """At save: how many steps the rule's journey has; ConfigError if the tenant has no such journey (a
    default journey's name counts: ``playbook_get`` creates it on first use)."""
    key = str(config["journey"])
    journeys = CRMPlaybook.objects.for_tenant(rule.tenant_id)
    journey = (journeys.filter(pk=int(key)).first() if key.isascii() and key.isdigit() else None) or journeys.filter(name=key).first()
    defaults = {spec["name"]: len(spec["steps"]) for spec in DEFAULT_JOURNEYS}
    if journey is None and key not in defaults:
        names = sorted({*journeys.values_list("name", flat=True)[:20], *defaults})
        raise ConfigError("journey", f"journey '{key}' does not exist in this tenant; its journeys: {', '.join(names)}")
    return CRMStep.objects.for_tenant(rule.tenant_id).filter(playbook=journey).count() if journey else defaults[key]


def _journey(config: dict, ctx: ActionContext, action: str):
    journey = playbook_get(ctx.tenant, config["journey"])
    if journey is None:
        raise ActionError(f"{action}: journey '{config['journey']}' does not exist")
    return journey


MAX_DELAY_HOURS = 24 * 365


def _whole_number(config: dict, key: str, minimum: int) -> None:
    value = config.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ConfigError(key, f"must be a whole number, {minimum} or more")


def _named_contact(ctx: ActionContext) -> Contact | None:
    """The contact an account's event names (``contact_id``: a billing event's payer), if it is the account's."""
    contact_id = str((ctx.event_payload or {}).get("contact_id") or "")
    if not contact_id.isdigit():
        return None
    return Contact.objects.for_tenant(ctx.tenant).filter(pk=int(contact_id), account=ctx.account).first()


#: What a refused start's reason (``JourneyRefused.reason``, in the run's error) means to a CSM.
REFUSAL_WORDS = {"no_contact": "no contact to reach", "already_active": "already in the journey",
                 "reentry_cooldown": "the re-entry cooldown is in force", "max_entries": "entered it the most times allowed",
                 "inactive": "the journey is inactive", "no_steps": "the journey has no steps",
                 "not_found": "no such journey", "wrong_tenant": "the contact is in another tenant"}
NO_CONTACT = "no contact to reach"
_REFUSED = re.compile(r"^add_to_cadence: (?:(?P<code>[a-z_]+): )?(?P<text>.*)$", re.S)


def refusal_words(error: str) -> tuple[str, str]:
    """Why ``add_to_cadence`` started no journey, from its run's error: (the reason in words, the detail).
    Reads the messages ``AddToCadence.run`` writes: "add_to_cadence: <reason>: <message>" for a refusal of
    ``start_journey``, "add_to_cadence: no contact to reach (<why>); ..." when there is nobody to start it for."""
    match = _REFUSED.match((error or "").strip())
    if match is None:
        return (error or "").strip(), ""
    code, text = match.group("code"), match.group("text")
    if code in REFUSAL_WORDS:
        return REFUSAL_WORDS[code], text
    text = f"{code}: {text}" if code else text
    if text.startswith(NO_CONTACT):
        why = re.match(r"no contact to reach \((?P<why>[^)]*)\)", text)
        return NO_CONTACT, why.group("why") if why else ""
    return text, ""


class AddToCadence(Action):
    type = "add_to_cadence"
    needs_account = False
    aliases = ALIASES
    KNOWN = known = ("journey", "context", "trigger", "start_step", "delay_hours")
    settings_schema = {"journey": js.text(description="A journey's name (e.g. winback) or id."),
                       "context": js.json_object(), "trigger": js.enum(TRIGGERS),
                       "start_step": js.integer(minimum=1, description="Start at this step (1 = the first)."),
                       "delay_hours": js.duration("hours", minimum=0, maximum=MAX_DELAY_HOURS,
                                                  description="The first step waits this long instead.")}

    def validate_config(self, config):
        config = super().validate_config(config)
        _check_keys(config, self.KNOWN)
        if not isinstance(config.get("context", {}), dict):
            raise ConfigError("context", "must be an object")
        if "trigger" in config and config["trigger"] not in TRIGGERS:
            raise ConfigError("trigger", f"must be one of {', '.join(TRIGGERS)}")
        _whole_number(config, "start_step", 1)
        delay = config.get("delay_hours")
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float))
                                  or not 0 <= delay <= MAX_DELAY_HOURS):
            raise ConfigError("delay_hours", f"must be a number of hours from 0 to {MAX_DELAY_HOURS}")
        return config

    def check_for_rule(self, config, rule):
        steps = _journey_steps(config, rule)
        if config.get("start_step") is not None and config["start_step"] > steps:
            raise ConfigError("start_step", f"journey '{config['journey']}' has {steps} step(s)")

    def run(self, config, ctx):
        journey = _journey(config, ctx, self.type)
        contact = ctx.subject if isinstance(ctx.subject, Contact) else None
        if contact is None and ctx.account is not None:
            contact = _named_contact(ctx) or recipient_contact(ctx.account)
        if contact is None:
            whose = f"account '{ctx.account.name}' has no contacts" if ctx.account is not None else \
                "the rule's subject is neither a contact nor an account"
            raise ActionRefused(f"add_to_cadence: {NO_CONTACT} ({whose}); journey '{journey.name}' not started")
        trigger = config.get("trigger")
        context = {**(trigger_context(trigger, ctx.event_payload) if trigger else {}), **(config.get("context") or {}),
                   "workflow_id": ctx.workflow.pk if ctx.workflow else None, "run_id": ctx.run.pk if ctx.run else None}
        source = CRMPlaybookExecution.Source.TRIGGER if trigger else CRMPlaybookExecution.Source.AUTOMATION
        try:
            execution = start_journey(contact, journey, context, source=source, start_step=config.get("start_step", 1),
                                      delay_hours=config.get("delay_hours"))
        except JourneyRefused as refused:
            if refused.reason == "already_active" and refused.execution is not None:
                return {"journey": journey.name, "execution_id": refused.execution.pk, "contact_id": contact.pk,
                        "already_active": True}
            raise ActionRefused(f"add_to_cadence: {refused.reason}: {refused.message}") from None
        return {"journey": journey.name, "execution_id": execution.pk, "contact_id": contact.pk}


class ConvertCadence(Action):
    type = "convert_cadence"
    needs_account = True
    aliases = ALIASES
    KNOWN = known = ("journey", "trigger")
    settings_schema = {"journey": js.text(description="A journey's name or id."),
                       "trigger": js.text(description="The event, e.g. payment_succeeded.")}

    def validate_config(self, config):
        config = super().validate_config(config)
        _check_keys(config, self.KNOWN)
        if "trigger" in config and not EVENT_NAME.match(str(config["trigger"])):
            raise ConfigError("trigger", "must be an event name such as payment_succeeded")
        return config

    def check_for_rule(self, config, rule):
        _journey_steps(config, rule)

    def run(self, config, ctx):
        journey = _journey(config, ctx, self.type)
        if ctx.account is None:
            raise ActionError("convert_cadence: the event has no account")
        payload = ctx.event_payload or {}
        why = (config.get("trigger") or "automation rule").replace("_", " ")
        converted = journey_convert_open(journey=journey, account=ctx.account, value=payload.get("amount"),
                                         reason=f"{why} {payload.get('invoice_id') or ''}".strip())
        return {"journey": journey.name, "converted": [execution.pk for execution in converted]}
