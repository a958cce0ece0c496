"""crm's action for the automation engine: ``add_to_cadence`` starts a journey from a rule.

Config: ``{"journey": "payment_failed_rescue"}`` (aliases ``playbook``, ``cadence``, ``cadence_id``,
``playbook_name``), optional ``"context": {...}`` passed to the execution. The contact is the rule's
subject when it is a contact, else the account's recipient contact (primary, else first). A contact
already in the journey is not an error: the step reports ``already_active`` with that execution.

Registered into automation's action registry from ``crm.apps`` (automation never imports crm).
"""

from __future__ import annotations

import re

from automation.actions import Action, ActionError
from automation.triggers import ConfigError

NAME = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")


class AddToCadence(Action):
    type = "add_to_cadence"
    needs_account = False
    aliases = {"playbook": "journey", "cadence": "journey", "cadence_id": "journey", "playbook_name": "journey"}

    def validate_config(self, config):
        config = super().validate_config(config)
        journey = config.get("journey")
        if journey in (None, ""):
            raise ConfigError("journey", "is required (e.g. payment_failed_rescue)")
        if not NAME.match(str(journey)):
            raise ConfigError("journey", "must be a journey name such as payment_failed_rescue, or its id")
        if not isinstance(config.get("context", {}), dict):
            raise ConfigError("context", "must be an object")
        return config

    def run(self, config, ctx):
        from accounts.models import Contact

        from .models import CRMPlaybookExecution
        from .services import JourneyRefused, playbook_get, recipient_contact, start_journey

        contact = ctx.subject if isinstance(ctx.subject, Contact) else None
        if contact is None and ctx.account is not None:
            contact = recipient_contact(ctx.account)
        if contact is None:
            raise ActionError("add_to_cadence: no contact to put in the journey (the account has no contacts)")
        journey = playbook_get(ctx.tenant, str(config["journey"]))
        if journey is None:
            raise ActionError(f"add_to_cadence: journey '{config['journey']}' does not exist")
        context = {**(config.get("context") or {}), "workflow_id": ctx.workflow.pk if ctx.workflow else None,
                   "run_id": ctx.run.pk if ctx.run else None}
        try:
            execution = start_journey(contact, journey, context, source=CRMPlaybookExecution.Source.AUTOMATION)
        except JourneyRefused as refused:
            if refused.reason == "already_active" and refused.execution is not None:
                return {"journey": journey.name, "execution_id": refused.execution.pk, "already_active": True}
            raise ActionError(f"add_to_cadence: {refused.message}") from None
        return {"journey": journey.name, "execution_id": execution.pk, "contact_id": contact.pk}
