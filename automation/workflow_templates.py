"""Seed 001's workflow templates, loadable per tenant as inactive drafts a CSM adjusts and activates."""

from __future__ import annotations

from .models import Workflow
from .services import workflow_save

TEMPLATES = [
    {
        "name": "Onboarding sequence",
        "description": "A new account gets a kickoff task for its CSM and an onboarding tag.",
        "trigger_type": "account_created",
        "actions": [
            {"type": "create_task", "config": {"title": "Kickoff call with {{ account.name }}", "due_days": 2,
                                               "priority": "high", "assignee": "auto"}},
            {"type": "add_tag", "config": {"tag": "onboarding"}},
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
            ],
        }
        for days, priority in ((90, "medium"), (30, "high"), (7, "urgent"))
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
