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


# --- schema truth (issue 15): what the schema says a parameter takes is what the API takes ------------------

@pytest.mark.parametrize("query, name", [
    ({"pinned": "4116"}, "pinned"),  # a boolean that is not true/false was "no filter"
    ({"account": ""}, "account"),  # an empty id, number or choice was "no filter"
    ({"account": ["a", "b"]}, "account"),  # a filter given twice was its last value
    ({"search": ["a", "b"]}, "search"),
    ({"ordering": ["created_at", "-created_at"]}, "ordering"),
    ({"page_size": "10", "limit": "-5"}, "limit"),  # limit was not read beside page_size
])
def test_it_refuses_query_parameters_it_would_misread(member_client, tenant, query, name):
    response = member_client(tenant, Role.VIEWER).get("/api/notes/", query)
    assert response.status_code == 400, response.content
    assert name in response.json()


@pytest.mark.parametrize("query", [{"page": ""}, {"page": ["1", "2"]}])
def test_an_empty_or_repeated_page_is_not_a_page(member_client, tenant, query):
    assert member_client(tenant, Role.VIEWER).get("/api/notes/", query).status_code == 404


def test_an_empty_text_filter_still_means_none(member_client, tenant):
    assert member_client(tenant, Role.VIEWER).get("/api/notes/", {"search": ""}).status_code == 200


def test_a_rule_whose_retry_configuration_is_not_an_object_is_a_400(member_client, tenant):
    """Was a 500: seed 003's max_retries was merged into the text (found by a random schemathesis hunt)."""
    response = member_client(tenant, Role.TENANT_ADMIN).post("/api/event-triggers/", {
        "name": "Retries", "trigger_type": "account_created", "max_retries": 1, "retry_configuration": "often",
        "action_configuration": {"actions": [{"type": "create_task", "title": "Call"}]}}, format="json")
    assert response.status_code == 400, response.content
    assert "retry_configuration" in response.json()


def test_a_secret_sent_as_a_number_is_a_400(member_client, tenant):
    response = member_client(tenant, Role.TENANT_ADMIN).patch("/api/email-feedback/",
                                                              {"mailgun_signing_key": 12345}, format="json")
    assert response.status_code == 400 and "mailgun_signing_key" in response.json()


def test_a_list_of_ids_sent_as_an_object_is_a_400(member_client, tenant):
    """DRF read ``{}`` as its keys: no tags (found by a random schemathesis hunt)."""
    response = member_client(tenant, Role.PRACTITIONER).post("/api/accounts/", {"name": "X", "tag_ids": {}},
                                                             format="json")
    assert response.status_code == 400 and "tag_ids" in response.json()
