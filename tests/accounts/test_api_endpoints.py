"""What the customer data endpoints do: health scores, journeys, roll-ups, filters, settings, schema."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts import services
from accounts.models import Account, Goal, HealthScore, JourneyHistory, JourneyStage, Note, Role, Task
from tests.factories import AccountFactory, MembershipFactory, TagFactory, health_score

ALL_70 = {"usage_score": 70, "engagement_score": 70, "support_sentiment_score": 70, "adoption_score": 70}


def post_score(client, account, **components):
    response = client.post("/api/health-scores/", {"account": str(account.pk), **components})
    assert response.status_code == 201, response.content
    return response.json()


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def names(response) -> list[str]:
    return [row["name"] for row in results(response)]


# --- health scores --------------------------------------------------------------------------------

def test_it_records_a_weighted_health_score(api, tenant):
    account = AccountFactory(tenant=tenant)
    body = post_score(api, account, usage_score=30, engagement_score=35, support_sentiment_score=40, adoption_score=35)
    # 30*.35 + 35*.25 + 40*.20 + 35*.20
    assert body["overall_score"] == "34.25"
    assert body["risk_level"] == "critical"
    assert body["previous_score"] is None
    assert body["account"] == str(account.pk)
    assert body["account_name"] == account.name
    assert body["breakdown"]["usage_score"] == {"score": 30.0, "weight": 0.35, "contribution": 10.5}
    assert "missing" not in body["breakdown"]


def test_it_renormalises_the_weights_of_the_components_present(api, tenant):
    account = AccountFactory(tenant=tenant)
    body = post_score(api, account, usage_score=80, adoption_score=40)
    assert body["overall_score"] == "65.45"  # (80*35 + 40*20) / 55
    assert body["risk_level"] == "moderate"
    assert body["breakdown"]["missing"] == ["engagement_score", "support_sentiment_score"]
    assert body["breakdown"]["usage_score"]["weight"] == pytest.approx(35 / 55, abs=1e-4)
    assert body["engagement_score"] is None


def test_it_takes_the_last_overall_score_as_previous_score(api, tenant):
    account = AccountFactory(tenant=tenant)
    first = post_score(api, account, **ALL_70)
    second = post_score(api, account, usage_score=50)
    third = post_score(api, account, usage_score=90)
    assert first["previous_score"] is None
    assert second["previous_score"] == first["overall_score"] == "70.00"
    assert third["previous_score"] == second["overall_score"] == "50.00"
    other = post_score(api, AccountFactory(tenant=tenant), usage_score=10)
    assert other["previous_score"] is None  # previous scores are per account


@pytest.mark.parametrize("score, risk", [
    ("100", "healthy"), ("80", "healthy"), ("79.99", "moderate"), ("60", "moderate"), ("59.99", "at_risk"),
    ("40", "at_risk"), ("39.99", "critical"), ("0", "critical"),
])
def test_it_puts_scores_in_risk_bands_80_60_40(score, risk, api, tenant):
    account = AccountFactory(tenant=tenant)
    body = post_score(api, account, **{name: score for name in ALL_70})
    assert Decimal(body["overall_score"]) == Decimal(score)
    assert body["risk_level"] == risk


def test_it_shows_the_latest_score_on_the_account(api, tenant):
    account = AccountFactory(tenant=tenant)
    post_score(api, account, **ALL_70)
    post_score(api, account, usage_score=35)
    # a score back-dated before the latest one is history, not the current state
    post_score(api, account, usage_score=95, calculated_at=(timezone.now() - datetime.timedelta(days=3)).isoformat())
    row = results(api.get("/api/accounts/"))[0]
    assert (row["health_score"], row["risk_level"]) == ("35.00", "critical")
    detail = api.get(f"/api/accounts/{account.pk}/").json()
    assert (detail["health_score"], detail["risk_level"]) == ("35.00", "critical")
    assert detail["health_trend"] is not None


def test_it_reports_the_thirty_day_trend(api, tenant):
    account = AccountFactory(tenant=tenant)
    services.health_score_record(account=account, components={"usage_score": 50},
                                 calculated_at=timezone.now() - datetime.timedelta(days=45))
    post_score(api, account, usage_score=62)
    assert api.get(f"/api/accounts/{account.pk}/").json()["health_trend"] == "12.00"
    ordered = names(api.get("/api/accounts/", {"ordering": "-health_trend"}))
    assert ordered[0] == account.name


def test_it_lists_and_filters_health_scores(api, tenant):
    a, b = AccountFactory(tenant=tenant), AccountFactory(tenant=tenant)
    post_score(api, a, usage_score=90)
    post_score(api, a, usage_score=30)
    post_score(api, b, usage_score=65)
    rows = results(api.get("/api/health-scores/", {"account": str(a.pk)}))
    assert [r["overall_score"] for r in rows] == ["30.00", "90.00"]  # newest first
    assert [r["account"] for r in results(api.get("/api/health-scores/", {"risk_level": "moderate"}))] == [str(b.pk)]
    assert api.get(f"/api/health-scores/{rows[0]['id']}/").json()["overall_score"] == "30.00"


def test_it_never_edits_a_recorded_score(api, tenant):
    score = health_score(AccountFactory(tenant=tenant))
    for method in ("put", "patch"):
        assert getattr(api, method)(f"/api/health-scores/{score.pk}/", {"usage_score": 1}).status_code == 405
    # computed fields in a payload are ignored, not trusted
    body = post_score(api, score.account, usage_score=20, overall_score=99, risk_level="healthy", previous_score=1)
    assert (body["overall_score"], body["risk_level"], body["previous_score"]) == ("20.00", "critical", "70.00")


def test_it_recomputes_the_account_score_when_the_latest_score_is_deleted(api, tenant):
    account = AccountFactory(tenant=tenant)
    post_score(api, account, usage_score=85)
    latest = post_score(api, account, usage_score=30)
    assert api.delete(f"/api/health-scores/{latest['id']}/").status_code == 204
    account.refresh_from_db()
    assert (account.health_score, account.risk_level) == (Decimal("85.00"), "healthy")
    only = HealthScore.objects.get(account=account)
    assert api.delete(f"/api/health-scores/{only.pk}/").status_code == 204
    account.refresh_from_db()
    assert (account.health_score, account.risk_level) == (None, "")


# --- tenant settings ------------------------------------------------------------------------------

def test_it_shows_the_tenant_settings(api, tenant):
    body = api.get("/api/tenant/").json()
    assert body["id"] == str(tenant.pk) and body["slug"] == tenant.slug
    assert [body[k] for k in ("weight_usage", "weight_engagement", "weight_support", "weight_adoption")] == [
        "35.00", "25.00", "20.00", "20.00"]
    assert [body[k] for k in ("band_healthy", "band_moderate", "band_at_risk")] == ["80.00", "60.00", "40.00"]


def test_it_uses_patched_weights_and_bands_for_the_next_score(api, tenant):
    account = AccountFactory(tenant=tenant)
    components = {"usage_score": 80, "engagement_score": 40, "support_sentiment_score": 40, "adoption_score": 40}
    assert post_score(api, account, **components)["overall_score"] == "54.00"
    response = api.patch("/api/tenant/", {"weight_usage": "100", "weight_engagement": "0", "weight_support": "0",
                                          "weight_adoption": "0", "band_healthy": "90"})
    assert response.status_code == 200, response.content
    assert response.json()["weight_usage"] == "100.00"
    body = post_score(api, account, **components)
    assert (body["overall_score"], body["risk_level"], body["previous_score"]) == ("80.00", "moderate", "54.00")


def test_it_ignores_read_only_tenant_fields(api, tenant):
    response = api.patch("/api/tenant/", {"slug": "stolen", "id": "00000000-0000-0000-0000-000000000000",
                                          "name": "Renamed", "timezone": "Europe/Berlin"})
    assert response.status_code == 200
    old_pk, old_slug = tenant.pk, tenant.slug
    tenant.refresh_from_db()
    assert (tenant.pk, tenant.slug) == (old_pk, old_slug)
    assert (tenant.name, tenant.timezone) == ("Renamed", "Europe/Berlin")


# --- journey --------------------------------------------------------------------------------------

def test_it_moves_an_account_through_stages_keeping_history(api, tenant):
    account = AccountFactory(tenant=tenant)
    first = api.post(f"/api/accounts/{account.pk}/move-stage/", {"stage": "onboarding"})
    assert first.status_code == 201, first.content
    assert (first.json()["stage"], first.json()["from_stage"], first.json()["exited_at"]) == ("Onboarding", None, None)
    JourneyHistory.objects.filter(pk=first.json()["id"]).update(entered_at=timezone.now() - datetime.timedelta(days=3))
    adoption = JourneyStage.objects.for_tenant(tenant).get(name="Adoption")
    second = api.post(f"/api/accounts/{account.pk}/move-stage/", {"stage": adoption.pk, "reason": "Went live"})
    assert second.status_code == 201, second.content
    assert (second.json()["stage"], second.json()["from_stage"], second.json()["reason"]) == (
        "Adoption", "Onboarding", "Went live")

    closed = JourneyHistory.objects.get(pk=first.json()["id"])
    assert closed.exited_at is not None
    assert closed.duration == closed.exited_at - closed.entered_at
    assert closed.duration_days == pytest.approx(3, abs=0.01)
    assert Account.objects.get(pk=account.pk).current_stage == adoption
    assert JourneyHistory.objects.get(pk=second.json()["id"]).moved_by == api.user

    history = api.get(f"/api/accounts/{account.pk}/journey-history/").json()
    assert [(h["stage"], h["duration_days"] is not None) for h in history] == [
        ("Adoption", False), ("Onboarding", True)]
    assert [r["id"] for r in results(api.get("/api/journey-history/", {"account": str(account.pk)}))] == [
        h["id"] for h in history]
    assert api.get(f"/api/accounts/{account.pk}/").json()["current_stage"] == "Adoption"


def test_it_treats_a_move_to_the_current_stage_as_a_no_op(api, tenant):
    account = AccountFactory(tenant=tenant)
    first = api.post(f"/api/accounts/{account.pk}/move-stage/", {"stage": "Adoption"}).json()
    again = api.post(f"/api/accounts/{account.pk}/move-stage/", {"stage": "adoption"})
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert JourneyHistory.objects.filter(account=account).count() == 1


def test_it_refuses_to_delete_a_stage_that_has_history(api, tenant):
    account = AccountFactory(tenant=tenant)
    services.journey_move_to_stage(account=account, stage=JourneyStage.objects.for_tenant(tenant).get(name="Expansion"))
    stage = JourneyStage.objects.for_tenant(tenant).get(name="Expansion")
    response = api.delete(f"/api/journey-stages/{stage.pk}/")
    assert response.status_code == 409, response.content
    assert "journey history" in response.json()["detail"]
    assert JourneyStage.objects.filter(pk=stage.pk).exists()
    unused = JourneyStage.objects.for_tenant(tenant).get(name="Churn")
    assert api.delete(f"/api/journey-stages/{unused.pk}/").status_code == 204


# --- hierarchy and roll-up ------------------------------------------------------------------------

def test_it_rolls_up_health_weighted_by_arr(api, tenant):
    parent = AccountFactory(tenant=tenant, name="GlobalTech Corporation", arr=Decimal("100000"))
    europe = AccountFactory(tenant=tenant, name="GlobalTech Europe", arr=Decimal("300000"), parent=parent)
    AccountFactory(tenant=tenant, name="GlobalTech Labs", arr=Decimal("50000"), parent=europe)  # no score yet
    health_score(parent, usage_score=80)
    health_score(europe, usage_score=40)
    AccountFactory(tenant=tenant, name="Unrelated", arr=Decimal("999999"))
    body = api.get(f"/api/accounts/{parent.pk}/rollup/").json()
    assert body["rollup_score"] == 50.0  # (80*100k + 40*300k) / 400k
    assert (body["accounts_included"], body["accounts_scored"], body["total_arr"]) == (3, 2, 450000.0)
    assert [a["name"] for a in body["unscored_accounts"]] == ["GlobalTech Labs"]
    assert api.get(f"/api/accounts/{europe.pk}/rollup/").json()["rollup_score"] == 40.0


def test_it_builds_and_filters_the_hierarchy(api, tenant):
    parent = api.post("/api/accounts/", {"name": "GlobalTech Corporation"}).json()
    child = api.post("/api/accounts/", {"name": "GlobalTech Europe", "parent": parent["id"]})
    assert child.status_code == 201, child.content
    assert child.json()["parent"] == parent["id"]
    assert names(api.get("/api/accounts/", {"parent": parent["id"]})) == ["GlobalTech Europe"]
    assert names(api.get("/api/accounts/", {"top_level": "true"})) == ["GlobalTech Corporation"]
    # a parent with children cannot be deleted out from under them
    response = api.delete(f"/api/accounts/{parent['id']}/")
    assert response.status_code == 409, response.content
    assert Account.objects.filter(pk=parent["id"]).exists()
    assert api.patch(f"/api/accounts/{child.json()['id']}/", {"parent": None}).json()["parent"] is None
    assert api.delete(f"/api/accounts/{parent['id']}/").status_code == 204


# --- accounts: filters, search, ordering, tags, pagination ----------------------------------------

@pytest.fixture
def portfolio(tenant):
    """Four accounts across the bands, stages and tags."""
    gold = TagFactory(tenant=tenant, name="gold")
    rows = [("Acme", "Software", 90, "Adoption", 50000), ("Globex", "Retail", 70, "Renewal", 250000),
            ("Initech", "Software", 45, "At Risk", 10000), ("Umbrella", "Pharma", 20, "At Risk", 120000)]
    made = {}
    for name, industry, score, stage, arr in rows:
        account = AccountFactory(tenant=tenant, name=name, industry=industry, arr=Decimal(arr))
        health_score(account, usage_score=score)
        services.journey_move_to_stage(account=account, stage=JourneyStage.objects.for_tenant(tenant).get(name=stage))
        made[name] = account
    made["Acme"].tags.add(gold)
    made["Globex"].tags.add(gold)
    return made


@pytest.mark.parametrize("params, expected", [
    ({"risk_level": "healthy"}, ["Acme"]),
    ({"risk_level": "critical"}, ["Umbrella"]),
    ({"health_score_min": "45"}, ["Acme", "Globex", "Initech"]),
    ({"health_score_min": "45", "health_score_max": "70"}, ["Globex", "Initech"]),
    ({"stage": "at risk"}, ["Initech", "Umbrella"]),
    ({"search": "soft"}, ["Acme", "Initech"]),  # industry
    ({"search": "glob"}, ["Globex"]),  # name
    ({"tag": "GOLD"}, ["Acme", "Globex"]),
    ({"arr_min": "100000"}, ["Globex", "Umbrella"]),
    ({"ordering": "-arr"}, ["Globex", "Umbrella", "Acme", "Initech"]),
    ({"ordering": "health_score"}, ["Umbrella", "Initech", "Globex", "Acme"]),
    ({"ordering": "-name"}, ["Umbrella", "Initech", "Globex", "Acme"]),
    ({"stage": "At Risk", "ordering": "-health_score"}, ["Initech", "Umbrella"]),
    ({}, ["Acme", "Globex", "Initech", "Umbrella"]),
], ids=lambda v: str(v))
def test_it_filters_searches_and_orders_accounts(params, expected, portfolio, api):
    assert names(api.get("/api/accounts/", params)) == expected


def test_it_shows_owner_tags_and_stage_on_an_account(api, tenant, portfolio):
    owner = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user
    silver = TagFactory(tenant=tenant, name="silver")
    gold = portfolio["Acme"].tags.get()
    response = api.patch(f"/api/accounts/{portfolio['Acme'].pk}/", {"owner": owner.pk, "tag_ids": [silver.pk, gold.pk]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["owner"], body["owner_email"], body["current_stage"]) == (owner.pk, owner.email, "Adoption")
    assert sorted(body["tags"]) == ["gold", "silver"]
    assert "tag_ids" not in body
    assert api.patch(f"/api/accounts/{portfolio['Acme'].pk}/", {"tag_ids": []}).json()["tags"] == []


def test_it_paginates(api, tenant):
    for i in range(7):
        AccountFactory(tenant=tenant, name=f"Account {i:02}")
    page = api.get("/api/accounts/", {"page_size": 3, "page": 2}).json()
    assert page["count"] == 7
    assert [a["name"] for a in page["results"]] == ["Account 03", "Account 04", "Account 05"]
    assert page["next"] and page["previous"]
    assert len(api.get("/api/accounts/", {"limit": 2}).json()["results"]) == 2
    assert len(api.get("/api/accounts/", {"page_size": 100000}).json()["results"]) == 7  # capped, not refused
    assert api.get("/api/accounts/", {"page_size": 3, "page": 9}).status_code == 404


# --- the other customer data endpoints ------------------------------------------------------------

def test_it_records_who_created_tasks_and_notes(member_client, tenant):
    contributor = member_client(tenant, Role.CONTRIBUTOR)
    account = AccountFactory(tenant=tenant)
    task = contributor.post("/api/tasks/", {"title": "Call", "account": str(account.pk), "source": "forged",
                                            "completed_at": "2020-01-01T00:00:00Z"})
    assert task.status_code == 201, task.content
    stored = Task.objects.get(pk=task.json()["id"])
    assert (stored.created_by, stored.tenant_id, stored.source, stored.completed_at) == (
        contributor.user, tenant.pk, "", None)
    note = contributor.post("/api/notes/", {"account": str(account.pk), "body": "Champion left"})
    assert note.status_code == 201, note.content
    assert note.json()["author"] == contributor.user.email
    assert Note.objects.get(pk=note.json()["id"]).author == contributor.user


def test_it_stamps_when_a_task_is_done_and_clears_it_on_reopen(api, tenant):
    task = api.post("/api/tasks/", {"title": "Send QBR deck"}).json()
    assert task["completed_at"] is None
    done = api.patch(f"/api/tasks/{task['id']}/", {"status": "done"}).json()
    assert done["completed_at"] is not None
    assert api.patch(f"/api/tasks/{task['id']}/", {"title": "Send the QBR deck"}).json()["completed_at"] == (
        done["completed_at"])
    assert api.patch(f"/api/tasks/{task['id']}/", {"status": "in_progress"}).json()["completed_at"] is None
    born_done = api.post("/api/tasks/", {"title": "Logged call", "status": "done"}).json()
    assert born_done["completed_at"] is not None


def test_it_stamps_when_a_goal_is_achieved(api, tenant):
    account = AccountFactory(tenant=tenant)
    goal = api.post("/api/goals/", {"account": str(account.pk), "title": "Roll out reports"}).json()
    assert goal["status"] == "created" and goal["achieved_at"] is None
    achieved = api.patch(f"/api/goals/{goal['id']}/", {"status": "achieved"}).json()
    assert achieved["achieved_at"] is not None
    assert Goal.objects.get(pk=goal["id"]).status == "achieved"


def test_it_creates_and_filters_usage_surveys_and_tickets(api, tenant):
    account = AccountFactory(tenant=tenant)
    usage = api.post("/api/usage-metrics/", {"account": str(account.pk), "date": "2024-06-01", "dau": 12,
                                             "features_used": ["reports", "api"]})
    assert usage.status_code == 201, usage.content
    assert usage.json()["features_used"] == ["reports", "api"]
    assert api.post("/api/usage-metrics/", {"account": str(account.pk), "date": "2024-06-02"}).status_code == 201
    assert len(results(api.get("/api/usage-metrics/", {"date__gte": "2024-06-02"}))) == 1
    survey = api.post("/api/surveys/", {"account": str(account.pk), "kind": "csat", "score": 5, "comment": "Great"})
    assert survey.status_code == 201, survey.content
    assert results(api.get("/api/surveys/", {"kind": "csat"}))[0]["score"] == 5
    ticket = api.post("/api/tickets/", {"account": str(account.pk), "subject": "Login fails", "priority": "urgent",
                                        "opened_at": "2024-06-01T09:00:00Z", "resolved_at": "2024-06-01T12:00:00Z",
                                        "csat": 4})
    assert ticket.status_code == 201, ticket.content
    assert [t["subject"] for t in results(api.get("/api/tickets/", {"priority": "urgent"}))] == ["Login fails"]


def test_it_ignores_computed_account_fields_in_a_payload(api, tenant):
    account = AccountFactory(tenant=tenant)
    health_score(account, usage_score=30)
    response = api.patch(f"/api/accounts/{account.pk}/", {
        "health_score": "99.00", "risk_level": "healthy", "current_stage": "Expansion", "health_trend": "50",
        "created_at": "2000-01-01T00:00:00Z", "tags": ["forged"], "owner_email": "x@example.com", "name": "Renamed"})
    assert response.status_code == 200, response.content
    account.refresh_from_db()
    assert (account.name, account.health_score, account.risk_level, account.current_stage) == (
        "Renamed", Decimal("30.00"), "critical", None)
    assert not account.tags.exists()


def test_it_can_delete_an_account_with_its_data(api, tenant):
    account = AccountFactory(tenant=tenant)
    health_score(account)
    services.journey_move_to_stage(account=account, stage=JourneyStage.objects.for_tenant(tenant).first())
    api.post("/api/notes/", {"account": str(account.pk), "body": "x"})
    assert api.delete(f"/api/accounts/{account.pk}/").status_code == 204
    assert not Account.objects.filter(pk=account.pk).exists()
    assert not HealthScore.objects.filter(account_id=account.pk).exists()


# --- API documentation ----------------------------------------------------------------------------

@pytest.mark.parametrize("authenticated", [False, True])
def test_it_serves_the_openapi_schema_and_docs(authenticated, client, api):
    http = api if authenticated else client
    schema = http.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ["/api/accounts/", "/api/accounts/{id}/move-stage/", "/api/accounts/{id}/rollup/",
                 "/api/health-scores/", "/api/tenant/", "/api/notes/"]:
        assert path in paths, sorted(paths)
    assert "put" not in paths["/api/health-scores/{id}/"]
    assert http.get("/api/docs/").status_code == 200


def test_it_generates_the_schema_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache, (
        list(GENERATOR_STATS._warn_cache) + list(GENERATOR_STATS._error_cache))
