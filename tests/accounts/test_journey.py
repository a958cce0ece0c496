"""Journey stages: moving an account closes its current stay and opens the next one."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts import services, signals
from accounts.models import Account, JourneyHistory, JourneyStage
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db

T0 = datetime.datetime(2024, 3, 1, 9, 0, tzinfo=datetime.timezone.utc)


def stage(tenant, name):
    return JourneyStage.objects.for_tenant(tenant).get(name=name)


@pytest.fixture
def moves():
    """Every ``stage_changed`` sent during the test, as its keyword arguments."""
    sent = []

    def receiver(sender, **kwargs):
        sent.append({"sender": sender, **kwargs})

    signals.stage_changed.connect(receiver, weak=False)
    yield sent
    signals.stage_changed.disconnect(receiver)


def test_it_closes_the_open_stay_with_its_duration_and_opens_the_next(tenant):
    account = AccountFactory(tenant=tenant)
    onboarding, adoption = stage(tenant, "Onboarding"), stage(tenant, "Adoption")
    first = services.journey_move_to_stage(account=account, stage=onboarding, at=T0)
    left_at = T0 + datetime.timedelta(days=12, hours=6)
    second = services.journey_move_to_stage(account=account, stage=adoption, at=left_at, reason="live")

    first.refresh_from_db()
    assert first.exited_at == left_at
    assert first.duration == datetime.timedelta(days=12, hours=6)
    assert first.duration_days == 12.25
    assert first.from_stage is None

    second.refresh_from_db()
    assert (second.stage, second.from_stage, second.entered_at) == (adoption, onboarding, left_at)
    assert second.exited_at is None and second.duration is None
    assert second.reason == "live"
    assert list(JourneyHistory.objects.filter(account=account, exited_at__isnull=True)) == [second]


def test_it_updates_the_accounts_current_stage(tenant):
    account = AccountFactory(tenant=tenant)
    services.journey_move_to_stage(account=account, stage=stage(tenant, "Onboarding"), at=T0)
    services.journey_move_to_stage(account=account, stage=stage(tenant, "Renewal"),
                                   at=T0 + datetime.timedelta(days=1))
    assert Account.objects.get(pk=account.pk).current_stage.name == "Renewal"
    assert account.current_stage.name == "Renewal"  # the caller's object too


def test_it_does_nothing_when_moving_to_the_current_stage(tenant, moves):
    account = AccountFactory(tenant=tenant)
    onboarding = stage(tenant, "Onboarding")
    first = services.journey_move_to_stage(account=account, stage=onboarding, at=T0)
    again = services.journey_move_to_stage(account=account, stage=onboarding, at=T0 + datetime.timedelta(days=3))
    assert again.pk == first.pk
    row = JourneyHistory.objects.get(account=account)
    assert (row.entered_at, row.exited_at, row.duration) == (T0, None, None)
    assert len(moves) == 1


def test_it_refuses_a_stage_of_another_tenant(tenant, other_tenant):
    account = AccountFactory(tenant=tenant)
    with pytest.raises(ValidationError) as excinfo:
        services.journey_move_to_stage(account=account, stage=stage(other_tenant, "Adoption"), at=T0)
    assert "stage" in excinfo.value.message_dict
    assert not JourneyHistory.objects.filter(account=account).exists()
    assert Account.objects.get(pk=account.pk).current_stage is None


def test_it_refuses_a_move_dated_before_the_current_stay_began(tenant):
    account = AccountFactory(tenant=tenant)
    services.journey_move_to_stage(account=account, stage=stage(tenant, "Adoption"), at=T0)
    with pytest.raises(ValidationError) as excinfo:
        services.journey_move_to_stage(account=account, stage=stage(tenant, "Expansion"),
                                       at=T0 - datetime.timedelta(minutes=1))
    assert "at" in excinfo.value.message_dict
    row = JourneyHistory.objects.get(account=account)
    assert row.stage.name == "Adoption" and row.exited_at is None
    assert Account.objects.get(pk=account.pk).current_stage.name == "Adoption"


def test_it_lets_the_database_hold_only_one_open_stay_per_account(tenant):
    account = AccountFactory(tenant=tenant)
    services.journey_move_to_stage(account=account, stage=stage(tenant, "Onboarding"), at=T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        JourneyHistory.objects.create(tenant=tenant, account=account, stage=stage(tenant, "Adoption"),
                                      entered_at=T0 + datetime.timedelta(days=1))
    # a closed stay next to the open one is fine
    JourneyHistory.objects.create(tenant=tenant, account=account, stage=stage(tenant, "Adoption"),
                                  entered_at=T0 - datetime.timedelta(days=5), exited_at=T0)
    assert JourneyHistory.objects.filter(account=account, exited_at__isnull=True).count() == 1


def test_it_announces_each_move_with_from_and_to(tenant, moves):
    account = AccountFactory(tenant=tenant)
    onboarding, at_risk = stage(tenant, "Onboarding"), stage(tenant, "At Risk")
    first = services.journey_move_to_stage(account=account, stage=onboarding, at=T0)
    second = services.journey_move_to_stage(account=account, stage=at_risk, at=T0 + datetime.timedelta(days=40))
    assert [(m["sender"], m["from_stage"], m["to_stage"], m["history"]) for m in moves] == [
        (Account, None, onboarding, first), (Account, onboarding, at_risk, second),
    ]
    assert moves[1]["account"].pk == account.pk
    assert moves[1]["account"].current_stage == at_risk  # receivers see the account as it now is
