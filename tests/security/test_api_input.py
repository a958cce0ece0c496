"""Regressions of what schemathesis found in the accounts API, pinned as plain tests."""

from __future__ import annotations

import pytest

from accounts.models import Role
from tests.factories import AccountFactory, SurveyResponseFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value, status", [
    ("0863-11-25T11:42:24+16:36", 200),  # PostgreSQL accepts offsets up to 15:59 only: was a 500
    ("2026-01-01T00:00:00-23:59", 200),
    ("0001-01-01T00:00:00+01:00", 400),  # before year 1 in UTC
])
def test_date_time_filters_take_any_offset_python_accepts(member_client, tenant, value, status):
    SurveyResponseFactory(account=AccountFactory(tenant=tenant))
    client = member_client(tenant, Role.VIEWER)
    response = client.get("/api/surveys/", {"responded_at__lte": value})
    assert response.status_code == status, response.content
    if status == 400:
        assert "responded_at__lte" in response.json()


def test_an_account_without_score_stage_or_owner_matches_its_schema(member_client, tenant):
    client = member_client(tenant, Role.PRACTITIONER)
    created = client.post("/api/accounts/", {"name": "Fresh"}).json()
    assert (created["risk_level"], created["current_stage"], created["owner_email"], created["health_trend"]) == (
        "", None, None, None)


def test_tenant_settings_are_one_object(member_client, tenant):
    assert member_client(tenant, Role.VIEWER).get("/api/tenant/").json()["id"] == str(tenant.pk)


def test_contact_quiet_hours_round_trip_as_wall_clock_times(member_client, tenant):
    client = member_client(tenant, Role.PRACTITIONER)
    account = AccountFactory(tenant=tenant)
    created = client.post("/api/contacts/", {"account": str(account.pk), "name": "Ada", "email": "ada@x.test",
                                             "quiet_hours_start": "22:00", "quiet_hours_end": "07:30"})
    assert created.status_code == 201, created.content
    assert (created.json()["quiet_hours_start"], created.json()["quiet_hours_end"]) == ("22:00:00", "07:30:00")


def test_a_partial_update_returns_every_documented_field(member_client, tenant):
    """DRF drops read-only fields with ``default=None`` from PATCH responses when the relation is empty."""
    client = member_client(tenant, Role.PRACTITIONER)
    account = AccountFactory(tenant=tenant, owner=client.user)
    patched = client.patch(f"/api/accounts/{account.pk}/", {"owner": None}, format="json").json()
    assert patched["owner"] is None and patched["owner_email"] is None and "current_stage" in patched
    note = client.post("/api/notes/", {"account": str(account.pk), "body": "hi"}).json()
    client.user.delete()  # the author is gone: SET_NULL
    other = member_client(tenant, Role.PRACTITIONER)
    assert other.patch(f"/api/notes/{note['id']}/", {"pinned": True}).json()["author"] is None
