"""Seed 001's workflow templates, loadable per tenant as inactive drafts a CSM adjusts and activates.

The emails are seed 001's sequences (its "Email Types"): the onboarding emails at 0h, 3 days and a week after
(each action's ``delay`` makes the run wait, automation.waits), the health alerts to the account owner and
the customer contact, and the renewal campaign at 90, 30 and 7 days. Their templates are delivery's defaults
(``delivery.email.DEFAULT_TEMPLATES``)."""

from __future__ import annotations

from .models import Workflow
from .services import workflow_save

TEMPLATES = [
    {
        "name": "Onboarding sequence",
        "description": "A new account gets a kickoff task for its CSM, an onboarding tag and seed 001's three "
                       "onboarding emails (now, 3 days later, a week after that).",
        "trigger_type": "account_created",
        "actions": [
            {"type": "create_task", "config": {"title": "Kickoff call with {{ account.name }}", "due_days": 2,
                                               "priority": "high", "assignee": "auto"}},
            {"type": "add_tag", "config": {"tag": "onboarding"}},
            {"type": "send_email", "config": {"template_id": "welcome_email", "subject": "Welcome to {{ account.name }}!",
                                              "delay": "1h"}},  # an hour: time to add the contacts
            {"type": "send_email", "config": {"template_id": "getting_started", "delay": "3d"}},
            {"type": "send_email", "config": {"template_id": "first_week_checkin", "delay": "1w"}},
        ],
    },
    {
        "name": "Health score alert",
        "description": "The health score drops by 10 points or more and ends below 60.",
        "trigger_type": "health_score_change",
        "trigger_config": {"threshold": 60, "direction": "decrease", "minimum_change": 10},
        "cooldown_minutes": 24 * 60,
        "actions": [
            {"type": "create_task", "config": {
                "title": "Health dropped for {{ account.name }} ({{ event.previous_score }} -> {{ event.current_score }})",
                "description": "Review usage, tickets and recent engagements; reach out to the champion.",
                "due_days": 1, "priority": "high", "assignee": "auto"}},
            {"type": "send_email", "config": {"template_id": "health_concern", "recipient": "primary_contact"}},
            {"type": "send_email", "config": {"template_id": "health_concern", "recipient": "account_owner"}},
        ],
    },
    {
        "name": "Churn risk alert",
        "description": "Churn risk above 70 (a health score under 30): urgent intervention by the owner and the "
                       "CS managers.",
        "trigger_type": "health_score_change",
        "trigger_config": {"threshold": 30, "direction": "decrease"},
        "cooldown_minutes": 7 * 24 * 60,
        "actions": [
            {"type": "send_email", "config": {"template_id": "urgent_intervention", "recipient": "account_owner"}},
            {"type": "send_email", "config": {"template_id": "urgent_intervention", "recipient": "internal_team"}},
        ],
    },
    *[
        {
            "name": f"Renewal reminder: {days} days",
            "description": f"Checked daily: the renewal is {days} days away.",
            "trigger_type": "time_based",
            "trigger_config": {"model_type": "account", "check_every": "1d"},
            "conditions": {"all": [
                {"field": "renewal_date", "operator": "lte", "value": f"in {days} days"},
                {"field": "renewal_date", "operator": "greater_than", "value": f"in {days - 1} days"},
            ]},
            "cooldown_minutes": 7 * 24 * 60,
            "actions": [
                {"type": "create_task", "config": {"title": f"Renewal in {days} days: {{{{ account.name }}}}",
                                                   "due_days": min(days, 7), "priority": priority,
                                                   "assignee": "auto"}},
                {"type": "send_email", "config": {"template_id": template, "subject": subject,
                                                  "recipient": "primary_contact"}},
            ],
        }
        for days, priority, template, subject in (
            (90, "medium", "renewal_planning", "Let's plan your renewal"),
            (30, "high", "renewal_reminder", "Your contract expires soon"),
            (7, "urgent", "urgent_renewal", "Action required: Contract renewal"))
    ],
    {
        "name": "Churn prevention",
        "description": "An account moves to the At Risk stage: escalate and tag it.",
        "trigger_type": "stage_change",
        "trigger_config": {"to_stage": "At Risk"},
        "actions": [
            {"type": "add_tag", "config": {"tag": "churn-risk"}},
            {"type": "create_task", "config": {"title": "Save plan for {{ account.name }}", "due_days": 2,
                                               "priority": "urgent", "assignee": "auto"}},
        ],
    },
    {
        "name": "Expansion opportunity",
        "description": "A healthy account (80+) with a renewal ahead: look for expansion.",
        "trigger_type": "health_score_change",
        "trigger_config": {"threshold": 80, "direction": "increase"},
        "cooldown_minutes": 30 * 24 * 60,
        "actions": [
            {"type": "create_task", "config": {"title": "Expansion conversation with {{ account.name }}",
                                               "due_days": 14, "priority": "medium", "assignee": "auto"}},
            {"type": "add_tag", "config": {"tag": "expansion"}},
        ],
    },
]


def workflow_templates_load(*, tenant) -> list[Workflow]:
    """Create the templates the tenant does not have yet (by name), as drafts; idempotent."""
    existing = set(Workflow.objects.for_tenant(tenant).values_list("name", flat=True))
    created = []
    for template in TEMPLATES:
        if template["name"] in existing:
            continue
        data = {**template, "status": Workflow.Status.DRAFT, "source": "template"}
        created.append(workflow_save(rule=Workflow(tenant=tenant), data=data))
    return created
