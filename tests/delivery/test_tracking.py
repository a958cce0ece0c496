"""Email engagement through HTTP: the open pixel, tracked links, bounce and complaint webhooks (generic and
Mailgun, signature verified), the per-tenant suppression list and senders skipping suppressed addresses."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import secrets
import time

import pytest
from django.conf import settings
from django.core import signing
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import Role
from automation.models import RunStep
from delivery import services
from delivery.demo import demo_email_engagement
from delivery.models import EmailEvent, Outbox, Suppression
from delivery.tracking import OPEN_SALT, open_url
from tests.factories import AccountFactory, ContactFactory, EmailTemplateFactory, OutboxFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

LINK = "https://shop.example.com/pricing?plan=pro&seats=5"
HTML = (f'<p>Hi {{{{ contact.first_name }}}}, see <a href="{LINK}">our plans</a>, '
        '<a href="mailto:help@acme.test">write to us</a> or '
        '<a href="{{ unsubscribe_url }}">unsubscribe</a>.</p>')
KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


def path_of(url: str) -> str:
    return url.removeprefix(settings.PUBLIC_BASE_URL.rstrip("/"))


def send_to_contacts(tenant, on_commit, *emails, name="offer"):
    """A send_email rule on 'account goes at risk' to the account's contacts, fired once."""
    account = AccountFactory(tenant=tenant)
    for email in emails:
        ContactFactory(account=account, email=email)
    template = EmailTemplateFactory(tenant=tenant, name=name, subject="Our plans", html=HTML)
    WorkflowFactory(tenant=tenant, trigger_type="status_change", trigger_config={"to_status": "at_risk"},
                    actions=[{"type": "send_email", "config": {"template_id": template.pk,
                                                              "recipients": {"customer_contacts": True}}}])
    with on_commit():
        account_services.account_save(account=account, changes={"status": "at_risk"})
    return account


def sent_html(mail) -> str:
    return mail.alternatives[0][0]


def pixel_of(mail) -> str:
    return path_of(html.unescape(re.search(r'<img src="([^"]+/t/o/[^"]+)"', sent_html(mail)).group(1)))


def tracked_link_of(mail) -> str:
    return path_of(html.unescape(re.search(r'href="([^"]+/t/c/[^"]+)"', sent_html(mail)).group(1)))


def mailgun_body(event: dict, key: str = KEY, *, timestamp: int | None = None, token: str | None = None) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": event}


def failed(recipient: str, severity: str = "permanent", **extra) -> dict:
    return {"event": "failed", "severity": severity, "recipient": recipient,
            "delivery-status": {"code": 550, "description": "No such mailbox"}, **extra}


@pytest.fixture
def feedback_urls(api):
    """The tenant's inbound URLs (paths), with the Mailgun signing key set through the API."""
    response = api.patch("/api/email-feedback/", {"mailgun_signing_key": KEY}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["mailgun_signing_configured"] is True and "mailgun_signing_key" not in body
    return {"generic": path_of(body["generic_url"]), "mailgun": path_of(body["mailgun_url"])}


def suppressed_emails(client) -> list[str]:
    response = client.get("/api/suppressions/")
    assert response.status_code == 200, response.content
    return [row["email"] for row in response.json()["results"]]


# --- opens ---------------------------------------------------------------------------------------

def test_it_records_one_open_when_the_pixel_is_fetched_and_answers_an_uncached_gif(api, tenant, on_commit, mailoutbox):
    send_to_contacts(tenant, on_commit, "dana@globaltech.test")
    [mail] = mailoutbox
    message = Outbox.objects.get()
    assert api.get(f"/api/outbox/{message.pk}/").json()["opens"] == 0

    response = APIClient().get(pixel_of(mail))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif" and response.content.startswith(b"GIF89a")
    assert "no-store" in response["Cache-Control"] and response["Pragma"] == "no-cache"
    shown = api.get(f"/api/outbox/{message.pk}/").json()
    assert shown["opens"] == 1 and shown["first_opened_at"] is not None
    [event] = api.get("/api/email-events/", {"kind": "open"}).json()["results"]
    assert event["message"] == message.pk and event["email"] == "dana@globaltech.test"


def test_a_tampered_or_foreign_pixel_token_is_a_404_and_records_nothing(tenant, on_commit, mailoutbox):
    send_to_contacts(tenant, on_commit, "dana@globaltech.test")
    pixel = pixel_of(mailoutbox[0])
    token = pixel.removeprefix("/t/o/").removesuffix(".gif")
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    message = Outbox.objects.get()
    unsigned = signing.dumps({"t": str(tenant.pk), "m": message.message_id}, salt="someone-else")
    client = APIClient()
    for bad in (tampered, unsigned, "not-a-token"):
        assert client.get(f"/t/o/{bad}.gif").status_code == 404
    assert not EmailEvent.objects.exists()


def test_a_token_of_one_tenant_cannot_record_on_another_tenants_message(tenant, other_tenant):
    theirs = OutboxFactory(tenant=other_tenant, channel=Outbox.Channel.EMAIL, target="x@other.test")
    # Validly signed, but naming tenant A while pointing at tenant B's message: looked up in A only.
    forged = open_url(Outbox(tenant_id=tenant.pk, message_id=theirs.message_id))
    assert APIClient().get(path_of(forged)).status_code == 404
    assert not EmailEvent.objects.exists()
    own = open_url(theirs)
    assert APIClient().get(path_of(own)).status_code == 200
    assert EmailEvent.objects.get().tenant_id == other_tenant.pk


# --- clicks --------------------------------------------------------------------------------------

def test_it_rewrites_links_and_redirects_only_to_the_original_url(api, tenant, on_commit, mailoutbox):
    send_to_contacts(tenant, on_commit, "dana@globaltech.test")
    [mail] = mailoutbox
    body = sent_html(mail)
    assert f'href="{html.escape(LINK)}"' not in body  # rewritten ...
    assert 'href="mailto:help@acme.test"' in body  # ... but not mailto: ...
    assert mail.extra_headers["List-Unsubscribe"][1:-1] in body  # ... nor the unsubscribe link

    link = tracked_link_of(mail)
    response = APIClient().get(link, {"url": "https://evil.example.net/", "next": "https://evil.example.net/"})

    assert response.status_code == 302
    assert response["Location"] == LINK
    message = Outbox.objects.get()
    [click] = api.get("/api/email-events/", {"kind": "click"}).json()["results"]
    assert click["url"] == LINK and click["message"] == message.pk
    assert api.get(f"/api/outbox/{message.pk}/").json()["clicks"] == 1


def test_an_unsigned_or_tampered_link_is_a_404_and_records_nothing(tenant, on_commit, mailoutbox):
    send_to_contacts(tenant, on_commit, "dana@globaltech.test")
    token = tracked_link_of(mailoutbox[0]).removeprefix("/t/c/").rstrip("/")
    message = Outbox.objects.get()
    # The pixel's token names the same message but is not a link token (another salt).
    pixel_token = signing.dumps({"t": str(tenant.pk), "m": message.message_id, "u": "https://evil.example.net/"},
                                salt=OPEN_SALT)
    forged = signing.dumps({"t": str(tenant.pk), "m": message.message_id, "u": "https://evil.example.net/"},
                           key="not-the-secret-key", salt="delivery.tracking.click")
    client = APIClient()
    for bad in (token[:-2] + "xx", pixel_token, forged, "https%3A%2F%2Fevil.example.net"):
        assert client.get(f"/t/c/{bad}/").status_code == 404
    assert not EmailEvent.objects.exists()


# --- bounces and complaints ----------------------------------------------------------------------

def test_a_mailgun_permanent_failure_with_a_valid_signature_suppresses_the_address(
        api, tenant, feedback_urls, on_commit, mailoutbox):
    send_to_contacts(tenant, on_commit, "gone@globaltech.test")
    # The message id travels to Mailgun in X-Mailgun-Variables and comes back as user-variables.
    variables = json.loads(mailoutbox[0].extra_headers["X-Mailgun-Variables"])
    body = mailgun_body(failed("gone@globaltech.test", **{"user-variables": variables}))

    response = APIClient().post(feedback_urls["mailgun"], body, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["suppressed"] is True
    [row] = api.get("/api/suppressions/").json()["results"]
    assert row["email"] == "gone@globaltech.test" and row["reason"] == "hard_bounce"
    assert "No such mailbox" in row["detail"]
    [event] = api.get("/api/email-events/", {"kind": "bounce"}).json()["results"]
    assert event["message"] == Outbox.objects.get().pk and event["meta"]["bounce_type"] == "hard"


def test_mailgun_reports_with_a_bad_stale_or_replayed_signature_are_refused(api, feedback_urls):
    client = APIClient()
    wrong_key = mailgun_body(failed("a@x.test"), key="key-not-the-tenants")
    stale = mailgun_body(failed("a@x.test"), timestamp=int(time.time()) - 3600)
    for body in (wrong_key, stale, {"event-data": failed("a@x.test")}):
        response = client.post(feedback_urls["mailgun"], body, format="json")
        assert response.status_code == 403 and "signature" in response.json()
    fresh = mailgun_body(failed("a@x.test", severity="temporary"))
    assert client.post(feedback_urls["mailgun"], fresh, format="json").status_code == 200
    assert client.post(feedback_urls["mailgun"], fresh, format="json").status_code == 403  # the same token again
    assert suppressed_emails(api) == []  # a soft bounce suppresses nothing, the refused ones nothing at all
    assert EmailEvent.objects.count() == 1


def test_a_mailgun_complaint_suppresses_and_other_events_are_acknowledged(api, feedback_urls):
    client = APIClient()
    complaint = mailgun_body({"event": "complained", "recipient": "Angry@X.test"})
    assert client.post(feedback_urls["mailgun"], complaint, format="json").json()["suppressed"] is True
    opened = mailgun_body({"event": "opened", "recipient": "b@x.test"})
    assert client.post(feedback_urls["mailgun"], opened, format="json").json() == {"recorded": None,
                                                                                   "suppressed": False}
    assert suppressed_emails(api) == ["angry@x.test"]


def test_the_generic_endpoint_suppresses_hard_bounces_and_complaints_but_not_soft_bounces(api, feedback_urls):
    client = APIClient()
    for report in ({"type": "bounce", "email": "hard@x.test", "bounce_type": "hard"},
                   {"type": "bounce", "email": "soft@x.test", "bounce_type": "soft"},
                   {"type": "complaint", "email": "spam@x.test"}):
        assert client.post(feedback_urls["generic"], report, format="json").status_code == 200
    assert sorted(suppressed_emails(api)) == ["hard@x.test", "spam@x.test"]
    assert sorted(Suppression.objects.values_list("reason", flat=True)) == ["complaint", "hard_bounce"]


def test_the_generic_endpoint_names_the_bad_field_and_refuses_unknown_tokens(feedback_urls):
    client = APIClient()
    bad = {"type": "bounce", "email": "hard@x.test", "bounce_type": "firm"}
    assert client.post(feedback_urls["generic"], bad, format="json").json() == {"bounce_type": ["must be hard or soft"]}
    no_email = client.post(feedback_urls["generic"], {"type": "complaint"}, format="json")
    assert no_email.status_code == 400 and "email" in no_email.json()
    unknown = "/api/email-feedback/hooks/" + secrets.token_urlsafe(32) + "/"
    assert client.post(unknown, {"type": "complaint", "email": "a@x.test"}, format="json").status_code == 404
    assert not EmailEvent.objects.exists()


def test_rotating_the_token_retires_the_old_urls_and_only_tenant_admins_manage_them(api, tenant, member_client,
                                                                                 feedback_urls):
    practitioner = member_client(tenant, Role.PRACTITIONER)
    assert practitioner.get("/api/email-feedback/").status_code == 403
    assert practitioner.post("/api/email-feedback/rotate").status_code == 403
    new = api.post("/api/email-feedback/rotate").json()
    report = {"type": "complaint", "email": "a@x.test"}
    assert APIClient().post(feedback_urls["generic"], report, format="json").status_code == 404
    assert APIClient().post(path_of(new["generic_url"]), report, format="json").status_code == 200


# --- senders skip suppressed addresses -----------------------------------------------------------

def test_send_email_skips_a_suppressed_address_and_says_why(api, tenant, feedback_urls, on_commit, mailoutbox):
    APIClient().post(feedback_urls["generic"], {"type": "bounce", "email": "Gone@Acme.test", "bounce_type": "hard"},
                     format="json")
    send_to_contacts(tenant, on_commit, "gone@acme.test", "here@acme.test")
    assert [m.to for m in mailoutbox] == [["here@acme.test"]]
    step = RunStep.objects.get()
    assert step.status == "success"
    assert step.output["skipped"] == [{"email": "gone@acme.test", "reason": "suppressed: hard bounce"}]


def test_send_email_fails_with_the_reason_when_every_recipient_is_suppressed(tenant, feedback_urls, on_commit,
                                                                             mailoutbox):
    APIClient().post(feedback_urls["generic"], {"type": "complaint", "email": "spam@acme.test"}, format="json")
    send_to_contacts(tenant, on_commit, "spam@acme.test")
    step = RunStep.objects.get()
    assert step.status == "failed"
    assert step.error == ("send_email: every recipient was skipped: spam@acme.test (suppressed: spam complaint); "
                          "nothing was sent")
    assert mailoutbox == []


def test_any_email_to_a_suppressed_address_dies_at_send_time_with_the_reason(tenant, feedback_urls, on_commit,
                                                                             mailoutbox):
    """The delivery layer checks too, so senders other than send_email (CRM journeys, playbooks) skip it."""
    APIClient().post(feedback_urls["generic"], {"type": "bounce", "email": "gone@acme.test", "bounce_type": "hard"},
                     format="json")
    with on_commit():
        message = services.outbox_enqueue(tenant=tenant, channel="email", target="gone@acme.test",
                                          payload={"subject": "Hi", "text": "Hello", "html": "<p>Hello</p>"})
    message.refresh_from_db()
    assert message.status == Outbox.Status.DEAD and message.attempts == 1
    assert message.error == "the recipient is suppressed: hard bounce"
    assert mailoutbox == []


def test_suppressions_are_per_tenant_and_a_tenant_admin_can_lift_one(api, tenant, other_tenant, member_client,
                                                                     feedback_urls, on_commit, mailoutbox):
    APIClient().post(feedback_urls["generic"], {"type": "bounce", "email": "shared@x.test", "bounce_type": "hard"},
                     format="json")
    theirs = member_client(other_tenant, Role.TENANT_ADMIN)
    assert suppressed_emails(theirs) == []
    send_to_contacts(other_tenant, on_commit, "shared@x.test")
    assert [m.to for m in mailoutbox] == [["shared@x.test"]]  # the other tenant still writes to it

    [row] = api.get("/api/suppressions/").json()["results"]
    assert theirs.delete(f"/api/suppressions/{row['id']}/").status_code == 404
    assert member_client(tenant, Role.PRACTITIONER).delete(f"/api/suppressions/{row['id']}/").status_code == 403
    assert api.delete(f"/api/suppressions/{row['id']}/").status_code == 204
    assert suppressed_emails(api) == []


# --- the demo ------------------------------------------------------------------------------------

def test_the_demo_shows_a_delivered_welcome_email_with_a_recorded_open(api, tenant):
    account = AccountFactory(tenant=tenant, name="GlobalTech Corporation")
    ContactFactory(account=account, email="cto@globaltech.test", is_primary=True)
    demo_email_engagement(tenant)
    demo_email_engagement(tenant)  # idempotent
    [message] = api.get("/api/outbox/", {"channel": "email"}).json()["results"]
    assert message["status"] == "delivered" and message["target"] == "cto@globaltech.test"
    assert message["opens"] == 1 and message["first_opened_at"] is not None


def test_opens_and_clicks_raise_the_contacts_engagement_score(tenant, on_commit, mailoutbox):
    """accounts.engagement: 5 an open (at most 20), 10 a click (at most 30), recomputed as they come in."""
    from accounts.models import Contact  # noqa: PLC0415 - only this test reads contacts

    send_to_contacts(tenant, on_commit, "dana@globaltech.test")
    dana = Contact.objects.get(email="dana@globaltech.test")
    client = APIClient()
    assert client.get(pixel_of(mailoutbox[0])).status_code == 200
    assert Contact.objects.get(pk=dana.pk).engagement_score == 5
    assert client.get(tracked_link_of(mailoutbox[0])).status_code == 302
    assert Contact.objects.get(pk=dana.pk).engagement_score == 15
    for _ in range(6):
        client.get(pixel_of(mailoutbox[0]))
    assert Contact.objects.get(pk=dana.pk).engagement_score == 30  # opens capped at 20, plus the click
