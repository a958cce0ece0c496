"""The delivery admin's pages name things in words: a message by its subject or target (not its id), labels
like "HTML" and "Message ID"; and the email event and suppression pages open at all."""

import re

import pytest
from django.urls import reverse

from accounts.models import Role
from delivery.models import EmailEvent, Suppression
from tests.factories import AccountFactory, ContactFactory, EmailTemplateFactory, OutboxFactory, RunFactory, staff

pytestmark = pytest.mark.django_db


def title(response) -> str:
    assert response.status_code == 200
    return re.search(r"<title>(.*?)</title>", response.content.decode(), re.S).group(1)


def test_it_titles_a_message_by_its_subject_target_and_account_not_its_id(client, tenant):
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    run = RunFactory(workflow__tenant=tenant, account=account)
    message = OutboxFactory(tenant=tenant, channel="email", target="dana@techstart.example", run_id=run.pk,
                            payload={"subject": "Your renewal", "text": "Hi"})
    client.force_login(staff(tenant, Role.VIEWER))
    page = client.get(reverse("admin:delivery_outbox_change", args=[message.pk]))
    heading = title(page)
    assert heading.startswith("“Your renewal” to dana@techstart.example, about TechStart Solutions (Pending)")
    assert message.message_id not in heading
    assert "Message ID:" in page.content.decode()


def test_it_titles_a_webhook_by_its_channel_and_target(client, tenant):
    message = OutboxFactory(tenant=tenant, target="https://hooks.example.com/at-risk")
    client.force_login(staff(tenant, Role.VIEWER))
    heading = title(client.get(reverse("admin:delivery_outbox_change", args=[message.pk])))
    assert heading.startswith("Webhook to https://hooks.example.com/at-risk (Pending)")


def test_it_opens_an_email_event_with_its_message_in_words(client, tenant):
    contact = ContactFactory(account=AccountFactory(tenant=tenant), name="Dana Champion")
    message = OutboxFactory(tenant=tenant, channel="email", target=contact.email, payload={"subject": "Welcome"})
    event = EmailEvent.objects.create(tenant=tenant, message=message, contact=contact, email=contact.email,
                                      kind=EmailEvent.Kind.CLICK, url="https://example.com/offer")
    client.force_login(staff(tenant, Role.VIEWER))
    page = client.get(reverse("admin:delivery_emailevent_change", args=[event.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert f"“Welcome” to {contact.email}" in html and message.message_id not in html
    assert "Link followed:" in html and "Time:" in html
    listing = client.get(reverse("admin:delivery_emailevent_changelist")).content.decode()
    assert "By time" in listing and "By at" not in listing


def test_it_opens_a_suppression(client, tenant):
    suppressed = Suppression.objects.create(tenant=tenant, email="gone@example.com", reason=Suppression.Reason.HARD_BOUNCE)
    client.force_login(staff(tenant, Role.VIEWER))
    assert client.get(reverse("admin:delivery_suppression_change", args=[suppressed.pk])).status_code == 200


def test_it_labels_an_email_templates_bodies_html_and_plain_text(client, tenant):
    template = EmailTemplateFactory(tenant=tenant)
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    html = client.get(reverse("admin:delivery_emailtemplate_change", args=[template.pk])).content.decode()
    assert ">HTML:</label>" in html and ">Plain text:</label>" in html and ">Html:</label>" not in html
