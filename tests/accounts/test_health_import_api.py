"""``POST /api/health-scores/bulk/``: many scores in one request, each as ``POST /api/health-scores/`` records one,
all of them or none."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.api.health_import import MAX_ROWS
from accounts.models import HealthScore, Role
from automation.models import Event
from tests.factories import AccountFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

URL = "/api/health-scores/bulk/"
SCORES = {"usage_score": 30, "engagement_score": 50, "support_sentiment_score": 40, "adoption_score": 20}


def post(client, rows, **extra):
    return client.post(URL, {"scores": rows, **extra}, format="json")


def test_it_records_each_row_as_a_single_post_would(api, tenant):
    single, first, second = (AccountFactory(tenant=tenant) for _ in range(3))
    one = api.post("/api/health-scores/", {"account": str(single.pk), **SCORES}, format="json").json()

    response = post(api, [{"account": str(first.pk), **SCORES}, {"account": str(second.pk), "usage_score": 90}])

    assert response.status_code == 201, response.content
    assert response.json()["recorded"] == 2
    score = HealthScore.objects.get(account=first)
    assert (str(score.overall_score), score.risk_level, score.breakdown) == (
        one["overall_score"], one["risk_level"], one["breakdown"])
    shown = {row["id"]: (row["health_score"], row["risk_level"]) for row in api.get("/api/accounts/").json()["results"]}
    assert (shown[str(first.pk)], shown[str(second.pk)]) == (("35.00", "critical"), ("90.00", "healthy"))


def test_one_bad_row_records_nothing_and_the_400_names_its_index_and_field(api, tenant):
    good, bad = AccountFactory(tenant=tenant), AccountFactory(tenant=tenant)

    response = post(api, [{"account": str(good.pk), **SCORES}, {"account": str(bad.pk), "usage_score": 130}])

    assert response.status_code == 400
    assert response.json() == {"scores": {"1": {"usage_score": ["Ensure this value is less than or equal to 100."]}}}
    assert not HealthScore.objects.exists()


def test_an_account_of_another_tenant_is_unknown(api, tenant, other_tenant):
    mine, theirs = AccountFactory(tenant=tenant), AccountFactory(tenant=other_tenant)

    response = post(api, [{"account": str(mine.pk), **SCORES}, {"account": str(theirs.pk), **SCORES}])

    assert response.status_code == 400
    assert response.json() == {"scores": {"1": {"account": [f'Invalid pk "{theirs.pk}" - object does not exist.']}}}
    assert not HealthScore.objects.exists()


def test_a_row_needs_a_component_the_tenant_weighs(api, tenant):
    tenant.weight_adoption = 0
    tenant.save()
    account = AccountFactory(tenant=tenant)

    response = post(api, [{"account": str(account.pk), "adoption_score": 50}])

    assert response.status_code == 400
    assert response.json() == {"scores": {"0": {"usage_score": [
        "At least one component score with a non-zero weight is required."]}}}


def test_it_takes_at_most_1000_rows(api, tenant):
    account = AccountFactory(tenant=tenant)

    response = post(api, [{"account": str(account.pk), **SCORES}] * (MAX_ROWS + 1))

    assert response.status_code == 400
    assert response.json() == {"scores": [f"Ensure this field has no more than {MAX_ROWS} elements."]}
    assert post(api, []).json() == {"scores": ["Ensure this field has at least 1 elements."]}


def test_the_scores_may_be_dated_but_not_in_the_future(api, tenant):
    account = AccountFactory(tenant=tenant)
    night = timezone.now().replace(hour=2, minute=0, second=0, microsecond=0) - datetime.timedelta(days=1)

    assert post(api, [{"account": str(account.pk), **SCORES}], calculated_at=night.isoformat()).status_code == 201
    future = post(api, [{"account": str(account.pk), **SCORES}],
                  calculated_at=(timezone.now() + datetime.timedelta(hours=1)).isoformat())

    assert future.status_code == 400
    assert future.json() == {"calculated_at": ["A health score cannot be dated in the future."]}
    assert HealthScore.objects.get(account=account).calculated_at == night


@pytest.mark.parametrize("role, allowed", [(Role.TENANT_ADMIN, True), (Role.PRACTITIONER, True),
                                           (Role.CONTRIBUTOR, False), (Role.VIEWER, False)])
def test_it_is_for_tenant_admins_and_practitioners(member_client, tenant, role, allowed):
    account = AccountFactory(tenant=tenant)

    response = post(member_client(tenant, role), [{"account": str(account.pk), **SCORES}])

    assert response.status_code == (201 if allowed else 403)
    assert HealthScore.objects.filter(account=account).exists() == allowed


def test_rules_listening_get_their_events(api, tenant):
    WorkflowFactory(tenant=tenant, name="Dropped", trigger_type="health_score_change",
                    actions=[{"type": "create_note", "config": {"body": "Score moved"}}])
    account = AccountFactory(tenant=tenant)

    assert post(api, [{"account": str(account.pk), **SCORES}]).status_code == 201

    event = Event.objects.get(account_id=account.pk, type="health_score_change")
    assert Decimal(str(event.payload["current_score"])) == Decimal("35")


def test_it_is_in_the_openapi_schema(api):
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]

    operation = paths["/api/health-scores/bulk/"]["post"]
    assert {"201", "400"} <= set(operation["responses"])
    assert "requestBody" in operation
