"""The outbox admin names the account each message is about (through the rule run or the journey step that
wrote it), filters by account and finds messages by account name, within the user's tenants."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from crm.models import CRMPlaybook, CRMPlaybookExecution, CRMStepExecution
from delivery.models import Outbox
from tests.factories import AccountFactory, ContactFactory, OutboxFactory, RunFactory, staff

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:delivery_outbox_changelist")


def listed(response) -> set:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def rule_message(account, **fields) -> Outbox:
    run = RunFactory(workflow__tenant=account.tenant, account=account)
    return OutboxFactory(tenant=account.tenant, run_id=run.pk, **fields)


def journey_message(account, **fields) -> Outbox:
    journey, _ = CRMPlaybook.objects.get_or_create(tenant=account.tenant, name="winback-test",
                                                   defaults={"title": "Win back"})
    contact = ContactFactory(account=account)
    execution = CRMPlaybookExecution.objects.create(tenant=account.tenant, playbook=journey, contact=contact,
                                                    account=account)
    message = OutboxFactory(tenant=account.tenant, channel="email", target=contact.email,
                            idempotency_key=f"crm:{execution.pk}:1", **fields)
    CRMStepExecution.objects.create(tenant=account.tenant, execution=execution, step_order=1, channel="email",
                                    status="sent", outbox_message_id=message.message_id)
    return message


@pytest.fixture
def book(tenant):
    techstart = AccountFactory(tenant=tenant, name="TechStart Solutions")
    globaltech = AccountFactory(tenant=tenant, name="GlobalTech Corporation")
    return {
        "techstart": techstart, "globaltech": globaltech,
        "techstart_rule": rule_message(techstart), "techstart_journey": journey_message(techstart),
        "globaltech_rule": rule_message(globaltech, target="https://hooks.example.com/globaltech"),
        "by_hand": OutboxFactory(tenant=tenant),
    }


def test_it_shows_the_account_of_rule_and_journey_messages_with_a_link(client, tenant, book):
    client.force_login(staff(tenant, Role.VIEWER))
    page = client.get(CHANGELIST).content.decode()
    link = reverse("admin:accounts_account_change", args=[book["techstart"].pk])
    assert page.count(f'<a href="{link}">TechStart Solutions</a>') == 2  # the rule's and the journey's message
    assert "GlobalTech Corporation</a>" in page
    detail = client.get(reverse("admin:delivery_outbox_change", args=[book["techstart_journey"].pk]))
    assert f'<a href="{link}">TechStart Solutions</a>' in detail.content.decode()
    by_hand = client.get(reverse("admin:delivery_outbox_change", args=[book["by_hand"].pk])).content.decode()
    assert "TechStart Solutions" not in by_hand and "GlobalTech" not in by_hand


def test_it_filters_messages_by_account(client, tenant, book):
    client.force_login(staff(tenant, Role.VIEWER))
    techstart = client.get(CHANGELIST, {"account": str(book["techstart"].pk)})
    assert listed(techstart) == {book["techstart_rule"].pk, book["techstart_journey"].pk}
    assert listed(client.get(CHANGELIST, {"account": str(book["globaltech"].pk)})) == {book["globaltech_rule"].pk}
    assert listed(client.get(CHANGELIST, {"account": "not-an-id"})) == set()


def test_it_finds_messages_by_account_name_and_still_by_target(client, tenant, book):
    client.force_login(staff(tenant, Role.VIEWER))
    assert listed(client.get(CHANGELIST, {"q": "techstart"})) == {book["techstart_rule"].pk,
                                                                  book["techstart_journey"].pk}
    assert listed(client.get(CHANGELIST, {"q": "hooks.example.com/globaltech"})) == {book["globaltech_rule"].pk}


def test_it_offers_and_finds_only_the_users_tenants_accounts(client, tenant, other_tenant, book):
    theirs = AccountFactory(tenant=other_tenant, name="TechStart Rival")
    rule_message(theirs)
    client.force_login(staff(tenant, Role.VIEWER))
    response = client.get(CHANGELIST)
    [account_filter] = [f for f in response.context["cl"].filter_specs if getattr(f, "parameter_name", "") == "account"]
    assert {name for _, name in account_filter.lookup_choices} == {"TechStart Solutions", "GlobalTech Corporation"}
    assert listed(client.get(CHANGELIST, {"q": "techstart"})) == {book["techstart_rule"].pk,
                                                                  book["techstart_journey"].pk}
    assert listed(client.get(CHANGELIST, {"account": str(theirs.pk)})) == set()


def test_it_finds_the_accounts_of_a_page_in_a_fixed_number_of_queries(client, tenant, book):
    client.force_login(staff(tenant, Role.VIEWER))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(CHANGELIST).status_code == 200
        return len(captured)

    few = queries()
    for _ in range(5):
        rule_message(book["globaltech"])
        journey_message(AccountFactory(tenant=tenant))
    assert queries() <= few + 1  # the filter's choices gained five accounts, not the page five queries per row
