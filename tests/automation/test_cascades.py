"""Cascade semantics (docs/automation.md, "Cascades"): conditions read the record as the event describes it,
a rule runs at most once per record per chain of runs, and the run that stops a chain says why."""

from __future__ import annotations

import pytest

from accounts.models import Account, Note
from automation.models import Event, Run
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db

TRIGGERS = "/api/event-triggers"
ACCOUNTS = "/api/accounts/"


def flip(name: str, when: str, then: str) -> dict:
    return {"name": name, "trigger_type": "model_updated", "model_type": "App\\Models\\Account",
            "trigger_conditions": [{"field": "industry", "operator": "equals", "value": when}],
            "action_configuration": {"actions": [{"type": "update_field", "field": "industry", "value": then}]},
            "is_active": True}


def runs_of(rule_id) -> list[tuple[str, str]]:
    return list(Run.objects.filter(workflow_id=rule_id).order_by("id").values_list("status", "skip_reason"))


def test_a_ping_pong_pair_of_rules_stops_after_each_ran_once_and_says_loop_detected(
        api, tenant, django_capture_on_commit_callbacks):
    account = AccountFactory(tenant=tenant, industry="Retail")
    ping = api.post(TRIGGERS, flip("ping -> pong", "ping", "pong"), format="json").json()["id"]
    pong = api.post(TRIGGERS, flip("pong -> ping", "pong", "ping"), format="json").json()["id"]

    with django_capture_on_commit_callbacks(execute=True):
        assert api.patch(f"{ACCOUNTS}{account.pk}/", {"industry": "ping"}, format="json").status_code == 200

    # PATCH -> ping rule sets pong -> pong rule sets ping -> the ping rule already ran for this account in
    # this chain: skipped, with the reason. Two writes, not thirty.
    assert runs_of(ping) == [("success", ""), ("skipped", "conditions_not_met"), ("skipped", "loop_detected")]
    assert runs_of(pong) == [("skipped", "conditions_not_met"), ("success", ""), ("skipped", "conditions_not_met")]
    account.refresh_from_db()
    assert account.industry == "ping"
    chain = Event.objects.order_by("id").values_list("depth", "chain_id")
    first = Event.objects.order_by("id").first()
    assert list(chain) == [(0, None), (1, first.pk), (2, first.pk)]
    loop = Run.objects.get(workflow_id=ping, skip_reason="loop_detected")
    shown = api.get(f"/api/admin/automation/{ping}/runs", {"skip_reason": "loop_detected"}).json()
    assert [r["id"] for r in shown["runs"]] == [loop.pk]


def test_conditions_read_the_record_as_the_event_describes_it_not_as_an_earlier_rule_left_it(
        api, tenant, django_capture_on_commit_callbacks):
    """The second rule (industry = pong) must not fire on the PATCH to ping just because the first rule,
    run before it on the same event, already changed the row to pong."""
    account = AccountFactory(tenant=tenant, industry="Retail")
    api.post(TRIGGERS, flip("ping -> pong", "ping", "pong"), format="json")
    note_on_pong = {"name": "note on pong", "trigger_type": "model_updated", "model_type": "account",
                    "trigger_conditions": [{"field": "industry", "operator": "equals", "value": "pong"}],
                    "action_configuration": {"actions": [{"type": "create_note", "content": "saw {{ entity.industry }}"}]},
                    "is_active": True}
    api.post(TRIGGERS, note_on_pong, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"{ACCOUNTS}{account.pk}/", {"industry": "ping"}, format="json")

    # One note: for the event of the rule's own write to pong (depth 1), none for the PATCH's event.
    notes = list(Note.objects.filter(account=account).values_list("body", flat=True))
    assert notes == ["saw pong"]
    run = Run.objects.get(workflow__name="note on pong", status="success")
    assert run.event.depth == 1


def test_a_chain_started_by_another_change_runs_the_rule_again(api, tenant, django_capture_on_commit_callbacks):
    account = AccountFactory(tenant=tenant, industry="Retail")
    ping = api.post(TRIGGERS, flip("ping -> pong", "ping", "pong"), format="json").json()["id"]
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            api.patch(f"{ACCOUNTS}{account.pk}/", {"industry": "ping"}, format="json")
    assert [status for status, _ in runs_of(ping)].count("success") == 2
    assert Account.objects.get(pk=account.pk).industry == "pong"


def test_a_rule_on_the_health_score_reads_each_events_own_score(api, tenant, django_capture_on_commit_callbacks):
    """Two scores recorded before the worker runs: each event is judged by the score it reports, not by the
    latest one on the row (the account's mirrors are in the event's snapshot)."""
    from tests.factories import health_score  # noqa: PLC0415 - the only test here that records scores

    account = AccountFactory(tenant=tenant)
    health_score(account, usage_score=70, engagement_score=70, support_sentiment_score=70, adoption_score=70)
    api.post(TRIGGERS, {"name": "Dropped below 40", "trigger_type": "field_changed", "model_type": "account",
                        "trigger_conditions": [{"field": "health_score", "operator": "less_than", "value": 40}],
                        "action_configuration": {"actions": [
                            {"type": "create_note", "content": "score {{ entity.health_score }}"}]},
                        "is_active": True}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        health_score(account, usage_score=35, engagement_score=35, support_sentiment_score=35, adoption_score=35)
        health_score(account, usage_score=80, engagement_score=80, support_sentiment_score=80, adoption_score=80)
    assert list(Note.objects.values_list("body", flat=True)) == ["score 35.00"]
