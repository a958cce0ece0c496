"""Seed 000's trigger settings API: paths, headers, payloads, response shapes, validation and roles."""

import pytest

from accounts.models import Role
from playbooks.models import PlaybookExecution, PlaybookTrigger, PlaybookTriggerEvaluation
from tests.factories import AccountFactory, SurveyResponseFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

BASE = "/api/playbook-triggers"
SEED_VOC = {"nps_threshold": 10, "csat_threshold": 3.6, "churn_risk_threshold": 0.30,
            "health_score_drop_threshold": 10, "churn_mentions_threshold": 2}
SEED_ACTIVATION = {"adoption_index_threshold": 60, "active_users_threshold": 50, "dau_mau_threshold": 0.25,
                   "unused_feature_check": True}


def detractor(tenant, name="Unhappy"):
    account = AccountFactory(tenant=tenant, name=name)
    SurveyResponseFactory(account=account, score=2)
    return account


# --- GET -----------------------------------------------------------------------------------------

def test_it_lists_the_five_default_triggers_disabled(tenant, client_for):
    response = client_for(tenant).get(BASE)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success" and body["customer_id"] == str(tenant.pk)
    assert list(body["triggers"]) == ["voc", "activation", "sla", "renewal", "expansion"]
    voc = body["triggers"]["voc"]
    assert set(voc) == {"trigger_id", "playbook_type", "trigger_config", "auto_trigger_enabled", "last_evaluated",
                        "last_triggered", "trigger_count"}
    assert voc["trigger_config"].items() >= SEED_VOC.items()
    assert body["triggers"]["activation"]["trigger_config"].items() >= SEED_ACTIVATION.items()
    assert all(t["auto_trigger_enabled"] is False and t["trigger_count"] == 0 and t["last_evaluated"] is None
               for t in body["triggers"].values())
    assert PlaybookTrigger.objects.for_tenant(tenant).count() == 5


@pytest.mark.parametrize("path", [BASE, BASE + "/", BASE + "/history", BASE + "/history/"])
def test_it_answers_with_or_without_a_trailing_slash(tenant, client_for, path):
    assert client_for(tenant).get(path).status_code == 200


@pytest.mark.parametrize("path", [BASE + "/test", BASE + "/test/", BASE + "/evaluate-all", BASE + "/evaluate-all/"])
def test_it_answers_posts_with_or_without_a_trailing_slash(tenant, client_for, path):
    body = {"playbook_type": "voc"} if "test" in path else None
    assert client_for(tenant).post(path, body, format="json").status_code == 200


def test_it_takes_the_tenant_from_x_tenant_id_or_the_slug(tenant, client_for):
    client = client_for(tenant, header="HTTP_X_TENANT_ID")
    assert client.get(BASE).json()["customer_id"] == str(tenant.pk)
    client.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"], HTTP_X_CUSTOMER_ID=tenant.slug)
    assert client.get(BASE).json()["customer_id"] == str(tenant.pk)


def test_it_takes_seed_000s_integer_customer_id(tenant, other_tenant, client_for):
    """``X-Customer-ID: 1`` (seed 000): the tenant's number, shown by /api/tenant/; never another tenant."""
    client = client_for(tenant)
    number = client.get("/api/tenant/").json()["number"]
    assert number == tenant.number and other_tenant.number == number + 1
    client.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"], HTTP_X_CUSTOMER_ID=str(number))
    assert client.get(BASE).json()["customer_id"] == str(tenant.pk)
    client.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"],
                       HTTP_X_CUSTOMER_ID=str(other_tenant.number))
    assert client.get(BASE).status_code == 403


def test_it_refuses_another_tenants_customer_id(tenant, other_tenant, client_for):
    client = client_for(tenant)
    client.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"],
                       HTTP_X_CUSTOMER_ID=str(other_tenant.pk))

    for method, path in (("get", BASE), ("post", BASE), ("post", BASE + "/test"), ("post", BASE + "/evaluate-all"),
                         ("get", BASE + "/history"), ("get", "/api/playbooks/executions")):
        response = getattr(client, method)(path, {"playbook_type": "voc", "triggers": {}}, format="json")
        assert response.status_code == 403, (path, response.status_code)
    # The other tenant has its five default settings (created with it), untouched.
    theirs = PlaybookTrigger.objects.for_tenant(other_tenant)
    assert theirs.count() == 5
    assert not theirs.filter(auto_trigger_enabled=True).exists() and not theirs.filter(last_evaluated__isnull=False).exists()


def test_it_requires_a_token(tenant):
    from rest_framework.test import APIClient

    assert APIClient().get(BASE).status_code == 401


# --- POST settings -------------------------------------------------------------------------------

def test_it_saves_settings_as_seed_000_does(tenant, client_for):
    response = client_for(tenant).post(BASE, {"playbook_type": "voc", "triggers": {
        **SEED_VOC, "nps_threshold": 5, "auto_trigger_enabled": True}}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "success"
    assert body["message"] == "voc trigger settings saved successfully"
    assert body["playbook_type"] == "voc"
    assert body["triggers"].items() >= {**SEED_VOC, "nps_threshold": 5, "auto_trigger_enabled": True}.items()
    trigger = PlaybookTrigger.objects.for_tenant(tenant).get(playbook_type="voc")
    assert trigger.trigger_config["nps_threshold"] == 5 and trigger.auto_trigger_enabled is True
    assert "auto_trigger_enabled" not in trigger.trigger_config


def test_it_keeps_the_other_thresholds_on_a_partial_update(tenant, client_for):
    client = client_for(tenant)
    client.post(BASE, {"playbook_type": "voc", "triggers": {"nps_threshold": 5}}, format="json")
    client.post(BASE, {"playbook_type": "voc", "triggers": {"csat_threshold": 4.2}}, format="json")
    client.post(BASE, {"playbook_type": "voc", "triggers": {"auto_trigger_enabled": True}}, format="json")

    voc = client.get(BASE).json()["triggers"]["voc"]
    assert voc["trigger_config"]["nps_threshold"] == 5
    assert voc["trigger_config"]["csat_threshold"] == 4.2
    assert voc["trigger_config"]["churn_mentions_threshold"] == 2
    assert voc["auto_trigger_enabled"] is True
    client.post(BASE, {"playbook_type": "voc", "triggers": {"nps_threshold": -20}}, format="json")
    assert client.get(BASE).json()["triggers"]["voc"]["auto_trigger_enabled"] is True


def test_it_switches_a_check_off_with_null(tenant, client_for):
    client = client_for(tenant)
    response = client.post(BASE, {"playbook_type": "voc", "triggers": {"nps_threshold": None}}, format="json")

    assert response.status_code == 200
    assert response.json()["triggers"]["nps_threshold"] is None


def test_it_accepts_target_features_as_seed_000s_string(tenant, client_for):
    response = client_for(tenant).post(BASE, {"playbook_type": "activation", "triggers": {
        "target_features": "Feature X, Feature Y"}}, format="json")

    assert response.status_code == 200
    assert response.json()["triggers"]["target_features"] == ["Feature X", "Feature Y"]


@pytest.mark.parametrize("body, key", [
    ({"playbook_type": "vocc", "triggers": {}}, "playbook_type"),
    ({"playbook_type": None, "triggers": {}}, "playbook_type"),
    ({"triggers": {"nps_threshold": 1}}, "playbook_type"),
    ({"playbook_type": "voc"}, "triggers"),
    ({"playbook_type": "voc", "triggers": [1, 2]}, "triggers"),
    ({"playbook_type": "voc", "triggers": {}, "customer": 1}, "customer"),
    ({"playbook_type": "voc", "triggers": {"nps_treshold": 1}}, "nps_treshold"),
    ({"playbook_type": "voc", "triggers": {"adoption_index_threshold": 50}}, "adoption_index_threshold"),
    ({"playbook_type": "voc", "triggers": {"nps_threshold": 101}}, "nps_threshold"),
    ({"playbook_type": "voc", "triggers": {"nps_threshold": -101}}, "nps_threshold"),
    ({"playbook_type": "voc", "triggers": {"csat_threshold": 0.5}}, "csat_threshold"),
    ({"playbook_type": "voc", "triggers": {"csat_threshold": "3.6"}}, "csat_threshold"),
    ({"playbook_type": "voc", "triggers": {"churn_risk_threshold": 1.5}}, "churn_risk_threshold"),
    ({"playbook_type": "voc", "triggers": {"churn_mentions_threshold": 1.5}}, "churn_mentions_threshold"),
    ({"playbook_type": "voc", "triggers": {"churn_mentions_threshold": True}}, "churn_mentions_threshold"),
    ({"playbook_type": "voc", "triggers": {"window_days": None}}, "window_days"),
    ({"playbook_type": "voc", "triggers": {"churn_keywords": []}}, "churn_keywords"),
    ({"playbook_type": "voc", "triggers": {"churn_keywords": ["ch(urn"]}}, "churn_keywords"),
    ({"playbook_type": "voc", "triggers": {"auto_trigger_enabled": "yes"}}, "auto_trigger_enabled"),
    ({"playbook_type": "activation", "triggers": {"dau_mau_threshold": 2}}, "dau_mau_threshold"),
    ({"playbook_type": "activation", "triggers": {"unused_feature_check": "true"}}, "unused_feature_check"),
    ({"playbook_type": "activation", "triggers": {"target_features": 7}}, "target_features"),
    ({"playbook_type": "sla", "triggers": {"first_response_hours": 0}}, "first_response_hours"),
    ({"playbook_type": "sla", "triggers": {"first_response_hours": None, "resolution_hours": None}},
     "sla_breach_threshold"),
    ({"playbook_type": "renewal", "triggers": {"days_to_renewal": 0}}, "days_to_renewal"),
    ({"playbook_type": "renewal", "triggers": {"health_score_threshold": None, "usage_decline_threshold": None}},
     "require_risk_signal"),
    ({"playbook_type": "expansion", "triggers": {"min_signals": 4}}, "min_signals"),
    ({"playbook_type": "expansion", "triggers": {"min_signals": 3, "nps_threshold": None}}, "min_signals"),
])
def test_it_rejects_bad_settings_naming_the_key(tenant, client_for, body, key):
    response = client_for(tenant).post(BASE, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["status"] == "error"
    assert key in response.json()["errors"], response.json()
    assert key in response.json()["message"]
    trigger = PlaybookTrigger.objects.for_tenant(tenant).filter(playbook_type=body.get("playbook_type")).first()
    assert trigger is None or trigger.auto_trigger_enabled is False


def test_it_rejects_a_body_that_is_not_an_object(tenant, client_for):
    response = client_for(tenant).post(BASE, [{"playbook_type": "voc"}], format="json")

    assert response.status_code == 400


def test_it_saves_nothing_when_one_key_is_bad(tenant, client_for):
    client = client_for(tenant)
    response = client.post(BASE, {"playbook_type": "voc", "triggers": {"nps_threshold": 1, "csat_threshold": 9}},
                           format="json")

    assert response.status_code == 400 and list(response.json()["errors"]) == ["csat_threshold"]
    assert client.get(BASE).json()["triggers"]["voc"]["trigger_config"]["nps_threshold"] == 10


@pytest.mark.parametrize("role, status", [
    (Role.TENANT_ADMIN, 200), (Role.PRACTITIONER, 403), (Role.CONTRIBUTOR, 403), (Role.VIEWER, 403)])
def test_it_lets_only_tenant_admins_change_settings(tenant, client_for, role, status):
    response = client_for(tenant, role).post(BASE, {"playbook_type": "voc", "triggers": {"nps_threshold": 1}},
                                             format="json")
    assert response.status_code == status


@pytest.mark.parametrize("role, status", [
    (Role.TENANT_ADMIN, 200), (Role.PRACTITIONER, 200), (Role.CONTRIBUTOR, 403), (Role.VIEWER, 403)])
def test_it_lets_admins_and_practitioners_test_and_evaluate(tenant, client_for, role, status):
    client = client_for(tenant, role)
    assert client.post(BASE + "/test", {"playbook_type": "voc"}, format="json").status_code == status
    assert client.post(BASE + "/evaluate-all").status_code == status


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.PRACTITIONER, Role.CONTRIBUTOR, Role.VIEWER])
def test_it_lets_every_member_read(tenant, client_for, role):
    client = client_for(tenant, role)
    assert client.get(BASE).status_code == 200
    assert client.get(BASE + "/history").status_code == 200
    assert client.get("/api/playbooks/executions").status_code == 200


# --- /test ---------------------------------------------------------------------------------------

def test_it_tests_thresholds_without_saving_or_counting(tenant, client_for):
    detractor(tenant)
    client = client_for(tenant)
    response = client.post(BASE + "/test", {"playbook_type": "voc", "triggers": {"nps_threshold": 10}},
                           format="json")

    assert response.status_code == 200
    assert [a["account_name"] for a in response.json()["affected_accounts"]] == ["Unhappy"]
    assert PlaybookExecution.objects.count() == 0
    assert PlaybookTriggerEvaluation.objects.count() == 0
    voc = client.get(BASE).json()["triggers"]["voc"]
    assert voc["trigger_count"] == 0 and voc["last_evaluated"] is None and voc["last_triggered"] is None
    assert voc["trigger_config"]["nps_threshold"] == 10


def test_it_tests_the_given_thresholds_over_the_saved_ones(tenant, client_for):
    detractor(tenant)
    client = client_for(tenant)
    client.post(BASE, {"playbook_type": "voc", "triggers": {"nps_threshold": -100}}, format="json")

    saved = client.post(BASE + "/test", {"playbook_type": "voc"}, format="json").json()
    given = client.post(BASE + "/test", {"playbook_type": "voc", "triggers": {"nps_threshold": 0}},
                        format="json").json()

    assert saved["triggered"] is False and saved["message"] == "No accounts meet VoC Sprint trigger conditions"
    assert saved["trigger_details"]["nps_threshold"] == -100
    assert given["triggered"] is True and given["trigger_details"]["nps_threshold"] == 0


@pytest.mark.parametrize("body, key", [
    ({"playbook_type": "nope"}, "playbook_type"),
    ({}, "playbook_type"),
    ({"playbook_type": "voc", "triggers": {"bogus": 1}}, "bogus"),
    ({"playbook_type": "voc", "triggers": {"nps_threshold": "low"}}, "nps_threshold"),
    ({"playbook_type": "sla", "triggers": {"open_urgent_threshold": 0}}, "open_urgent_threshold"),
])
def test_it_validates_test_requests(tenant, client_for, body, key):
    response = client_for(tenant).post(BASE + "/test", body, format="json")

    assert response.status_code == 400 and key in response.json()["errors"]


def test_it_never_shows_another_tenants_accounts(tenant, other_tenant, client_for):
    detractor(tenant, "Mine")
    detractor(other_tenant, "Theirs")

    for playbook_type in ("voc",):
        mine = client_for(tenant).post(BASE + "/test", {"playbook_type": playbook_type}, format="json").json()
        theirs = client_for(other_tenant).post(BASE + "/test", {"playbook_type": playbook_type}, format="json").json()
        assert [a["account_name"] for a in mine["affected_accounts"]] == ["Mine"]
        assert [a["account_name"] for a in theirs["affected_accounts"]] == ["Theirs"]
        assert mine["trigger_details"]["summary"]["accounts_evaluated"] == 1


# --- evaluate-all --------------------------------------------------------------------------------

def enable(client, playbook_type, **triggers):
    response = client.post(BASE, {"playbook_type": playbook_type, "triggers": {**triggers,
                                                                               "auto_trigger_enabled": True}},
                           format="json")
    assert response.status_code == 200, response.content


def test_it_evaluates_only_enabled_triggers_and_counts_firings(tenant, client_for):
    unhappy = detractor(tenant)
    client = client_for(tenant, Role.TENANT_ADMIN)
    enable(client, "voc")
    enable(client, "sla")

    response = client.post(BASE + "/evaluate-all")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success" and body["customer_id"] == str(tenant.pk) and body["evaluation_time"]
    assert body["total_triggers_evaluated"] == 2 and body["total_triggered"] == 1
    results = {r["playbook_type"]: r for r in body["results"]}
    assert results["voc"]["triggered"] is True
    assert results["voc"]["message"] == "VoC Sprint triggered for 1 account(s)"
    assert [a["account_id"] for a in results["voc"]["affected_accounts"]] == [str(unhappy.pk)]
    assert results["voc"]["executions_created"] == 1
    assert results["sla"] == {**results["sla"], "triggered": False, "affected_accounts": [],
                              "message": "No accounts meet SLA Escalation trigger conditions"}
    triggers = client.get(BASE).json()["triggers"]
    assert triggers["voc"]["trigger_count"] == 1
    assert triggers["voc"]["last_evaluated"] == triggers["voc"]["last_triggered"] == body["evaluation_time"]
    assert triggers["sla"]["trigger_count"] == 0
    assert triggers["sla"]["last_evaluated"] == body["evaluation_time"] and triggers["sla"]["last_triggered"] is None
    assert triggers["activation"]["last_evaluated"] is None


def test_it_starts_one_execution_per_account_until_it_is_finished(tenant, client_for):
    unhappy = detractor(tenant)
    client = client_for(tenant, Role.PRACTITIONER)
    enable(client_for(tenant), "voc")

    client.post(BASE + "/evaluate-all")
    second = client.post(BASE + "/evaluate-all").json()

    assert second["results"][0]["executions_created"] == 0
    assert client.get(BASE).json()["triggers"]["voc"]["trigger_count"] == 2
    execution = PlaybookExecution.objects.get()
    assert execution.account_id == unhappy.pk and execution.playbook_type == "voc"
    assert execution.status == "triggered" and execution.source == "api" and execution.started_by == client.user
    assert execution.reasons == ["NPS -100 is below 10 (1 response in the last 90 days: 0 promoters, 1 detractor)",
                                 "No CSAT responses in the last 90 days", "No health score recorded"]
    assert execution.reason.startswith("NPS -100 is below 10")

    done = client.patch(f"/api/playbooks/executions/{execution.pk}", {"status": "completed", "outcome": "Called"},
                        format="json")
    assert done.status_code == 200 and done.json()["finished_at"]
    third = client.post(BASE + "/evaluate-all").json()
    assert third["results"][0]["executions_created"] == 1
    assert PlaybookExecution.objects.filter(status="triggered").count() == 1


def test_it_rejects_a_body_on_evaluate_all(tenant, client_for):
    response = client_for(tenant).post(BASE + "/evaluate-all", {"playbook_type": "voc"}, format="json")

    assert response.status_code == 400 and "playbook_type" in response.json()["errors"]


def test_it_evaluates_nothing_when_nothing_is_enabled(tenant, client_for):
    body = client_for(tenant).post(BASE + "/evaluate-all").json()

    assert body["results"] == [] and body["total_triggers_evaluated"] == 0 and body["total_triggered"] == 0


def test_it_emits_an_automation_event_per_new_execution_when_a_rule_listens(tenant, client_for):
    from automation.models import Event

    detractor(tenant, "One")
    detractor(tenant, "Two")
    WorkflowFactory(tenant=tenant, name="React to plays", trigger_type="event",
                    trigger_config={"event_type": "playbook_trigger_fired"})
    client = client_for(tenant)
    enable(client, "voc")

    client.post(BASE + "/evaluate-all")

    events = Event.objects.for_tenant(tenant).filter(type="playbook_trigger_fired")
    assert events.count() == 2
    assert {e.payload["playbook_type"] for e in events} == {"voc"}
    assert all(e.payload["execution_id"] and e.payload["reasons"] for e in events)


def test_it_emits_no_event_when_no_rule_listens(tenant, client_for):
    from automation.models import Event

    detractor(tenant)
    client = client_for(tenant)
    enable(client, "voc")
    client.post(BASE + "/evaluate-all")

    assert not Event.objects.filter(type="playbook_trigger_fired").exists()


# --- history -------------------------------------------------------------------------------------

def test_it_shows_history_with_recent_evaluations(tenant, client_for):
    detractor(tenant)
    client = client_for(tenant)
    enable(client, "voc")
    client.post(BASE + "/evaluate-all")
    client.post(BASE + "/evaluate-all")

    body = client.get(BASE + "/history").json()

    assert body["status"] == "success" and body["customer_id"] == str(tenant.pk)
    assert [h["playbook_type"] for h in body["history"]] == ["voc", "activation", "sla", "renewal", "expansion"]
    voc = body["history"][0]
    assert {"playbook_type", "auto_trigger_enabled", "last_evaluated", "last_triggered", "trigger_count",
            "created_at", "updated_at"} <= set(voc)
    assert voc["trigger_count"] == 2 and voc["auto_trigger_enabled"] is True
    assert [e["executions_created"] for e in voc["evaluations"]] == [0, 1]  # latest first
    assert voc["evaluations"][0]["source"] == "api" and voc["evaluations"][0]["accounts_affected"] == 1
    assert body["history"][1]["evaluations"] == []


def test_it_filters_history_by_playbook_type(tenant, client_for):
    body = client_for(tenant).get(BASE + "/history", {"playbook_type": "sla"}).json()

    assert [h["playbook_type"] for h in body["history"]] == ["sla"]


@pytest.mark.parametrize("params, key", [({"playbook_type": "bogus"}, "playbook_type"), ({"limit": "0"}, "limit"),
                                         ({"limit": "abc"}, "limit"), ({"limit": "101"}, "limit")])
def test_it_validates_history_parameters(tenant, client_for, params, key):
    response = client_for(tenant).get(BASE + "/history", params)

    assert response.status_code == 400 and key in response.json()["errors"]


def test_it_keeps_history_per_tenant(tenant, other_tenant, client_for):
    detractor(other_tenant)
    theirs = client_for(other_tenant)
    enable(theirs, "voc")
    theirs.post(BASE + "/evaluate-all")

    mine = client_for(tenant).get(BASE + "/history").json()

    assert all(h["trigger_count"] == 0 and h["evaluations"] == [] for h in mine["history"])


def test_it_evaluates_all_only_the_requesting_tenants_accounts(tenant, other_tenant, client_for):
    detractor(tenant, "Mine")
    detractor(other_tenant, "Theirs")
    theirs = client_for(other_tenant)
    enable(theirs, "voc")
    mine = client_for(tenant)
    enable(mine, "voc")

    body = mine.post(BASE + "/evaluate-all").json()

    assert [a["account_name"] for a in body["results"][0]["affected_accounts"]] == ["Mine"]
    assert PlaybookExecution.objects.for_tenant(other_tenant).count() == 0
    assert PlaybookTrigger.objects.for_tenant(other_tenant).get(playbook_type="voc").trigger_count == 0


def test_it_writes_trigger_setting_changes_to_the_audit_trail(tenant, member_client):
    from accounts.models import AuditLog

    client = member_client(tenant)
    response = client.post("/api/playbook-triggers", {"playbook_type": "voc", "triggers": {"nps_threshold": 5}},
                           format="json")
    assert response.status_code == 200, response.content
    entry = AuditLog.objects.for_tenant(tenant).get(object_type="playbooks.playbooktrigger")
    assert entry.actor == client.user
    assert entry.changes["trigger_config"][1]["nps_threshold"] == 5
