"""The six default journeys of seed 002 (13 steps), as data.

``crm.services.crm_journeys_ensure(tenant)`` creates the missing ones for a tenant (each with the automation
rule that starts it on its ``trigger_event``, ``crm.rules``); a journey a tenant already has (edited in the
admin or not) is never overwritten. ``delay_hours`` counts from the previous step (for the first step: from
the start of the journey).
"""

from __future__ import annotations

DEFAULT_JOURNEYS: list[dict] = [
    {
        "name": "payment_failed_rescue",
        "title": "Payment failed rescue",
        "description": "A payment failed: ask for new payment details at once, offer 20% a day later, "
                       "then ask the account owner to reach out personally.",
        "trigger_event": "payment_failed",
        "reentry_cooldown_hours": 168,
        "steps": [
            {"name": "Payment update required", "delay_hours": 0, "channel": "email",
             "template": "crm/rescue.html", "subject": "Action needed: update your payment details for {{ account.name }}"},
            {"name": "Chat with discount", "delay_hours": 24, "channel": "chat",
             "template": "crm/rescue_chat.txt", "discount_percent": 20},
            {"name": "Owner outreach", "delay_hours": 48, "channel": "owner_dm",
             "template": "crm/owner_rescue.txt", "subject": "Payment rescue: please call {{ contact.name }} at {{ account.name }}"},
        ],
    },
    {
        "name": "trial_ending",
        "title": "Trial ending",
        "description": "Three days before the trial ends: an email, then a chat with 15% off one day before.",
        "trigger_event": "trial_ending",
        "max_entries": 1,
        "steps": [
            {"name": "Trial ends in 3 days", "delay_hours": 0, "channel": "email",
             "template": "crm/trial_ending.html", "subject": "Your {{ account.name }} trial ends in 3 days"},
            {"name": "Last day offer", "delay_hours": 48, "channel": "chat",
             "template": "crm/trial_ending_chat.txt", "discount_percent": 15},
        ],
    },
    {
        "name": "inactivity_nudge",
        "title": "Inactivity nudge",
        "description": "No login for 14 days: a friendly chat now, an email with 10% off three days later.",
        "trigger_event": "inactivity",
        "reentry_cooldown_hours": 720,
        "steps": [
            {"name": "We miss you", "delay_hours": 0, "channel": "chat", "template": "crm/inactivity_chat.txt"},
            {"name": "Come back offer", "delay_hours": 72, "channel": "email", "template": "crm/inactivity.html",
             "subject": "We miss you at {{ account.name }}: {{ discount_percent }}% off inside", "discount_percent": 10},
        ],
    },
    {
        "name": "winback",
        "title": "Winback",
        "description": "After a cancellation: ask for feedback a day later, make a 30% offer a week after that.",
        "trigger_event": "cancellation",
        "reentry_cooldown_hours": 2160,
        "steps": [
            {"name": "Feedback request", "delay_hours": 24, "channel": "email",
             "template": "crm/winback_feedback.html", "subject": "Could you tell us why you left?"},
            {"name": "Winback offer", "delay_hours": 168, "channel": "email", "template": "crm/winback.html",
             "subject": "Come back to us: {{ discount_percent }}% off", "discount_percent": 30},
        ],
    },
    {
        "name": "milestone_congrats",
        "title": "Milestone congratulations",
        "description": "A goal was achieved: celebrate in chat now, invite to share a day later.",
        "trigger_event": "milestone",
        "steps": [
            {"name": "Congratulations", "delay_hours": 0, "channel": "chat", "template": "crm/milestone_chat.txt"},
            {"name": "Share the success", "delay_hours": 24, "channel": "email", "template": "crm/milestone_share.html",
             "subject": "Congratulations, {{ account.name }}! Share your success"},
        ],
    },
    {
        "name": "churn_risk",
        "title": "Churn risk",
        "description": "The risk level became At Risk or Critical: offer help at once, "
                       "ask the account owner to step in two days later.",
        "trigger_event": "churn_risk",
        "reentry_cooldown_hours": 336,
        "steps": [
            {"name": "Can we help?", "delay_hours": 0, "channel": "email", "template": "crm/churn_risk.html",
             "subject": "How can we help {{ account.name }}?"},
            {"name": "Owner escalation", "delay_hours": 48, "channel": "owner_dm",
             "template": "crm/owner_churn_risk.txt",
             "subject": "Churn risk: {{ account.name }} needs you ({{ account.risk_level }})"},
        ],
    },
]
