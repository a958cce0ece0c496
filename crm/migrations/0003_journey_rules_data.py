"""Journeys that existed before crm kept managed rules get them: until now a journey started from crm's own
signal receivers, from now on only through its automation rule (``crm.rules``), so without this step no
existing journey would start any more.

Self-contained: the rules as ``crm.rules`` built them when this migration was written (a migration must not
follow later code), written with the historical models, version 1 recorded as ``automation.0005`` does for
every rule. Journeys created later get their rules from ``crm.rules`` when they are saved; tenants that have
no journeys yet get them (and their rules) from ``crm_journeys_ensure`` (the daily scan, the admin, the API
or ``manage.py crm_ensure_journeys``).
"""

from django.db import migrations

SOURCE = "crm"
NO_CONDITIONS = {"op": "all", "conditions": []}
RISKY = ["at_risk", "critical"]
# trigger_event -> (trigger_type, normalised trigger_config, normalised conditions, when the journey starts)
TRIGGERS = {
    "cancellation": ("status_change", {"to_status": ["churned", "cancelled"], "entering": True,
                                       "include_new_accounts": False}, NO_CONDITIONS,
                     "the account's status becomes churned or cancelled"),
    "churn_risk": ("health_score_change", {"risk_levels": RISKY, "entering": True, "threshold": None,
                                           "direction": "any", "minimum_change": 0.0},
                   {"op": "all", "conditions": [{"field": "risk_level", "operator": "in", "value": RISKY}]},
                   "a health score's risk level becomes At Risk or Critical and the account is still at risk"),
    "milestone": ("goal_event", {"event": "achieved", "goal_types": [], "include_created": True}, NO_CONDITIONS,
                  "a goal of the account is achieved"),
    "payment_failed": ("event", {"event_type": "payment_failed"}, NO_CONDITIONS, "a payment of the account fails"),
    "trial_ending": ("event", {"event_type": "trial_ending"}, NO_CONDITIONS, "the account's trial ends within 3 days"),
    "inactivity": ("event", {"event_type": "inactivity"}, NO_CONDITIONS,
                   "nobody at the account logged in for 14 days"),
}
CONVERTED_BY = {"payment_failed": "payment_succeeded"}
COMMON = {"enabled": True, "model_type": "", "scope_all_accounts": True, "continue_on_error": False,
          "cooldown_minutes": None, "rate_limiting": {}, "allow_retries": False, "retry_configuration": {},
          "delay_minutes": 0, "failure_threshold": 0, "source": SOURCE}
# automation.0005's definition keys (a rule's content: everything but status and enabled), plus the scope.
DEFINITION_FIELDS = ("name", "description", "trigger_type", "model_type", "trigger_config", "conditions", "actions",
                     "scope_all_accounts", "continue_on_error", "cooldown_minutes", "rate_limiting", "debug_mode",
                     "allow_retries", "retry_configuration", "delay_minutes", "failure_threshold", "source")


def _title(journey) -> str:
    return f"CRM journey: {journey.title or journey.name}"[:180]


def _start_rule(journey) -> dict | None:
    if journey.trigger_event not in TRIGGERS:
        return None
    trigger_type, config, conditions, says = TRIGGERS[journey.trigger_event]
    return {**COMMON, "name": _title(journey),
            "description": f"Starts the CRM journey '{journey.name}' when {says}. Kept by the journey: change the "
                           f"journey (its trigger, active), not this rule.",
            "status": "active" if journey.active else "paused", "trigger_type": trigger_type,
            "trigger_config": config, "conditions": conditions, "debug_mode": conditions != NO_CONDITIONS,
            "actions": [{"type": "add_to_cadence", "config": {"journey": journey.pk, "trigger": journey.trigger_event}}]}


def _conversion_rule(journey) -> dict | None:
    event = CONVERTED_BY.get(journey.trigger_event)
    if event is None:
        return None
    return {**COMMON, "name": f"{_title(journey)} (conversion)",
            "description": f"Converts the account's open executions of the CRM journey '{journey.name}' on the "
                           f"{event} event. Kept by the journey.",
            "status": "active", "trigger_type": "event", "trigger_config": {"event_type": event},
            "conditions": NO_CONDITIONS, "debug_mode": False,
            "actions": [{"type": "convert_cadence", "config": {"journey": journey.pk, "trigger": event}}]}


def add_rules(apps, schema_editor):
    from automation import rule_index  # the cache of what live rules listen to: refreshed for every tenant touched
    from csplatform.tenancy import system_context  # row-level security binds the migration's role too

    CRMPlaybook = apps.get_model("crm", "CRMPlaybook")
    Workflow = apps.get_model("automation", "Workflow")
    WorkflowVersion = apps.get_model("automation", "WorkflowVersion")
    tenants = set()
    with system_context("migration crm.0003: managed rules of the existing journeys"):
        for journey in CRMPlaybook.objects.order_by("pk").iterator(chunk_size=500):
            changed = []
            for field, build in (("workflow", _start_rule), ("conversion_workflow", _conversion_rule)):
                data = build(journey)
                if data is None or getattr(journey, f"{field}_id") is not None:
                    continue
                rule = Workflow.objects.create(tenant_id=journey.tenant_id, version=1, **data)
                definition = {name: data[name] for name in DEFINITION_FIELDS}
                definition["scope_accounts"] = []
                WorkflowVersion.objects.create(tenant_id=journey.tenant_id, workflow=rule, number=1,
                                               definition=definition)
                setattr(journey, field, rule)
                changed.append(field)
            if changed:
                journey.save(update_fields=changed)
                tenants.add(journey.tenant_id)
    for tenant_id in tenants:
        rule_index.invalidate(tenant_id)


def remove_rules(apps, schema_editor):
    from csplatform.tenancy import system_context  # row-level security binds the migration's role too

    Workflow = apps.get_model("automation", "Workflow")
    with system_context("migration crm.0003 reversed: managed rules of the journeys"):
        Workflow.objects.filter(source=SOURCE).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("automation", "0007_delivery_models_moved"),
        ("crm", "0002_journey_rules"),
    ]

    operations = [migrations.RunPython(add_rules, remove_rules)]
