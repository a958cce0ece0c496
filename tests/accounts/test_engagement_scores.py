"""Derived activity fields (accounts/engagement.py): a contact's engagement score from its last 30 days, and a
deal's last activity date from the engagements and notes about it."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from accounts.models import Contact, Opportunity
from automation.models import Run
from tests.factories import AccountFactory, ContactFactory, OpportunityFactory

pytestmark = pytest.mark.django_db


def engage(api, contact, kind, outcome, days_ago=0, **extra):
    response = api.post("/api/engagements/", {
        "account": str(contact.account_id), "contact": contact.pk, "kind": kind, "outcome": outcome,
        "occurred_at": (timezone.now() - datetime.timedelta(days=days_ago)).isoformat(), **extra}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def score(contact) -> int:
    return Contact.objects.get(pk=contact.pk).engagement_score


def test_the_engagement_score_sums_the_last_30_days(api, tenant):
    ada = ContactFactory(account=AccountFactory(tenant=tenant))
    engage(api, ada, "meeting", "completed")
    assert score(ada) == 25
    engage(api, ada, "call", "completed", days_ago=3)
    engage(api, ada, "email", "no_response", days_ago=5)
    assert score(ada) == 35
    engage(api, ada, "meeting", "completed", days_ago=45)  # outside the window
    assert score(ada) == 35
    missed = engage(api, ada, "meeting", "missed")
    assert score(ada) == 20
    assert api.delete(f"/api/engagements/{missed['id']}/").status_code == 204
    assert score(ada) == 35
    for _ in range(5):
        engage(api, ada, "meeting", "completed")
    assert score(ada) == 100  # clamped


def test_seed_003s_lead_qualification_fires_on_engagements(api, tenant, django_capture_on_commit_callbacks):
    """The score changes through real activity, and a field_changed rule on it sees the change."""
    account = AccountFactory(tenant=tenant, employee_count=120)
    lead = ContactFactory(account=account, status="lead")
    api.post("/api/event-triggers", {
        "name": "Automatic Lead Qualification", "trigger_type": "field_changed", "model_type": "App\\Models\\Contact",
        "trigger_conditions": [{"field": "engagement_score", "operator": "greater_than", "value": 7},
                               {"field": "company.employee_count", "operator": "greater_than", "value": 50}],
        "action_configuration": {"actions": [{"type": "update_field", "field": "status", "value": "qualified"}]},
        "is_active": True}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        engage(api, lead, "email", "completed")
    assert Contact.objects.get(pk=lead.pk).status == "qualified"
    assert Run.objects.get(status="success").subject_id == str(lead.pk)


def test_engagements_and_notes_about_a_deal_move_its_last_activity(api, tenant):
    account = AccountFactory(tenant=tenant)
    contact = ContactFactory(account=account)
    deal = OpportunityFactory(account=account)
    engage(api, contact, "call", "completed", days_ago=10, opportunity=deal.pk)
    assert Opportunity.objects.get(pk=deal.pk).last_activity_date == timezone.localdate() - datetime.timedelta(days=10)
    engage(api, contact, "call", "completed", days_ago=20, opportunity=deal.pk)  # older: no move back
    assert Opportunity.objects.get(pk=deal.pk).last_activity_date == timezone.localdate() - datetime.timedelta(days=10)
    note = api.post("/api/notes/", {"account": str(account.pk), "opportunity": deal.pk, "body": "Pricing sent"},
                    format="json")
    assert note.status_code == 201, note.json()
    assert Opportunity.objects.get(pk=deal.pk).last_activity_date == timezone.localdate()


def test_a_deal_of_another_account_is_refused(api, tenant):
    account, other = AccountFactory(tenant=tenant), AccountFactory(tenant=tenant)
    deal = OpportunityFactory(account=other)
    response = api.post("/api/notes/", {"account": str(account.pk), "opportunity": deal.pk, "body": "x"},
                        format="json")
    assert response.status_code == 400 and "opportunity" in response.json()
