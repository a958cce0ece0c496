"""Shared set-up of the CRM journey tests: a frozen clock (``T0``), an account with an owner (CSM) and a
primary contact, an SMS credential so "chat" steps (chat over SMS, the default) reach the outbox."""

import datetime

import pytest

from accounts.models import Role
from delivery.models import IntegrationCredential, Outbox
from crm.models import CRMPlaybookExecution, CRMStepExecution
from tests.factories import AccountFactory, ContactFactory, MembershipFactory

UTC = datetime.timezone.utc
#: A Monday, 14:00 in New York (UTC-4 in June).
T0 = datetime.datetime(2026, 6, 1, 18, 0, tzinfo=UTC)


def hours(n: float) -> datetime.timedelta:
    return datetime.timedelta(hours=n)


@pytest.fixture
def owner(tenant):
    return MembershipFactory(tenant=tenant, role=Role.PRACTITIONER, user__email="csm@vendor.test",
                             user__username="csm@vendor.test", user__first_name="Casey", user__last_name="Smith").user


@pytest.fixture
def account(tenant, owner):
    return AccountFactory(tenant=tenant, name="Globex", owner=owner)


@pytest.fixture
def contact(account):
    ContactFactory(account=account, name="Zed Secondary", email="zed@globex.test")
    return ContactFactory(account=account, name="Ada Lovelace", email="ada@globex.test", phone="+15550101",
                          is_primary=True, timezone="America/New_York")


@pytest.fixture
def sms(tenant):
    return IntegrationCredential.objects.create(tenant=tenant, integration="sms", token="sms-token",
                                                config={"from": "+15550000"})


def outbox(tenant, **filters):
    return list(Outbox.objects.for_tenant(tenant).filter(**filters).order_by("created_at", "id"))


def steps_of(execution):
    return list(CRMStepExecution.objects.filter(execution=execution).order_by("step_order"))


def reload(execution):
    return CRMPlaybookExecution.objects.get(pk=execution.pk)
