"""Billing events into journeys: ``POST /api/billing/events/`` and the tenant's Stripe webhook, signed here the
way Stripe signs (``t=<time>,v1=<HMAC-SHA256 of "{t}.{body}">``). Journeys are checked through the CRM API."""

import hashlib
import hmac
import json
import time

import pytest

from accounts.models import Role
from automation.models import Event
from crm.models import BillingEvent, CRMPlaybookExecution
from tests.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db

EVENTS = "/api/billing/events/"
ENDPOINT = "/api/billing/stripe/endpoint/"


@pytest.fixture
def stripe(api):
    """A Stripe-format sender for the tenant's endpoint (set up through the API by a tenant admin)."""
    answer = api.post(ENDPOINT, {}, format="json")
    assert answer.status_code == 200
    return StripeSender(answer.json()["url"], answer.json()["signing_secret"])


class StripeSender:
    def __init__(self, url: str, secret: str):
        self.url, self.secret = url, secret

    def header(self, body: bytes, *, secret=None, age=0, extra_v1=()) -> str:
        at = int(time.time()) - age
        signed = hmac.new((secret or self.secret).encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
        return ",".join([f"t={at}", *[f"v1={v}" for v in extra_v1], f"v1={signed}", "v0=ignored"])

    def send(self, client, event: dict, **signing):
        body = json.dumps(event).encode()
        header = signing.pop("header", None) or self.header(body, **signing)
        return client.post(self.url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def invoice_event(event_id: str, kind: str = "invoice.payment_failed", **invoice) -> dict:
    obj = {"object": "invoice", "id": "in_1", "customer": "cus_1", "currency": "usd", **invoice}
    return {"id": event_id, "object": "event", "type": kind, "created": int(time.time()), "data": {"object": obj}}


def journeys(api, name, **query):
    response = api.get("/api/v1/crm/executions", {"playbook": name, **query})
    assert response.status_code == 200
    return response.json()["results"]


def test_it_starts_the_rescue_for_the_paying_contact_and_a_replay_is_a_duplicate(
        api, stripe, contact, on_commit):
    payer = ContactFactory(account=contact.account, email="billing@globex.test")
    event = invoice_event("evt_1", customer_email="Billing@Globex.test", amount_due=4900)
    with on_commit():
        first = stripe.send(api, event)
    assert first.status_code == 200 and first.json()["duplicate"] is False
    assert first.json()["outcome"] == "raised"
    [rescue] = journeys(api, "payment_failed_rescue")
    assert (rescue["contact"], rescue["status"], rescue["source"]) == (payer.pk, "active", "trigger")
    assert (rescue["context"]["amount"], rescue["context"]["currency"]) == ("49.00", "USD")
    assert rescue["context"]["invoice_id"] == "in_1"
    with on_commit():
        replay = stripe.send(api, event)
    assert replay.status_code == 200 and replay.json() == {**first.json(), "duplicate": True}
    assert len(journeys(api, "payment_failed_rescue")) == 1
    assert Event.objects.filter(type="payment_failed").count() == 1


@pytest.mark.parametrize("signing", [
    {"secret": "whsec_wrong"},
    {"age": 310},  # older than the 300 s tolerance
    {"age": -310},  # a clock far ahead
    {"header": "t=123"},
    {"header": "v1=abc"},
])
def test_a_bad_or_stale_signature_is_a_400_and_starts_nothing(api, stripe, contact, on_commit, signing):
    with on_commit():
        response = stripe.send(api, invoice_event("evt_1", customer_email=contact.email), **signing)
    assert response.status_code == 400 and list(response.json()) == ["Stripe-Signature"]
    assert not BillingEvent.objects.exists() and journeys(api, "payment_failed_rescue") == []


def test_a_body_changed_after_signing_is_refused(api, stripe, contact):
    body = json.dumps(invoice_event("evt_1", customer_email=contact.email)).encode()
    header = stripe.header(body)
    response = api.post(stripe.url, body.replace(b"in_1", b"in_2"), content_type="application/json",
                        HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 400 and not BillingEvent.objects.exists()


def test_any_v1_signature_may_match_while_the_secret_is_rolled(api, stripe, contact, on_commit):
    with on_commit():
        response = stripe.send(api, invoice_event("evt_1", customer_email=contact.email), extra_v1=["0" * 64])
    assert response.status_code == 200 and len(journeys(api, "payment_failed_rescue")) == 1


def test_an_unknown_token_is_a_404(api, contact):
    for token in ("a" * 43, "nope"):
        assert api.post(f"/api/billing/stripe/{token}/", {}, format="json").status_code == 404


def test_payment_succeeded_converts_the_rescue_with_its_amount(api, stripe, contact, on_commit):
    with on_commit():
        stripe.send(api, invoice_event("evt_1", customer_email=contact.email, amount_due=12050))
    with on_commit():
        paid = stripe.send(api, invoice_event("evt_2", "invoice.payment_succeeded", amount_paid=12050))
    assert paid.status_code == 200 and paid.json()["outcome"] == "raised"
    [rescue] = journeys(api, "payment_failed_rescue")
    assert (rescue["status"], rescue["conversion_value"]) == ("converted", "120.50")
    assert journeys(api, "payment_failed_rescue", status="active") == []


def test_trial_will_end_starts_trial_ending_for_the_customer_an_earlier_event_found(api, stripe, contact, on_commit):
    with on_commit():
        stripe.send(api, invoice_event("evt_1", "invoice.payment_succeeded", customer_email=contact.email,
                                       amount_paid=0))
        trial_end = int(time.time()) + 3 * 86400
        response = stripe.send(api, {"id": "evt_2", "type": "customer.subscription.trial_will_end", "data": {
            "object": {"object": "subscription", "id": "sub_1", "customer": "cus_1", "trial_end": trial_end}}})
    assert response.status_code == 200 and response.json()["outcome"] == "raised"
    [nudge] = journeys(api, "trial_ending")
    assert nudge["contact"] == contact.pk and nudge["context"]["subscription_id"] == "sub_1"
    assert nudge["context"]["trial_ends_on"] == time.strftime("%Y-%m-%d", time.gmtime(trial_end))


def test_other_stripe_types_are_acknowledged_and_ignored(api, stripe, contact, on_commit):
    with on_commit():
        response = stripe.send(api, {"id": "evt_9", "type": "charge.refunded", "data": {"object": {}}})
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert not Event.objects.exists() and journeys(api, "payment_failed_rescue") == []


def test_a_stripe_event_naming_another_tenants_contact_touches_nobody(
        api, stripe, contact, other_tenant, on_commit):
    stranger = ContactFactory(account=AccountFactory(tenant=other_tenant), email="ada@elsewhere.test")
    with on_commit():
        response = stripe.send(api, invoice_event("evt_1", customer_email=stranger.email,
                                                  metadata={"contact_id": str(stranger.pk)}))
    assert response.status_code == 200 and response.json()["outcome"] == "unmatched"
    assert not CRMPlaybookExecution.objects.exists() and not Event.objects.exists()


def test_a_bad_stripe_body_names_the_field(api, stripe, contact):
    assert stripe.send(api, {"type": "invoice.payment_failed"}).json() == {"id": ["must be the Stripe event id "
                                                                                  "(a string)"]}
    response = stripe.send(api, invoice_event("evt_1", amount_due="49.00"))
    assert response.status_code == 400 and list(response.json()) == ["data.object.amount_due"]


# --- the generic API --------------------------------------------------------------------------------

def test_the_generic_api_starts_converts_and_deduplicates(api, contact, on_commit):
    failed = {"type": "payment_failed", "email": contact.email, "amount": "49.90", "currency": "eur",
              "external_id": "inv-77-failed", "occurred_at": "2026-06-01T10:00:00Z", "reason": "card declined"}
    with on_commit():
        created = api.post(EVENTS, failed, format="json")
    assert created.status_code == 201 and created.json()["outcome"] == "raised"
    [rescue] = journeys(api, "payment_failed_rescue")
    assert (rescue["contact"], rescue["context"]["reason"], rescue["context"]["currency"]) == (
        contact.pk, "card declined", "EUR")
    with on_commit():
        replay = api.post(EVENTS, failed, format="json")
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert replay.json()["id"] == created.json()["id"]
    with on_commit():
        paid = api.post(EVENTS, {"type": "payment_succeeded", "account_id": contact.account_id, "amount": "49.90",
                                 "external_id": "inv-77-paid"}, format="json")
    assert paid.status_code == 201
    [rescue] = journeys(api, "payment_failed_rescue")
    assert (rescue["status"], rescue["conversion_value"]) == ("converted", "49.90")
    listed = api.get(EVENTS, {"source": "api"}).json()["results"]
    assert [row["external_id"] for row in listed] == ["inv-77-paid", "inv-77-failed"]


def test_trial_ending_is_an_alias_that_starts_the_trial_nudge(api, contact, on_commit):
    with on_commit():
        response = api.post(EVENTS, {"type": "trial_ending", "contact_id": contact.pk, "external_id": "t-1",
                                     "trial_ends_on": "2026-06-04"}, format="json")
    assert response.status_code == 201 and response.json()["type"] == "trial_will_end"
    [nudge] = journeys(api, "trial_ending")
    assert nudge["context"]["trial_ends_on"] == "2026-06-04"


@pytest.mark.parametrize("payload, field", [
    ({"external_id": "x", "contact_id": 0}, "type"),
    ({"type": "refund", "external_id": "x"}, "type"),
    ({"type": "payment_failed", "contact_id": 0}, "external_id"),
    ({"type": "payment_failed", "external_id": "x"}, "contact_id"),
    ({"type": "payment_failed", "external_id": "x", "email": "nobody@globex.test"}, "email"),
    ({"type": "payment_failed", "external_id": "x", "account_id": -1}, "account_id"),
    ({"type": "payment_failed", "external_id": "x", "amount": "-1"}, "amount"),
    ({"type": "payment_failed", "external_id": "x", "currency": "EURO"}, "currency"),
])
def test_bad_input_is_a_400_naming_the_field(api, contact, payload, field):
    payload = {**payload, **({"contact_id": contact.pk} if payload.get("contact_id") == 0 else {})}
    response = api.post(EVENTS, payload, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not BillingEvent.objects.exists()


def test_another_tenants_contact_or_account_is_unknown(api, contact, other_tenant):
    stranger = ContactFactory(account=AccountFactory(tenant=other_tenant), email="ada@elsewhere.test")
    for payload, field in (({"contact_id": stranger.pk}, "contact_id"), ({"email": stranger.email}, "email"),
                           ({"account_id": stranger.account_id}, "account_id")):
        response = api.post(EVENTS, {"type": "payment_failed", "external_id": "x", **payload}, format="json")
        assert response.status_code == 400 and list(response.json()) == [field]
    assert not BillingEvent.objects.exists() and not CRMPlaybookExecution.objects.exists()


def test_a_contact_of_another_account_is_refused(api, contact, tenant):
    other = AccountFactory(tenant=tenant)
    response = api.post(EVENTS, {"type": "payment_failed", "external_id": "x", "contact_id": contact.pk,
                                 "account_id": other.pk}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["account_id"]


@pytest.mark.parametrize("role, events, endpoint", [
    (Role.TENANT_ADMIN, 201, 200), (Role.PRACTITIONER, 201, 403), (Role.CONTRIBUTOR, 403, 403),
    (Role.VIEWER, 403, 403)])
def test_practitioners_and_admins_post_events_and_only_admins_see_the_stripe_endpoint(
        member_client, tenant, contact, role, events, endpoint):
    client = member_client(tenant, role)
    response = client.post(EVENTS, {"type": "payment_failed", "contact_id": contact.pk, "external_id": role},
                           format="json")
    assert response.status_code == events
    assert client.get(ENDPOINT).status_code == endpoint and client.post(ENDPOINT, {}).status_code == endpoint


def test_the_signing_secret_is_shown_once_and_a_new_one_replaces_it(api, contact, on_commit):
    assert api.get(ENDPOINT).json() == {"configured": False}
    first = api.post(ENDPOINT, {"signing_secret": "whsec_from_stripe", "tolerance_seconds": 60}, format="json").json()
    assert first["signing_secret"] == "whsec_from_stripe" and first["tolerance_seconds"] == 60
    shown = api.get(ENDPOINT).json()
    assert "signing_secret" not in shown and shown["url"] == first["url"]
    rotated = api.post(ENDPOINT, {}, format="json").json()
    assert rotated["url"] == first["url"] and rotated["signing_secret"].startswith("whsec_")
    old = StripeSender(first["url"], "whsec_from_stripe")
    assert old.send(api, invoice_event("evt_1", customer_email=contact.email)).status_code == 400
    with on_commit():
        new = StripeSender(rotated["url"], rotated["signing_secret"]).send(
            api, invoice_event("evt_1", customer_email=contact.email))
    assert new.status_code == 200
