"""The owner API under /api/v1/crm/: roles, validation, filters, cancel, convert, stats, discount codes."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Role
from crm.discounts import discount_issue
from crm.models import CRMDiscountCode, CRMPlaybookExecution
from crm.scheduler import execute_pending_steps
from crm.services import execution_cancel, execution_convert, start_journey
from tests.factories import AccountFactory, ContactFactory

from .conftest import hours, reload, steps_of

pytestmark = pytest.mark.django_db
BASE = "/api/v1/crm"


@pytest.fixture
def practitioner(member_client, tenant):
    return member_client(tenant, Role.PRACTITIONER)


@pytest.mark.parametrize("role, allowed", [
    (Role.TENANT_ADMIN, True), (Role.PRACTITIONER, True), (Role.CONTRIBUTOR, False), (Role.VIEWER, False),
])
@pytest.mark.parametrize("path", ["playbooks", "executions", "stats", "discount-codes"])
def test_it_lets_only_tenant_admins_and_practitioners_use_the_owner_api(member_client, tenant, role, allowed, path):
    response = member_client(tenant, role).get(f"{BASE}/{path}")
    assert response.status_code == (200 if allowed else 403), response.content


@pytest.mark.parametrize("role", [Role.CONTRIBUTOR, Role.VIEWER])
def test_it_refuses_writes_from_other_roles(member_client, tenant, contact, role):
    client = member_client(tenant, role)
    assert client.post(f"{BASE}/executions", {"contact": contact.pk, "playbook": "winback"}).status_code == 403
    assert client.post(f"{BASE}/discount-codes/redeem", {"code": "CRM20-X"}).status_code == 403
    assert not CRMPlaybookExecution.objects.exists()


def test_it_requires_authentication(client):
    assert client.get(f"{BASE}/playbooks").status_code in (401, 403)


def test_it_lists_the_six_journeys_with_their_steps(api):
    response = api.get(f"{BASE}/playbooks")
    assert response.status_code == 200
    journeys = {j["name"]: j for j in response.json()["results"]}
    assert set(journeys) == {"payment_failed_rescue", "trial_ending", "inactivity_nudge", "winback",
                             "milestone_congrats", "churn_risk"}
    rescue = journeys["payment_failed_rescue"]["steps"]
    assert [(s["channel"], s["delay_hours"], s["discount_percent"]) for s in rescue] == [
        ("email", "0.00", None), ("chat", "24.00", 20), ("owner_dm", "48.00", None)]
    assert sum(len(j["steps"]) for j in journeys.values()) == 13


def test_it_starts_an_execution_and_refuses_a_second_active_one(practitioner, contact):
    response = practitioner.post(f"{BASE}/executions", {"contact": contact.pk, "playbook": "winback",
                                                        "context": {"reason": "price"}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["playbook_name"], body["contact"], body["status"], body["source"]) == (
        "winback", contact.pk, "active", "api")
    assert body["context"] == {"reason": "price"}
    execution = CRMPlaybookExecution.objects.get()
    assert execution.started_by == practitioner.user
    again = practitioner.post(f"{BASE}/executions", {"contact": contact.pk, "journey": "winback"})
    assert again.status_code == 409
    assert again.json()["reason"] == "already_active" and again.json()["execution_id"] == execution.pk


@pytest.mark.parametrize("payload, field", [
    ({"playbook": "winback"}, "contact"),
    ({"contact": 999999, "playbook": "winback"}, "contact"),
    ({"contact": "CONTACT"}, "playbook"),
    ({"contact": "CONTACT", "playbook": "no_such_journey"}, "playbook"),
    ({"contact": "CONTACT", "playbook": "winback", "context": [1, 2]}, "context"),
])
def test_it_rejects_a_bad_start_naming_the_field(api, contact, payload, field):
    payload = {k: (contact.pk if v == "CONTACT" else v) for k, v in payload.items()}
    response = api.post(f"{BASE}/executions", payload, format="json")
    assert response.status_code == 400 and field in response.json(), response.content


def test_it_treats_another_tenants_contact_as_unknown(api, other_tenant):
    stranger = ContactFactory(account=AccountFactory(tenant=other_tenant))
    response = api.post(f"{BASE}/executions", {"contact": stranger.pk, "playbook": "winback"})
    assert response.status_code == 400 and "contact" in response.json()
    assert not CRMPlaybookExecution.objects.exists()


def test_it_refuses_an_inactive_journey(api, tenant, contact):
    from crm.models import CRMPlaybook

    api.get(f"{BASE}/playbooks")
    CRMPlaybook.objects.filter(tenant=tenant, name="winback").update(active=False)
    response = api.post(f"{BASE}/executions", {"contact": contact.pk, "playbook": "winback"})
    assert response.status_code == 400 and "not active" in response.json()["playbook"][0]


def test_it_filters_executions(api, tenant, account, contact):
    other_account = AccountFactory(tenant=tenant)
    other = ContactFactory(account=other_account)
    old = start_journey(contact, "winback", now=timezone.now() - datetime.timedelta(days=10))
    execution_cancel(execution=old)
    rescue = start_journey(contact, "payment_failed_rescue")
    churn = start_journey(other, "churn_risk")

    def ids(query):
        response = api.get(f"{BASE}/executions?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids("") == {old.pk, rescue.pk, churn.pk}
    assert ids("status=active") == {rescue.pk, churn.pk}
    assert ids("status=cancelled&status=active") == {old.pk, rescue.pk, churn.pk}
    assert ids("playbook=churn_risk") == {churn.pk}
    assert ids(f"playbook={rescue.playbook_id}") == {rescue.pk}
    assert ids(f"contact={contact.pk}") == {old.pk, rescue.pk}
    assert ids(f"account={other_account.pk}") == {churn.pk}
    since = (timezone.now() - datetime.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"started_after={since}") == {rescue.pk, churn.pk}
    assert ids(f"started_before={since}") == {old.pk}
    assert api.get(f"{BASE}/executions?status=bogus").status_code == 400
    assert api.get(f"{BASE}/executions?started_after=yesterday").status_code == 400


def test_it_hides_other_tenants_executions(api, other_tenant):
    stranger = start_journey(ContactFactory(account=AccountFactory(tenant=other_tenant)), "winback")
    assert api.get(f"{BASE}/executions").json()["results"] == []
    assert api.get(f"{BASE}/executions/{stranger.pk}").status_code == 404
    assert api.delete(f"{BASE}/executions/{stranger.pk}").status_code == 404
    assert api.post(f"{BASE}/executions/{stranger.pk}/convert", {"value": 1}).status_code == 404
    assert reload(stranger).status == "active"


def test_it_cancels_with_delete_and_cancels_pending_steps(api, tenant, account, contact):
    contact.quiet_hours_start, contact.quiet_hours_end = datetime.time(0), datetime.time(23, 59)
    contact.save()
    execution = start_journey(contact, "churn_risk")
    execute_pending_steps()
    assert steps_of(execution)[0].status == "deferred"
    response = api.delete(f"{BASE}/executions/{execution.pk}")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["steps"][0]["status"] == "cancelled"
    assert api.delete(f"{BASE}/executions/{execution.pk}").status_code == 409
    assert execute_pending_steps(now=timezone.now() + hours(100)) == {"executions": 0, "errors": 0}


def test_it_converts_with_a_value_once(api, contact):
    execution = start_journey(contact, "payment_failed_rescue")
    response = api.post(f"{BASE}/executions/{execution.pk}/convert", {"value": "120.50"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "converted" and response.json()["conversion_value"] == "120.50"
    assert api.post(f"{BASE}/executions/{execution.pk}/convert", {"value": "1"}).status_code == 409
    assert api.delete(f"{BASE}/executions/{execution.pk}").status_code == 409


@pytest.mark.parametrize("value", ["-5", "abc", "1e20"])
def test_it_rejects_a_bad_conversion_value(api, contact, value):
    execution = start_journey(contact, "winback")
    response = api.post(f"{BASE}/executions/{execution.pk}/convert", {"value": value})
    assert response.status_code == 400 and "value" in response.json()
    assert reload(execution).status == "active"


def test_it_reports_stats_that_match_the_executions(api, tenant, account, contact, django_assert_max_num_queries):
    contacts = [contact] + [ContactFactory(account=account) for _ in range(4)]
    rescues = [start_journey(c, "payment_failed_rescue") for c in contacts]
    execution_convert(execution=rescues[0], value="100")
    execution_convert(execution=rescues[1], value="50.50")
    execution_convert(execution=rescues[2])  # converted without a value
    execution_cancel(execution=rescues[3])
    winback = start_journey(contact, "winback")
    CRMPlaybookExecution.objects.filter(pk=winback.pk).update(status="completed")

    with django_assert_max_num_queries(12):
        response = api.get(f"{BASE}/stats")
    assert response.status_code == 200
    body = response.json()
    by_name = {j["name"]: j for j in body["journeys"]}
    assert {k: by_name["payment_failed_rescue"][k] for k in (
        "started", "active_executions", "completed", "converted", "cancelled", "failed", "conversion_rate",
        "average_conversion_value", "revenue_recovered")} == {
        "started": 5, "active_executions": 1, "completed": 0, "converted": 3, "cancelled": 1, "failed": 0,
        "conversion_rate": 0.6, "average_conversion_value": 75.25, "revenue_recovered": 150.5}
    assert by_name["winback"]["started"] == 1 and by_name["winback"]["completed"] == 1
    assert by_name["winback"]["conversion_rate"] == 0.0
    assert by_name["churn_risk"]["started"] == 0
    assert body["totals"]["started"] == 6 and body["totals"]["converted"] == 3
    assert body["totals"]["revenue_recovered"] == 150.5
    # the numbers are the executions the list endpoint shows
    listed = api.get(f"{BASE}/executions?playbook=payment_failed_rescue&status=converted").json()["count"]
    assert listed == by_name["payment_failed_rescue"]["converted"]


def test_it_narrows_stats_by_start_date_and_rejects_bad_dates(api, contact):
    start_journey(contact, "winback", now=timezone.now() - datetime.timedelta(days=40))
    start_journey(ContactFactory(account=contact.account), "winback")
    since = (timezone.now() - datetime.timedelta(days=7)).date().isoformat()
    body = api.get(f"{BASE}/stats?started_after={since}").json()
    assert {j["name"]: j["started"] for j in body["journeys"]}["winback"] == 1
    assert api.get(f"{BASE}/stats?started_after=soon").status_code == 400
    response = api.get(f"{BASE}/stats?started_after=2026-01-02&started_before=2026-01-01")
    assert response.status_code == 400 and "started_before" in response.json()


# --- discount codes ------------------------------------------------------------------------------

def test_it_lists_discount_codes_with_their_state(api, contact):
    active = discount_issue(contact=contact, percent=20)
    used = discount_issue(contact=contact, percent=30)
    used.used_at = timezone.now()
    used.save()
    expired = discount_issue(contact=contact, percent=10, now=timezone.now() - datetime.timedelta(days=8))
    rows = {r["code"]: r["state"] for r in api.get(f"{BASE}/discount-codes").json()["results"]}
    assert rows == {active.code: "active", used.code: "used", expired.code: "expired"}
    assert [r["code"] for r in api.get(f"{BASE}/discount-codes?state=active").json()["results"]] == [active.code]
    assert api.post(f"{BASE}/discount-codes", {"code": "X"}).status_code == 405


def test_it_redeems_a_code_once_and_converts_the_journey_that_issued_it(api, tenant, account, contact):
    execution = start_journey(contact, "winback")
    code = discount_issue(contact=contact, percent=30, execution=execution)
    response = api.post(f"{BASE}/discount-codes/redeem", {"code": code.code.lower(), "value": "300"})
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "used"
    execution = reload(execution)
    assert (execution.status, execution.conversion_value) == ("converted", Decimal("300.00"))
    second = api.post(f"{BASE}/discount-codes/redeem", {"code": code.code})
    assert second.status_code == 409 and "already redeemed" in second.json()["detail"]


def test_it_refuses_an_expired_code(api, contact):
    code = discount_issue(contact=contact, percent=20, now=timezone.now() - datetime.timedelta(days=7, seconds=1))
    response = api.post(f"{BASE}/discount-codes/redeem", {"code": code.code})
    assert response.status_code == 410 and "expired" in response.json()["detail"]
    assert CRMDiscountCode.objects.get().used_at is None


def test_it_refuses_another_tenants_code_like_an_unknown_one(api, other_tenant):
    stranger = ContactFactory(account=AccountFactory(tenant=other_tenant))
    code = discount_issue(contact=stranger, percent=20)
    response = api.post(f"{BASE}/discount-codes/redeem", {"code": code.code})
    assert response.status_code == 404 and "does not exist" in response.json()["detail"]
    assert api.post(f"{BASE}/discount-codes/redeem", {"code": "CRM20-NOSUCHCODE"}).status_code == 404
    assert CRMDiscountCode.objects.get().used_at is None


def test_it_requires_a_code_to_redeem(api):
    response = api.post(f"{BASE}/discount-codes/redeem", {})
    assert response.status_code == 400 and "code" in response.json()


def test_it_names_discount_codes_crm_percent_random_and_expires_them_in_seven_days(contact):
    now = timezone.now()
    codes = {discount_issue(contact=contact, percent=15, now=now).code for _ in range(20)}
    assert len(codes) == 20 and all(c.startswith("CRM15-") and len(c) == 16 for c in codes)
    assert CRMDiscountCode.objects.first().expires_at == now + datetime.timedelta(days=7)
