"""The nightly import (``accounts.health_import``): many scores at once, each as ``health_score_record`` records it."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.health_import import health_scores_import
from accounts.models import Account, HealthScore, RiskLevel
from automation.models import Event
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


def test_rules_see_the_events_a_single_score_raises(tenant):
    WorkflowFactory(tenant=tenant, name="Dropped", trigger_type="health_score_change", actions=NOTE)
    WorkflowFactory(tenant=tenant, name="Changed", trigger_type="field_changed", model_type="account",
                    trigger_config={"fields": ["health_score"]}, actions=NOTE)
    single, bulk = AccountFactory(tenant=tenant), AccountFactory(tenant=tenant)
    Event.objects.all().delete()

    def events_of(account):
        return sorted((e.type, sorted(e.changes), e.payload.get("current_score"))
                      for e in Event.objects.filter(account_id=account.pk))

    services.health_score_record(account=single, components=SCORES)
    imported(tenant, [(bulk.pk, SCORES)])

    assert events_of(bulk) == events_of(single) == [
        ("health_score_change", [], 35.0), ("model_updated", ["health_score", "risk_level"], None)]


def test_it_costs_the_same_queries_for_10_or_40_accounts_when_no_rule_listens(tenant):
    accounts = [AccountFactory(tenant=tenant) for _ in range(50)]

    def queries(chunk):
        with CaptureQueriesContext(connection) as captured:
            imported(tenant, [(a.pk, SCORES) for a in chunk])
        return len(captured)

    assert queries(accounts[:10]) == queries(accounts[10:])
    assert Account.objects.filter(health_score__isnull=False).count() == 50
