"""``POST /{id}/test`` with ``backtest_days``: how often would this rule have run over the stored events?

The rule's trigger and conditions are replayed over the tenant's events of the window, nothing is run.
Two limits, reported in the answer: conditions read the subjects as they are now (only the events' own
changes are historical), and events are only stored while some live rule listens to them, so a kind of
change nobody listened to left nothing to replay.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import Account
from automation import conditions
from automation.models import Event, Workflow
from automation.subjects import model_for
from automation.triggers import triggers

MAX_EVENTS = 10_000
# Triggers started by the clock, by hand or by a caller: no stored events tell when they would have run.
NOT_EVENT_DRIVEN = ("manual", "scheduled", "time_based", "webhook")


def backtest(rule: Workflow, days: int, now=None) -> dict:
    if rule.trigger_type in NOT_EVENT_DRIVEN or rule.trigger_type not in triggers:
        raise ValidationError({"backtest_days": [f"'{rule.trigger_type}' rules are not started by stored events."]})
    trigger = triggers.get(rule.trigger_type)
    since = (now or timezone.now()) - timedelta(days=days)
    types = {event_type for event_type, _ in trigger.listens_to(rule.trigger_config, rule.model_type)}
    events = list(Event.objects.for_tenant(rule.tenant_id).filter(created_at__gte=since, type__in=types)
                  .order_by("created_at", "id")[:MAX_EVENTS + 1])
    truncated = len(events) > MAX_EVENTS
    matched = [e for e in events[:MAX_EVENTS] if trigger.matches(rule.trigger_config, rule.model_type, e)]
    subjects = _subjects(rule, matched)
    runs: Counter = Counter()
    for event in matched:
        subject = subjects.get((rule.model_type or event.model or "account", event.object_id))
        target = subject if subject is not None else subjects.get(("account", str(event.account_id)))
        if _passes(rule, target, event):
            runs[str(event.account_id) if event.account_id else ""] += 1
    names = {str(pk): name for pk, name in Account.objects.for_tenant(rule.tenant_id)
             .filter(pk__in=[a for a in runs if a]).values_list("pk", "name")}
    return {
        "days": days, "events_scanned": min(len(events), MAX_EVENTS), "truncated": truncated,
        "trigger_matched": len(matched), "would_run": sum(runs.values()),
        "accounts": [{"id": account or None, "name": names.get(account), "runs": n}
                     for account, n in runs.most_common()],
    }


def _subjects(rule: Workflow, events: list[Event]) -> dict:
    """Every subject the events name, a query per model instead of one per event."""
    wanted = defaultdict(set)
    for event in events:
        if event.object_id and event.type != "model_deleted":
            wanted[rule.model_type or event.model or "account"].add(event.object_id)
        if event.account_id:
            wanted["account"].add(str(event.account_id))
    found = {}
    for model_name, ids in wanted.items():
        rows = model_for(model_name).objects.for_tenant(rule.tenant_id).filter(pk__in=list(ids))
        found.update({(model_name, str(row.pk)): row for row in rows})
    return found


def _passes(rule: Workflow, target, event: Event) -> bool:
    if not rule.conditions or not rule.conditions.get("conditions"):
        return True
    if target is None:  # deleted since: nothing to read
        return False
    try:
        return conditions.evaluate(rule.conditions, target, changes=event.changes, now=event.created_at)
    except conditions.ConditionError:
        return False

