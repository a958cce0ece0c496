"""``update_health_score`` (seed 001's HealthScoreAction): an adjustment on top of the weighted components,
replacing (never stacking on) an active one, carried onto later scores, and expiring by itself."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, HealthScore, Note, RiskLevel
from automation import engine, health_adjustments, scheduling
from automation.models import Run, Workflow
from automation.periodic import periodic_specs
from csplatform.tenancy import tenant_context
from tests.factories import AccountFactory, WorkflowFactory, health_score

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/admin/automation"
TRIGGERS = "/api/event-triggers"
HOURS = datetime.timedelta(hours=1)


def flat(account, value):
    """A score whose four components are all ``value`` (so the weighted score is ``value``)."""
    return health_score(account, usage_score=value, engagement_score=value, support_sentiment_score=value,
                        adoption_score=value)


def adjust(account, adjustment, reason="manual", duration=None, **kwargs):
    return account_services.health_score_adjust(account=account, adjustment=adjustment, reason=reason,
                                                 duration=duration, **kwargs)


@pytest.fixture
def run_events(django_capture_on_commit_callbacks):
    """Process, on commit as production does, every event the block raised."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


# --- the service -----------------------------------------------------------------------------------------

def test_an_adjustment_records_a_new_score_and_moves_the_risk_level(tenant):
    account = AccountFactory(tenant=tenant)
    base = flat(account, 70)
    assert (base.overall_score, base.risk_level) == (Decimal("70.00"), RiskLevel.MODERATE)

    score = adjust(account, 15, reason="Exec sponsor engaged")

    assert score.pk != base.pk
    assert (score.overall_score, score.risk_level, score.previous_score) == (Decimal("85.00"), RiskLevel.HEALTHY,
                                                                             Decimal("70.00"))
    assert (score.adjustment, score.adjustment_reason, score.adjustment_expires_at) == (
        Decimal("15.00"), "Exec sponsor engaged", None)
    assert score.usage_score == base.usage_score == 70  # the latest components, unchanged
    assert score.breakdown["adjustment"] == {"value": 15.0, "reason": "Exec sponsor engaged", "expires_at": None,
                                             "by": "", "weighted_score": 70.0}
    assert score.breakdown["usage_score"] == base.breakdown["usage_score"]
    account.refresh_from_db()
    assert (account.health_score, account.risk_level) == (Decimal("85.00"), RiskLevel.HEALTHY)
    base.refresh_from_db()  # history is immutable
    assert (base.overall_score, base.adjustment) == (Decimal("70.00"), 0)


@pytest.mark.parametrize("value, adjustment, expected", [(90, 25, "100.00"), (10, -40, "0.00"), (50, "-7.5", "42.50")])
def test_the_adjusted_score_is_clamped_to_0_100(tenant, value, adjustment, expected):
    account = AccountFactory(tenant=tenant)
    flat(account, value)
    assert adjust(account, adjustment).overall_score == Decimal(expected)


def test_a_new_adjustment_replaces_the_active_one_and_zero_removes_it(tenant):
    account = AccountFactory(tenant=tenant)
    flat(account, 60)
    adjust(account, -10, duration=2 * HOURS)
    second = adjust(account, -10, reason="again")
    assert (second.overall_score, second.adjustment, second.adjustment_expires_at) == (Decimal("50.00"), -10, None)
    cleared = adjust(account, 0, reason="")
    assert (cleared.overall_score, cleared.adjustment, cleared.breakdown.get("adjustment")) == (Decimal("60.00"), 0, None)


def test_an_active_adjustment_is_carried_onto_newly_recorded_scores_and_not_after_it_ended(tenant):
    account = AccountFactory(tenant=tenant)
    flat(account, 60)
    start = timezone.now()
    adjust(account, 20, duration=2 * HOURS, calculated_at=start)
    during = account_services.health_score_record(
        account=account, components={"usage_score": 40}, calculated_at=start + HOURS)
    assert (during.overall_score, during.adjustment, during.adjustment_expires_at) == (
        Decimal("60.00"), 20, start + 2 * HOURS)
    after = account_services.health_score_record(
        account=account, components={"usage_score": 40}, calculated_at=start + 3 * HOURS)
    assert (after.overall_score, after.adjustment, after.adjustment_reason) == (Decimal("40.00"), 0, "")


def test_the_service_refuses_bad_adjustments_naming_the_field(tenant):
    account = AccountFactory(tenant=tenant)
    with pytest.raises(ValidationError) as exc:
        adjust(account, 5)
    assert "account" in exc.value.message_dict  # nothing to adjust yet
    flat(account, 50)
    for kwargs, field in [({"adjustment": 101}, "adjustment"), ({"adjustment": "lots"}, "adjustment"),
                          ({"adjustment": 5, "reason": "  "}, "reason"),
                          ({"adjustment": 5, "duration": datetime.timedelta(0)}, "duration")]:
        with pytest.raises(ValidationError) as exc:
            adjust(account, **{"reason": "r", **kwargs})
        assert field in exc.value.message_dict
    assert HealthScore.objects.filter(account=account).count() == 1


# --- expiry ----------------------------------------------------------------------------------------------

def test_a_temporary_adjustment_expires_at_the_right_time(tenant):
    account = AccountFactory(tenant=tenant)
    flat(account, 70)
    start = timezone.now()
    adjusted = adjust(account, -35, reason="Escalation", duration=3 * HOURS, calculated_at=start)
    assert (adjusted.overall_score, adjusted.risk_level) == (Decimal("35.00"), RiskLevel.CRITICAL)
    assert adjusted.adjustment_expires_at == start + 3 * HOURS

    assert account_services.health_adjustments_expire(now=start + 3 * HOURS - datetime.timedelta(seconds=1)) == 0
    assert HealthScore.objects.filter(account=account).count() == 2

    assert account_services.health_adjustments_expire(now=start + 5 * HOURS) == 1
    restored = HealthScore.objects.filter(account=account).latest()
    assert (restored.overall_score, restored.risk_level, restored.adjustment) == (Decimal("70.00"), RiskLevel.MODERATE, 0)
    assert restored.calculated_at == start + 3 * HOURS  # dated when the adjustment ended, not when swept
    assert restored.previous_score == Decimal("35.00")
    assert "adjustment" not in restored.breakdown
    account.refresh_from_db()
    assert (account.health_score, account.risk_level) == (Decimal("70.00"), RiskLevel.MODERATE)
    # Idempotent: the latest score has no adjustment any more.
    assert account_services.health_adjustments_expire(now=start + 6 * HOURS) == 0


def test_a_permanent_adjustment_stays(tenant):
    account = AccountFactory(tenant=tenant)
    flat(account, 70)
    adjust(account, 12)
    assert account_services.health_adjustments_expire(now=timezone.now() + datetime.timedelta(days=3650)) == 0
    account.refresh_from_db()
    assert account.health_score == Decimal("82.00")


def test_expiry_uses_one_candidate_query_and_works_tenant_by_tenant_under_rls(tenant, other_tenant):
    accounts = [AccountFactory(tenant=t) for t in (tenant, tenant, other_tenant)]
    still = AccountFactory(tenant=other_tenant)
    for account in (*accounts, still):
        flat(account, 50)
    start = timezone.now()
    for account in accounts:
        adjust(account, 10, duration=HOURS, calculated_at=start)
    adjust(still, 10, duration=5 * HOURS, calculated_at=start)
    assert list(account_services.health_adjustments_due(start + 2 * HOURS).values_list("account_id", flat=True)
                .order_by("account_id")) == sorted(a.pk for a in accounts)
    with tenant_context(None):  # no bypass from the caller: the service opens its own scopes
        assert account_services.health_adjustments_expire(now=start + 2 * HOURS) == 3
    assert [Account.objects.get(pk=a.pk).health_score for a in (*accounts, still)] == [50, 50, 50, 60]


def test_tick_and_beat_run_the_expiry(tenant):
    assert health_adjustments.DUE_WORK in dict(scheduling.due_work())
    assert any(s.task == health_adjustments.TASK for s in periodic_specs())
    account = AccountFactory(tenant=tenant)
    flat(account, 50)
    start = timezone.now()
    adjust(account, 30, duration=2 * HOURS, calculated_at=start)
    outcome = scheduling.tick(now=start + 3 * HOURS)
    assert outcome.results[health_adjustments.DUE_WORK] == 1
    account.refresh_from_db()
    assert account.health_score == Decimal("50.00")


# --- the action ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("config, field", [
    ({"reason": "x"}, "adjustment"),
    ({"adjustment": 150, "reason": "x"}, "adjustment"),
    ({"adjustment": "plenty", "reason": "x"}, "adjustment"),
    ({"adjustment": True, "reason": "x"}, "adjustment"),
    ({"adjustment": 10}, "reason"),
    ({"adjustment": 10, "reason": "x", "temporary": True}, "duration"),
    ({"adjustment": 10, "reason": "x", "temporary": True, "duration": "2 hours"}, "duration"),
    ({"adjustment": 10, "reason": "x", "temporary": "yes", "duration": "2h"}, "temporary"),
    ({"adjustment": 10, "reason": "x", "duration": "2h"}, "duration"),
    ({"adjustment": 10, "reason": "{% load x %}"}, "reason"),
])
def test_a_bad_action_config_is_a_400_naming_the_field(api, config, field):
    response = api.post(WORKFLOWS, {"name": "Adjust", "trigger_type": "manual", "action_type": "update_health_score",
                                    "action_config": config}, format="json")
    assert response.status_code == 400
    assert f"action_config.{field}" in response.json(), response.json()
    response = api.post(TRIGGERS, {"name": "Adjust", "trigger_type": "manual",
                                   "action_configuration": {"actions": [{"type": "update_health_score", **config}]}},
                        format="json")
    assert response.status_code == 400
    assert f"action_configuration.actions[0].{field}" in response.json(), response.json()
    assert not Workflow.objects.filter(name="Adjust").exists()


def test_a_valid_action_config_is_saved(api):
    response = api.post(WORKFLOWS, {"name": "Adjust", "trigger_type": "manual", "action_type": "update_health_score",
                                    "action_config": {"adjustment": -10, "reason": "x", "temporary": True,
                                                      "duration": "3d"}}, format="json")
    assert response.status_code == 201, response.json()
    saved = Workflow.objects.get(name="Adjust")
    assert saved.actions == [{"type": "update_health_score", "config": {"adjustment": -10, "reason": "x",
                                                                        "temporary": True, "duration": "3d"}}]


def test_a_rule_adjusts_the_score_through_the_engine_and_the_adjustment_expires(tenant, run_events):
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    flat(account, 70)
    WorkflowFactory(tenant=tenant, trigger_type="health_score_change",
                    trigger_config={"threshold": 40, "direction": "decrease"},
                    cooldown_minutes=240, actions=[{"type": "update_health_score", "config": {
                        "adjustment": 15, "reason": "Fell to {{ event.current_score }}: grace while the CSM calls",
                        "temporary": True, "duration": "2h"}}])
    watcher = WorkflowFactory(tenant=tenant, name="Watcher", trigger_type="health_score_change",
                              trigger_config={"direction": "increase", "minimum_change": 10},
                              actions=[{"type": "create_note", "config": {"body": "Up to {{ event.current_score }}"}}])
    with run_events():
        flat(account, 30)

    run = Run.objects.get(workflow__name="Rule")
    assert run.status == Run.Status.SUCCESS, (run.error, list(run.steps.values("error")))
    step = run.steps.get()
    latest = HealthScore.objects.filter(account=account).latest()
    assert step.output["health_score_id"] == latest.pk
    assert (latest.overall_score, latest.risk_level, latest.adjustment) == (Decimal("45.00"), RiskLevel.AT_RISK, 15)
    assert latest.adjustment_reason == "Fell to 30.0: grace while the CSM calls"
    assert latest.breakdown["adjustment"]["by"] == f"workflow:{run.workflow_id}"
    assert latest.adjustment_expires_at == latest.calculated_at + 2 * HOURS
    account.refresh_from_db()
    assert (account.health_score, account.risk_level) == (Decimal("45.00"), RiskLevel.AT_RISK)
    # The adjustment went through the signal path: the "increase" rule saw 30 -> 45.
    assert list(Note.objects.filter(body__startswith="Up to").values_list("body", flat=True)) == ["Up to 45.0"]

    with run_events():
        assert account_services.health_adjustments_expire(now=latest.adjustment_expires_at) == 1
    account.refresh_from_db()
    assert (account.health_score, account.risk_level) == (Decimal("30.00"), RiskLevel.CRITICAL)
    restored = HealthScore.objects.filter(account=account).latest()
    assert (restored.overall_score, restored.adjustment, restored.previous_score) == (Decimal("30.00"), 0, Decimal("45.00"))
    # Expiry is a score change too and reaches the rules: the drop rule matches again (45 -> 30), and its
    # cooldown is what keeps it from re-applying the grace at once.
    assert list(Run.objects.filter(workflow__name="Rule").order_by("created_at")
                .values_list("status", "skip_reason")) == [("success", ""), ("skipped", "cooldown")]
    assert Run.objects.filter(workflow=watcher).count() == 1


def test_the_action_fails_clearly_without_a_score_to_adjust(tenant, run_events):
    account = AccountFactory(tenant=tenant)
    workflow = WorkflowFactory(tenant=tenant, actions=[{"type": "update_health_score", "config": {
        "adjustment": 5, "reason": "x"}}])
    with tenant_context(tenant):
        run = engine.fire(workflow, subject=account, account=account, manual=True)
    assert run.status == Run.Status.FAILED
    assert "no health score to adjust" in run.steps.get().error
    assert not HealthScore.objects.exists()
