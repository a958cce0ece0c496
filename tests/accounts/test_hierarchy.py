"""Account hierarchy rules and the status_changed domain signal."""

import pytest
from django.core.exceptions import ValidationError

from accounts import services, signals
from accounts.models import Account
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def status_changes():
    """Every ``status_changed`` sent during the test, as its keyword arguments."""
    sent = []

    def receiver(sender, **kwargs):
        sent.append({"sender": sender, **kwargs})

    signals.status_changed.connect(receiver, weak=False)
    yield sent
    signals.status_changed.disconnect(receiver)


@pytest.fixture
def chain(tenant):
    """A -> B -> C: A is the top, C the bottom."""
    a = AccountFactory(tenant=tenant, name="A")
    b = AccountFactory(tenant=tenant, name="B", parent=a)
    c = AccountFactory(tenant=tenant, name="C", parent=b)
    return a, b, c


def test_it_accepts_a_parent_of_the_same_tenant(tenant, chain):
    a, b, c = chain
    d = services.account_save(account=Account(tenant=tenant), changes={"name": "D", "parent": c})
    assert Account.objects.get(pk=d.pk).parent == c
    services.account_save(account=c, changes={"parent": a})
    assert Account.objects.get(pk=c.pk).parent == a


def test_it_refuses_an_account_as_its_own_parent(chain):
    a, _, _ = chain
    with pytest.raises(ValidationError) as excinfo:
        services.account_save(account=a, changes={"parent": a})
    assert "parent" in excinfo.value.message_dict
    assert Account.objects.get(pk=a.pk).parent is None


def test_it_refuses_an_account_as_the_parent_of_its_ancestor(chain):
    a, b, c = chain
    with pytest.raises(ValidationError) as excinfo:
        services.account_save(account=a, changes={"parent": c})
    assert "parent" in excinfo.value.message_dict
    with pytest.raises(ValidationError):
        services.account_save(account=Account.objects.get(pk=b.pk), changes={"parent": Account.objects.get(pk=c.pk)})
    assert Account.objects.get(pk=a.pk).parent is None
    assert Account.objects.get(pk=b.pk).parent_id == a.pk


def test_it_refuses_a_cycle_even_from_stale_objects(chain):
    a, b, c = chain
    stale_b = Account.objects.select_related("parent").get(pk=b.pk)
    services.account_save(account=Account.objects.get(pk=c.pk), changes={"parent": None})
    services.account_save(account=Account.objects.get(pk=a.pk), changes={"parent": Account.objects.get(pk=c.pk)})
    # now C -> A -> B; B (loaded earlier, still thinking A is at the top) must not become C's parent
    with pytest.raises(ValidationError):
        services.account_save(account=Account.objects.get(pk=c.pk), changes={"parent": stale_b})


def test_it_refuses_a_parent_of_another_tenant(tenant, other_tenant):
    theirs = AccountFactory(tenant=other_tenant)
    mine = AccountFactory(tenant=tenant)
    with pytest.raises(ValidationError) as excinfo:
        services.account_save(account=mine, changes={"parent": theirs})
    assert "parent" in excinfo.value.message_dict
    with pytest.raises(ValidationError):
        services.account_save(account=Account(tenant=tenant), changes={"name": "New", "parent": theirs})
    assert Account.objects.get(pk=mine.pk).parent is None
    assert not Account.objects.filter(name="New").exists()


def test_it_announces_a_new_account_and_a_status_change_but_not_other_edits(tenant, status_changes):
    account = services.account_save(account=Account(tenant=tenant), changes={"name": "Initech"})
    services.account_save(account=account, changes={"name": "Initech Ltd", "industry": "Finance"})
    services.account_save(account=account, changes={"status": Account.Status.AT_RISK})
    account.status = Account.Status.CHURNED
    services.account_save(account=account)
    services.account_save(account=account, changes={"status": Account.Status.CHURNED})

    assert [(c["sender"], c["from_status"], c["to_status"], c["created"]) for c in status_changes] == [
        (Account, None, Account.Status.ACTIVE, True),
        (Account, Account.Status.ACTIVE, Account.Status.AT_RISK, False),
        (Account, Account.Status.AT_RISK, Account.Status.CHURNED, False),
    ]
    assert all(c["account"].pk == account.pk for c in status_changes)
