"""What every tenant starts with: the five trigger settings (disabled, ``playbook_triggers_ensure``), the
daily evaluation schedule (06:00 in the tenant's timezone) and seed 004's two SuccessPlays as inactive
drafts (validated now; their automation rule is compiled on their first save, activation or manual
trigger, so untouched drafts add nothing to the engine). ``seed_demo`` switches the two plays on
(``enable_demo_plays``)."""

from __future__ import annotations

import logging

from django.db import transaction

from .models import Playbook, PlaybookSchedule
from .services import playbook_catch_up, playbook_create_draft, playbook_save, playbook_triggers_ensure

log = logging.getLogger("playbooks")

HEALTH_ALERT = "Health Score Alert - Critical"
STAGE_ALERT = "At Risk Stage Alert"

DEFAULT_PLAYS = [
    {
        "name": HEALTH_ALERT,
        "description": "Seed 004: the health score dropped below 40. Posts the health alert to n8n and asks the "
                       "CSM to review the account today.",
        "trigger_type": "health_score_change", "trigger_config": {"threshold": 40, "direction": "decrease"},
        "webhook_url": "http://localhost:5678/webhook/health-alert", "cooldown_minutes": 60,
        "actions": [{"type": "create_task", "config": {
            "title": "Critical health score: review {{ account.name }}", "assignee": "auto", "priority": "high",
            "due_days": 1, "description": "Health score {{ account.health_score }} ({{ account.risk_level }}). "
                                          "Review usage, open tickets and the renewal on {{ account.renewal_date }}."}}],
    },
    {
        "name": STAGE_ALERT,
        "description": "Seed 004: the account moved to the At Risk journey stage. Posts the stage alert to n8n "
                       "and asks the CSM for a rescue plan.",
        "trigger_type": "stage_change", "trigger_config": {"to_stage": "At Risk"},
        "webhook_url": "http://localhost:5678/webhook/stage-alert", "cooldown_minutes": 60,
        "actions": [{"type": "create_task", "config": {
            "title": "{{ account.name }} is At Risk: agree a rescue plan", "assignee": "auto", "priority": "high",
            "due_days": 2}}],
    },
]


@transaction.atomic
def playbook_defaults_ensure(tenant) -> list:
    """Create what is missing (idempotent; call inside the tenant's context)."""
    playbook_triggers_ensure(tenant)
    PlaybookSchedule.objects.get_or_create(tenant=tenant)
    existing = set(Playbook.objects.for_tenant(tenant).values_list("name", flat=True))
    created = []
    for spec in DEFAULT_PLAYS:
        if spec["name"] not in existing:
            created.append(playbook_create_draft(tenant=tenant, data=spec))
    return created


def enable_demo_plays(tenant) -> list:
    """Switch seed 004's two plays on and let them catch up on the accounts already in their trigger state
    (the demo's TechStart Solutions is at 35 and At Risk when the plays go live)."""
    plays = list(Playbook.objects.for_tenant(tenant).filter(name__in=[HEALTH_ALERT, STAGE_ALERT]))
    for play in plays:
        if not play.is_active:
            playbook_save(playbook=play, data={"is_active": True})
    return [run for play in plays for run in playbook_catch_up(play)]
