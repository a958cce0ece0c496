"""Opportunities (seed 003's deals: renewals, expansions, new business) and the contact lifecycle fields."""

from __future__ import annotations

import pytest

from accounts.models import Opportunity
from tests.factories import AccountFactory, ContactFactory, OpportunityFactory, TagFactory

pytestmark = pytest.mark.django_db

URL = "/api/opportunities/"


def test_it_creates_and_filters_opportunities(api, tenant):
    globex = AccountFactory(tenant=tenant, name="Globex")
    created = api.post(URL, {"account": str(globex.pk), "name": "Globex FY27 renewal", "kind": "renewal",
                             "stage": "negotiation", "value": "60000.00", "close_date": "2027-03-01",
                             "probability": 70}, format="json")
    assert created.status_code == 201, created.json()
    OpportunityFactory(account=globex, name="Globex seats", kind="expansion", stage="won", value=5000)

    names = lambda **q: sorted(o["name"] for o in api.get(URL, q).json()["results"])  # noqa: E731
    assert names(open=True) == ["Globex FY27 renewal"]
    assert names(value_min=50000) == ["Globex FY27 renewal"]
    assert names(kind="expansion") == ["Globex seats"]
    assert names(search="seats") == ["Globex seats"]
    assert api.get(f"{URL}?ordering=-value").json()["results"][0]["name"] == "Globex FY27 renewal"


def test_bad_values_are_a_400_naming_the_field(api, tenant):
    globex = AccountFactory(tenant=tenant)
    response = api.post(URL, {"account": str(globex.pk), "name": "x", "stage": "closed", "probability": 130},
                        format="json")
    assert response.status_code == 400 and {"stage", "probability"} <= set(response.json())
    assert Opportunity.objects.count() == 0


def test_another_tenants_opportunities_are_invisible(api, other_tenant):
    theirs = OpportunityFactory(account=AccountFactory(tenant=other_tenant))
    assert api.get(f"{URL}{theirs.pk}/").status_code == 404
    assert api.get(URL).json()["count"] == 0
    response = api.post(URL, {"account": str(theirs.account_id), "name": "steal"}, format="json")
    assert response.status_code == 400 and "account" in response.json()


def test_contacts_carry_source_status_engagement_score_and_tags(api, tenant):
    contact = ContactFactory(account=AccountFactory(tenant=tenant))
    hot = TagFactory(tenant=tenant, name="hot-lead")
    response = api.patch(f"/api/contacts/{contact.pk}/", {"source": "website_form", "status": "marketing_qualified",
                                                          "engagement_score": 82, "tag_ids": [hot.pk]}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["source"], body["status"], body["engagement_score"], body["tags"]) == (
        "website_form", "marketing_qualified", 82, ["hot-lead"])
    assert api.get("/api/contacts/", {"status": "marketing_qualified"}).json()["count"] == 1
    bad = api.patch(f"/api/contacts/{contact.pk}/", {"engagement_score": 101, "status": "vip"}, format="json")
    assert bad.status_code == 400 and {"engagement_score", "status"} <= set(bad.json())
