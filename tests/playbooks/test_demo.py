"""With seed_demo loaded, /test finds the accounts the data says, with reasons a CSM can read.

The demo story (accounts/demo.py): TechStart Solutions dropped from 65 to 35 (Critical), stopped
logging in, gave NPS 3 and 4 and CSAT 2, and talks about cancelling; GlobalTech Corporation is
healthy and wants more seats; GlobalTech Europe is fine but uses two features and gave one NPS 7.
"""

import datetime

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def run_test(demo_admin, playbook_type, triggers=None):
    body = {"playbook_type": playbook_type}
    if triggers is not None:
        body["triggers"] = triggers
    response = demo_admin.post("/api/playbook-triggers/test", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def by_name(result):
    return {a["account_name"]: a for a in result["affected_accounts"]}


def test_it_returns_techstart_for_voc_with_the_reasons_the_data_gives(demo_admin, demo_accounts):
    result = run_test(demo_admin, "voc")

    assert result["status"] == "success" and result["triggered"] is True
    techstart = by_name(result)["TechStart Solutions"]
    assert techstart["account_id"] == str(demo_accounts["TechStart Solutions"].pk)
    assert techstart["health_score"] == 35.0
    assert techstart["triggers"] == [
        "NPS -100 is below 10 (2 responses in the last 90 days: 0 promoters, 2 detractors)",
        "CSAT 2 is below 3.6 (average of 1 response in the last 90 days)",
        "Churn risk 1.00 is at or above 0.30 (risk level Critical, health score down 30.2 points in 30 days)",
        "Health score dropped 30.2 points in the last 30 days (from 65.2 to 35; threshold 10)",
        "2 churn mentions in the last 90 days (1 note, 1 survey comment, 0 support tickets; threshold 2)",
    ]


def test_it_does_not_return_globaltech_corporation_for_voc(demo_admin):
    result = run_test(demo_admin, "voc")

    assert "GlobalTech Corporation" not in by_name(result)
    # GlobalTech Europe's only NPS answer is a 7 (a passive): NPS 0, below 10. The data says so.
    assert by_name(result)["GlobalTech Europe"]["triggers"] == [
        "NPS 0 is below 10 (1 response in the last 90 days: 0 promoters, 0 detractors)",
    ]
    assert result["message"] == "VoC Sprint triggered for 2 account(s)"


def test_it_returns_techstart_for_activation_with_the_reasons_the_data_gives(demo_admin):
    result = run_test(demo_admin, "activation")

    techstart = by_name(result)["TechStart Solutions"]
    assert techstart["triggers"] == [
        "Adoption index 14 is below 60 (1 of 6 features used, 11.4% of 100 licensed seats active on average in "
        "the last 30 days)",
        "11.4 active users a day on average in the last 30 days, below 50",
        "DAU/MAU 0.06 is below 0.25 (over the last 30 days)",
        "5 of 6 features unused in the last 30 days: api, automation, integrations, reports, sso",
    ]
    assert techstart["metrics"]["features_used"] == ["dashboards"]
    assert result["trigger_details"]["summary"]["known_features"] == [
        "api", "automation", "dashboards", "integrations", "reports", "sso"]


def test_it_does_not_return_globaltech_corporation_for_activation(demo_admin):
    result = run_test(demo_admin, "activation")

    assert "GlobalTech Corporation" not in by_name(result)
    assert set(by_name(result)) == {"TechStart Solutions", "GlobalTech Europe"}


def test_it_keeps_seed_000s_response_shape_for_test(demo_admin, demo):
    result = run_test(demo_admin, "voc", {"nps_threshold": 10, "csat_threshold": 3.6})

    assert set(result) == {"status", "playbook_type", "message", "triggered", "trigger_details", "affected_accounts"}
    assert result["playbook_type"] == "voc"
    assert result["trigger_details"]["nps_threshold"] == 10
    assert result["trigger_details"]["csat_threshold"] == 3.6
    assert result["trigger_details"]["churn_risk_threshold"] == 0.3
    account = result["affected_accounts"][0]
    assert {"account_id", "account_name", "health_score", "triggers"} <= set(account)
    assert account["account_name"] == "TechStart Solutions"  # worst health first


def test_it_finds_techstart_for_sla_from_its_tickets(demo_admin):
    result = run_test(demo_admin, "sla")

    assert by_name(result)["TechStart Solutions"]["triggers"] == [
        "2 tickets opened in the last 30 days breached the SLA (2 past the 4h first-response target, "
        "1 past the 72h resolution target; threshold 1)",
        "1 urgent ticket open or pending (threshold 1)",
    ]
    assert set(by_name(result)) == {"TechStart Solutions"}


def test_it_finds_techstart_for_renewal(demo_admin, demo_accounts):
    result = run_test(demo_admin, "renewal")

    renewal = demo_accounts["TechStart Solutions"].renewal_date
    days = (renewal - timezone.localdate()).days
    assert by_name(result)["TechStart Solutions"]["triggers"] == [
        f"Renews in {days} days ({renewal.isoformat()})",
        "Health score 35 is below 70",
        "Active users down 41.4% (8.4 a day in the last 15 days against 14.3 in the 15 days before; threshold 20%)",
    ]
    # GlobalTech Europe renews in 75 days too, but is at 72 with flat usage.
    assert set(by_name(result)) == {"TechStart Solutions"}
    assert result["trigger_details"]["summary"]["accounts_renewing"] == 2


def test_it_finds_globaltech_corporation_for_expansion(demo_admin):
    result = run_test(demo_admin, "expansion")

    assert by_name(result)["GlobalTech Corporation"]["triggers"] == [
        "Health score 85 is at or above 75",
        "Seat utilisation 84% is at or above 80% (420 active users a day on 500 licensed seats in the last 30 days)",
        "NPS 100 is at or above 50 (2 responses in the last 90 days)",
    ]
    assert set(by_name(result)) == {"GlobalTech Corporation"}


def test_it_evaluates_the_demo_as_of_a_later_day_without_guessing(demo, demo_accounts):
    """Six months on, nothing is in any window any more: nobody is affected and nothing is made up."""
    from playbooks.evaluators import EVALUATORS

    later = timezone.now() + datetime.timedelta(days=200)
    for playbook_type in ("voc", "activation"):
        evaluator = EVALUATORS[playbook_type]
        config = evaluator.defaults()
        if playbook_type == "voc":
            config.update(churn_risk_threshold=None, health_score_drop_threshold=None)
        result = evaluator.evaluate(demo, config, now=later)
        assert result["affected_accounts"] == [], (playbook_type, result["affected_accounts"])
