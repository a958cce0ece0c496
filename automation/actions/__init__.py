"""Action types: what a rule does. One small class each: ``validate_config`` and ``run``.

``base`` holds ``Action``, the ``actions`` registry, ``ActionContext`` and the template helpers;
``records`` the actions on the tenant's records (tasks, notes, tags, fields, status, owner, health
score); ``deals`` ``create_opportunity``; ``flow`` ``trigger_workflow``; ``messaging`` the ``DeliveryAction`` family (webhook, email,
SMS) and ``integrations`` its Slack/HubSpot/Salesforce members: they write ``Outbox`` messages in the
run's transaction and nothing else, ``delivery`` sends them after commit. ``crm`` registers
``add_to_cadence`` itself. Importing this package registers every action.
"""

from . import deals, flow, integrations, messaging, records  # noqa: F401  (each registers its actions)
from .base import Action, ActionContext, ActionError, ActionRefused, actions, check_json_templates, check_template, register, render
from .messaging import DeliveryAction

__all__ = [
    "Action", "ActionContext", "ActionError", "ActionRefused", "DeliveryAction", "actions", "check_json_templates", "check_template",
    "register", "render",
]
