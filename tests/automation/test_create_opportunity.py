"""create_opportunity: a Renewal play (through its playbook_trigger_fired event, or any rule) creates the
account's renewal opportunity once and updates it when it fires again."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Opportunity
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/admin/automation"


def renewal_rule(api, **config) -> dict:
    body = {"name": "Open the renewal", "trigger_type": "manual", "status": "active",
            "actions": [{"type": "create_opportunity", "config": {"kind": "renewal", **config}}]}
    response = api.post(WORKFLOWS, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def run(api, rule, account) -> dict:
    response = api.post(f"{WORKFLOWS}/execute", {"workflow_id": rule["id"], "account_id": str(account.pk)})
    assert response.status_code == 201, response.json()
    return response.json()


def test_it_creates_the_renewal_once_and_updates_it_when_the_play_fires_again(api, tenant):
    renewal = timezone.localdate() + datetime.timedelta(days=60)
    account = AccountFactory(tenant=tenant, name="Globex", arr=Decimal("48000"), renewal_date=renewal)
    first = renewal_rule(api, name="{{ account.name }} FY renewal", value="arr", close_date="renewal_date")
    assert run(api, first, account)["steps"][0]["output"]["created"] is True
    deal = Opportunity.objects.get()
    assert (deal.name, deal.kind, deal.stage, deal.value, deal.close_date) == (
        "Globex FY renewal", "renewal", "prospecting", Decimal("48000.00"), renewal)

    later = renewal_rule(api, stage="negotiation", probability=70)
    assert run(api, later, account)["steps"][0]["output"] == {"opportunity_id": deal.pk, "created": False}
    deal.refresh_from_db()
    assert (Opportunity.objects.count(), deal.stage, deal.probability, deal.name) == (1, "negotiation", 70,
                                                                                     "Globex FY renewal")


def test_a_closed_renewal_does_not_stop_the_next_one(api, tenant):
    account = AccountFactory(tenant=tenant, name="Initech")
    Opportunity.objects.create(tenant=tenant, account=account, name="Last year", kind="renewal", stage="won")
    run(api, renewal_rule(api, value=1000, close_date="+90d"), account)
    new = Opportunity.objects.exclude(name="Last year").get()
    assert (new.value, new.close_date) == (Decimal("1000"), timezone.localdate() + datetime.timedelta(days=90))


@pytest.mark.parametrize("config, key", [
    ({"kind": "upsell"}, "kind"), ({"stage": "won"}, "stage"), ({"value": "lots"}, "value"),
    ({"close_date": "soon"}, "close_date"), ({"probability": 140}, "probability"), ({"colour": "red"}, "colour"),
])
def test_bad_settings_are_refused_at_save(api, config, key):
    body = {"name": "x", "trigger_type": "manual",
            "actions": [{"type": "create_opportunity", "config": {"kind": "renewal", **config}}]}
    response = api.post(WORKFLOWS, body, format="json")
    assert response.status_code == 400 and f"actions[0].config.{key}" in str(response.json()), response.json()
