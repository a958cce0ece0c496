"""Health scores (seed 004): weighting, missing components, risk bands, history and roll-ups."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import selectors, services, signals
from accounts.models import Account, HealthScore, RiskLevel
from tests.factories import AccountFactory, TenantFactory

pytestmark = pytest.mark.django_db

NAMES = ("usage_score", "engagement_score", "support_sentiment_score", "adoption_score")


def components(usage, engagement, support, adoption):
    return dict(zip(NAMES, (usage, engagement, support, adoption)))


def record(account, *values, days_ago=None):
    at = timezone.now() - datetime.timedelta(days=days_ago) if days_ago is not None else None
    return services.health_score_record(account=account, components=components(*values), calculated_at=at)


@pytest.fixture
def recorded():
    """Every ``health_score_recorded`` sent during the test, as its keyword arguments."""
    sent = []

    def receiver(sender, **kwargs):
        sent.append({"sender": sender, **kwargs})

    signals.health_score_recorded.connect(receiver, weak=False)
    yield sent
    signals.health_score_recorded.disconnect(receiver)


def test_it_weights_components_35_25_20_20(tenant):
    account = AccountFactory(tenant=tenant)
    score = record(account, 30, 35, 40, 35)
    assert score.overall_score == Decimal("34.25")
    assert score.risk_level == RiskLevel.CRITICAL
    assert {name: score.breakdown[name]["weight"] for name in NAMES} == {
        "usage_score": 0.35, "engagement_score": 0.25, "support_sentiment_score": 0.2, "adoption_score": 0.2,
    }
    assert {name: score.breakdown[name]["contribution"] for name in NAMES} == {
        "usage_score": 10.5, "engagement_score": 8.75, "support_sentiment_score": 8.0, "adoption_score": 7.0,
    }
    assert "missing" not in score.breakdown


def test_it_leaves_out_missing_components_and_renormalises_the_weights(tenant):
    account = AccountFactory(tenant=tenant)
    score = record(account, 80, None, None, 40)
    assert score.overall_score == Decimal("65.45")
    assert score.risk_level == RiskLevel.MODERATE
    assert score.engagement_score is None and score.support_sentiment_score is None
    assert set(score.breakdown) == {"usage_score", "adoption_score", "missing"}
    assert score.breakdown["missing"] == ["engagement_score", "support_sentiment_score"]
    assert score.breakdown["usage_score"]["score"] == 80
    assert score.breakdown["usage_score"]["weight"] == pytest.approx(35 / 55, abs=0.0001)
    assert score.breakdown["adoption_score"]["weight"] == pytest.approx(20 / 55, abs=0.0001)
    assert score.breakdown["usage_score"]["contribution"] == pytest.approx(80 * 35 / 55, abs=0.01)
    assert score.breakdown["adoption_score"]["contribution"] == pytest.approx(40 * 20 / 55, abs=0.01)


@pytest.mark.parametrize("values", [
    (30, 35, 40, 35),
    (80, None, None, 40),
    (Decimal("51.62"), Decimal("41.66"), Decimal("74.93"), Decimal("18.73")),
    (Decimal("33.33"), Decimal("66.67"), Decimal("12.35"), Decimal("98.05")),
    (None, Decimal("81.17"), None, Decimal("77.37")),
])
def test_it_gives_contributions_that_add_up_to_the_overall_score(tenant, values):
    overall, breakdown = services.health_score_compute(tenant=tenant, components=components(*values))
    used = [entry for name, entry in breakdown.items() if name != "missing"]
    assert len(used) == sum(v is not None for v in values)
    assert sum(Decimal(str(entry["contribution"])) for entry in used) == pytest.approx(overall, abs=Decimal("0.01"))
    assert sum(entry["weight"] for entry in used) == pytest.approx(1, abs=0.001)


@pytest.mark.parametrize("value, level", [
    ("100", RiskLevel.HEALTHY),
    ("80", RiskLevel.HEALTHY),
    ("79.99", RiskLevel.MODERATE),
    ("60", RiskLevel.MODERATE),
    ("59.99", RiskLevel.AT_RISK),
    ("40", RiskLevel.AT_RISK),
    ("39.99", RiskLevel.CRITICAL),
    ("0", RiskLevel.CRITICAL),
])
def test_it_puts_scores_on_band_boundaries_in_the_right_risk_level(tenant, value, level):
    account = AccountFactory(tenant=tenant)
    score = record(account, *[Decimal(value)] * 4)
    assert score.overall_score == Decimal(value)
    assert score.risk_level == level
    account.refresh_from_db()
    assert account.risk_level == level


def test_it_uses_the_tenants_own_weights_and_bands(tenant):
    custom = TenantFactory(weight_usage=Decimal("100"), weight_engagement=Decimal("0"),
                           weight_support=Decimal("0"), weight_adoption=Decimal("0"),
                           band_healthy=Decimal("90"), band_moderate=Decimal("70"), band_at_risk=Decimal("50"))
    default_score = record(AccountFactory(tenant=tenant), 85, 20, 20, 20)
    custom_score = record(AccountFactory(tenant=custom), 85, 20, 20, 20)
    assert default_score.overall_score == Decimal("42.75")
    assert default_score.risk_level == RiskLevel.AT_RISK
    assert custom_score.overall_score == Decimal("85.00")
    assert custom_score.risk_level == RiskLevel.MODERATE  # 85 is below this tenant's healthy band of 90


def test_it_refuses_a_score_without_components(tenant):
    account = AccountFactory(tenant=tenant)
    with pytest.raises(ValidationError):
        record(account, None, None, None, None)
    with pytest.raises(ValidationError):
        services.health_score_record(account=account, components={})
    assert not HealthScore.objects.filter(account=account).exists()
    account.refresh_from_db()
    assert account.health_score is None


@pytest.mark.parametrize("bad", [150, -1, "lots"])
def test_it_refuses_a_component_outside_0_to_100(tenant, bad):
    account = AccountFactory(tenant=tenant)
    with pytest.raises(ValidationError):
        record(account, bad, 50, 50, 50)
    assert not HealthScore.objects.filter(account=account).exists()


def test_it_remembers_the_previous_score(tenant):
    account = AccountFactory(tenant=tenant)
    first = record(account, 70, 70, 70, 70, days_ago=2)
    second = record(account, 60, 60, 60, 60, days_ago=1)
    third = record(account, 50, 50, 50, 50)
    assert first.previous_score is None
    assert second.previous_score == Decimal("70.00")
    assert third.previous_score == Decimal("60.00")


def test_it_keeps_the_current_score_when_an_older_score_is_recorded(tenant):
    account = AccountFactory(tenant=tenant)
    record(account, 50, 50, 50, 50, days_ago=40)
    record(account, 90, 90, 90, 90)
    backdated = record(account, 20, 20, 20, 20, days_ago=10)
    account.refresh_from_db()
    assert account.health_score == Decimal("90.00")
    assert account.risk_level == RiskLevel.HEALTHY
    # the backdated score follows the one before it in time, not the newer current score
    assert backdated.previous_score == Decimal("50.00")
    assert HealthScore.objects.filter(account=account).latest().overall_score == Decimal("90.00")


def test_it_mirrors_the_latest_score_on_the_account(tenant):
    account = AccountFactory(tenant=tenant)
    record(account, 90, 90, 90, 90, days_ago=1)
    record(account, 30, 35, 40, 35)
    assert account.health_score == Decimal("34.25")  # the caller's object is kept in step too
    fresh = Account.objects.get(pk=account.pk)
    assert fresh.health_score == Decimal("34.25")
    assert fresh.risk_level == RiskLevel.CRITICAL


def test_it_announces_each_recorded_score_with_the_previous_one(tenant, recorded):
    account = AccountFactory(tenant=tenant)
    first = record(account, 70, 70, 70, 70, days_ago=1)
    second = record(account, 30, 35, 40, 35)
    assert [(r["sender"], r["score"], r["previous"]) for r in recorded] == [
        (HealthScore, first, None), (HealthScore, second, first),
    ]
    assert recorded[1]["score"].overall_score == Decimal("34.25")
    assert recorded[1]["previous"].overall_score == Decimal("70.00")


def test_it_reports_the_trend_over_the_last_30_days(tenant, other_tenant):
    rising = AccountFactory(tenant=tenant, name="Rising")
    record(rising, 50, 50, 50, 50, days_ago=45)
    record(rising, 60, 60, 60, 60, days_ago=31)
    record(rising, 70, 70, 70, 70, days_ago=10)
    record(rising, 75, 75, 75, 75)
    falling = AccountFactory(tenant=tenant, name="Falling")
    record(falling, 65, 65, 65, 65, days_ago=30.5)
    record(falling, 35, 35, 35, 35)
    AccountFactory(tenant=tenant, name="Never scored")
    theirs = AccountFactory(tenant=other_tenant, name="Theirs")
    record(theirs, 10, 10, 10, 10, days_ago=40)

    trends = dict(selectors.accounts_with_trend(Account.objects.for_tenant(tenant)).values_list("name", "health_trend"))
    assert trends == {"Rising": Decimal("15.00"), "Falling": Decimal("-30.00"), "Never scored": None}


def test_it_rolls_up_health_weighted_by_arr_over_three_levels(tenant, other_tenant):
    parent = AccountFactory(tenant=tenant, name="Parent", arr=Decimal("100000"))
    child = AccountFactory(tenant=tenant, name="Child", parent=parent, arr=Decimal("50000"))
    grandchild = AccountFactory(tenant=tenant, name="Grandchild", parent=child, arr=Decimal("50000"))
    unscored = AccountFactory(tenant=tenant, name="New subsidiary", parent=child, arr=Decimal("10000"))
    outsider = AccountFactory(tenant=tenant, name="Unrelated", arr=Decimal("999999"))
    parent_view = Account.objects.get(pk=parent.pk)  # loaded before any score was recorded
    for account, value in ((parent, 80), (child, 50), (grandchild, 20), (outsider, 100)):
        record(account, *[value] * 4)

    rollup = selectors.account_health_rollup(parent_view)
    # (80 * 100k + 50 * 50k + 20 * 50k) / 200k; the unscored account's ARR does not dilute the score
    assert rollup["rollup_score"] == 57.5
    assert rollup["accounts_included"] == 4
    assert rollup["accounts_scored"] == 3
    assert rollup["unscored_accounts"] == [{"id": str(unscored.pk), "name": "New subsidiary"}]

    child_rollup = selectors.account_health_rollup(child)
    assert child_rollup["rollup_score"] == 35.0
    assert child_rollup["accounts_included"] == 3


def test_it_averages_the_rollup_when_no_account_has_arr(tenant):
    parent = AccountFactory(tenant=tenant, arr=Decimal("0"))
    child = AccountFactory(tenant=tenant, parent=parent, arr=Decimal("0"))
    grandchild = AccountFactory(tenant=tenant, parent=child, arr=Decimal("0"))
    for account, value in ((parent, 90), (child, 60), (grandchild, 30)):
        record(account, *[value] * 4)
    rollup = selectors.account_health_rollup(parent)
    assert rollup["rollup_score"] == 60.0
    assert rollup["unscored_accounts"] == []


def test_it_has_no_rollup_score_when_nothing_is_scored(tenant):
    parent = AccountFactory(tenant=tenant, name="Parent")
    AccountFactory(tenant=tenant, name="Child", parent=parent)
    rollup = selectors.account_health_rollup(parent)
    assert rollup["rollup_score"] is None
    assert [a["name"] for a in rollup["unscored_accounts"]] == ["Parent", "Child"]
