"""The nightly import (``accounts.health_import``): many scores at once, each as ``health_score_record`` records it."""

import datetime
from decimal import Decimal

import pytest
from celery.signals import task_prerun
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.health_import import health_scores_import, health_scores_imported
from accounts.models import Account, HealthScore, Note, RiskLevel
from automation.events import PROCESS_EVENT_TASK
from automation.models import Event
from automation.signals import health_scores_imported_in_bulk
from csplatform.tenancy import tenant_context
from tests.factories import AccountFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

SCORES = {"usage_score": 30, "engagement_score": 50, "support_sentiment_score": 40, "adoption_score": 20}
NOTE = [{"type": "create_note", "config": {"body": "Score moved"}}]


def imported(tenant, rows, **kwargs):
    with tenant_context(tenant):
        return health_scores_import(tenant=tenant, rows=rows, **kwargs)


def test_it_records_the_score_health_score_record_would(tenant):
    single, bulk = AccountFactory(tenant=tenant), AccountFactory(tenant=tenant)
    for account in (single, bulk):
        services.health_score_record(account=account, components={"usage_score": 90},
                                     calculated_at=timezone.now() - datetime.timedelta(days=2))

    expected = services.health_score_record(account=single, components=SCORES)
    result = imported(tenant, [(bulk.pk, SCORES)])

    assert (result.recorded, result.errors) == (1, {})
    score = HealthScore.objects.filter(account=bulk).first()
    fields = ("overall_score", "risk_level", "previous_score", "breakdown", *SCORES)
    assert {f: getattr(score, f) for f in fields} == {f: getattr(expected, f) for f in fields}
    bulk.refresh_from_db()
    assert (bulk.health_score, bulk.risk_level) == (expected.overall_score, RiskLevel.CRITICAL)


def test_it_leaves_the_account_alone_when_a_later_score_exists(tenant):
    account = AccountFactory(tenant=tenant)
    services.health_score_record(account=account, components={"usage_score": 90})

    imported(tenant, [(account.pk, SCORES)], calculated_at=timezone.now() - datetime.timedelta(days=3))

    account.refresh_from_db()
    assert account.health_score == Decimal("90.00")
    assert HealthScore.objects.filter(account=account).count() == 2


def test_it_carries_an_active_adjustment(tenant):
    account = AccountFactory(tenant=tenant)
    services.health_score_record(account=account, components={"usage_score": 50})
    services.health_score_adjust(account=account, adjustment=10, reason="Exec sponsor engaged")

    imported(tenant, [(account.pk, {"usage_score": 60})])

    latest = HealthScore.objects.filter(account=account).first()
    assert (latest.overall_score, latest.adjustment_reason) == (Decimal("70.00"), "Exec sponsor engaged")


def test_it_reports_bad_rows_and_records_the_others(tenant, other_tenant):
    good, foreign = AccountFactory(tenant=tenant), AccountFactory(tenant=other_tenant)

    result = imported(tenant, [(good.pk, SCORES), (foreign.pk, SCORES), (good.pk, {"usage_score": 130})])

    assert result.recorded == 1
    assert result.errors[str(foreign.pk)] == {"account": ["No such account in this tenant."]}
    assert list(result.errors) == [str(foreign.pk), str(good.pk)]
    assert not HealthScore.objects.filter(account=foreign).exists()


def listening_rules(tenant):
    WorkflowFactory(tenant=tenant, name="Dropped", trigger_type="health_score_change", actions=NOTE)
    WorkflowFactory(tenant=tenant, name="Changed", trigger_type="field_changed", model_type="account",
                    trigger_config={"fields": ["health_score"]}, actions=NOTE)
    WorkflowFactory(tenant=tenant, name="Scored", trigger_type="model_created", model_type="healthscore",
                    actions=NOTE)


def events_of(account, score):
    """The account's events as a rule reads them, with the ids and times that differ between two accounts or two
    recordings written as names."""
    names = {str(account.pk): "<account>", score.pk: "<score>", str(score.pk): "<score>"}

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k not in ("created_at", "updated_at", "calculated_at")}
        return names.get(value, value) if isinstance(value, (str, int)) else value

    return [(e.type, e.model, names.get(e.object_id, e.object_id), plain(e.changes), plain(e.payload), e.depth)
            for e in Event.objects.filter(account_id=account.pk).order_by("id")]


@pytest.mark.parametrize("receiver", ["bulk (automation's receiver)", "per-row signals"])
def test_rules_see_the_events_a_single_score_raises(tenant, receiver):
    listening_rules(tenant)
    single, bulk = AccountFactory(tenant=tenant, name="Twin"), AccountFactory(tenant=tenant, name="Twin")
    for account in (single, bulk):
        services.health_score_record(account=account, components={"usage_score": 90},
                                     calculated_at=timezone.now() - datetime.timedelta(days=2))
    Event.objects.all().delete()
    if receiver == "per-row signals":
        assert health_scores_imported.disconnect(sender=HealthScore,
                                                 dispatch_uid="automation.signals.health_scores_imported")
    try:
        at = timezone.now()
        services.health_score_record(account=single, components=SCORES, calculated_at=at)
        imported(tenant, [(bulk.pk, SCORES)], calculated_at=at)
    finally:
        health_scores_imported.connect(health_scores_imported_in_bulk, sender=HealthScore,
                                       dispatch_uid="automation.signals.health_scores_imported")

    expected = events_of(single, HealthScore.objects.filter(account=single).first())
    assert events_of(bulk, HealthScore.objects.filter(account=bulk).first()) == expected
    assert [(kind, model) for kind, model, *_ in expected] == [
        ("model_created", "healthscore"), ("model_updated", "account"), ("health_score_change", "account")]
    change = expected[2][4]
    assert (change["current_score"], change["previous_score"], change["window_scores"]) == (
        35.0, 90.0, {"1h": 90.0, "1d": 90.0, "1w": None})
    assert expected[1][3] == {"health_score": {"old": "90.00", "new": "35.00"},
                              "risk_level": {"old": "healthy", "new": "critical"}}


def test_the_rules_run_for_every_imported_account_with_one_message_per_50_events(tenant, on_commit):
    WorkflowFactory(tenant=tenant, name="Dropped", trigger_type="health_score_change", actions=NOTE)
    accounts = [AccountFactory(tenant=tenant) for _ in range(120)]

    tasks = []

    def started(sender=None, **kwargs):
        tasks.append(sender.name)

    task_prerun.connect(started, weak=False)
    try:
        with on_commit():
            result = imported(tenant, [(a.pk, SCORES) for a in accounts])
    finally:
        task_prerun.disconnect(started)

    assert result.recorded == 120
    assert tasks == [PROCESS_EVENT_TASK] * 3  # 120 events: one message per batch of 50, not 120
    assert Note.objects.filter(account__in=accounts, body="Score moved").count() == 120
    assert not Event.objects.filter(processed_at__isnull=True).exists()


def test_a_second_row_for_an_account_follows_the_first(tenant):
    account = AccountFactory(tenant=tenant)

    result = imported(tenant, [(account.pk, {"usage_score": 80}), (account.pk, SCORES)])

    assert result.recorded == 2
    latest, first = HealthScore.objects.filter(account=account)[:2]
    assert (first.overall_score, latest.overall_score, latest.previous_score) == (
        Decimal("80.00"), Decimal("35.00"), Decimal("80.00"))
    account.refresh_from_db()
    assert account.health_score == Decimal("35.00")


def test_a_row_naming_no_account_id_is_reported(tenant):
    result = imported(tenant, [("GlobalTech", SCORES)])

    assert (result.recorded, result.errors) == (0, {"GlobalTech": {"account": ["'GlobalTech' is not an account id."]}})


def test_it_costs_the_same_queries_for_10_or_40_accounts_when_no_rule_listens(tenant):
    accounts = [AccountFactory(tenant=tenant) for _ in range(50)]

    def queries(chunk):
        with CaptureQueriesContext(connection) as captured:
            imported(tenant, [(a.pk, SCORES) for a in chunk])
        return len(captured)

    assert queries(accounts[:10]) == queries(accounts[10:])
    assert Account.objects.filter(health_score__isnull=False).count() == 50
