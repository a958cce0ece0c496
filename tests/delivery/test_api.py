"""The delivery APIs: /api/outbox/ (+ requeue), /api/email-templates/ (+ preview), /api/webhook-secrets/,
/api/integration-credentials/: roles, tenant isolation, validation, and no secret in any response."""

from __future__ import annotations

import datetime
import json

import pytest
from django.utils import timezone

from accounts.models import AuditLog, Role
from delivery.models import EmailTemplate, IntegrationCredential, Outbox, WebhookSecret
from tests.factories import (
    AccountFactory, ContactFactory, EmailTemplateFactory, IntegrationCredentialFactory, OutboxFactory, RunFactory,
)

pytestmark = pytest.mark.django_db

OUTBOX = "/api/outbox/"
TEMPLATES = "/api/email-templates/"
SECRETS = "/api/webhook-secrets/"
CREDENTIALS = "/api/integration-credentials/"


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    body = response.json()
    return body["results"] if isinstance(body, dict) and "results" in body else body


# --- outbox --------------------------------------------------------------------------------------

def test_it_lists_only_the_tenants_messages_with_secret_headers_masked(api, tenant, other_tenant):
    mine = OutboxFactory(tenant=tenant, headers={"Authorization": "Bearer s3cr3t-value", "X-Trace": "t-1"})
    OutboxFactory(tenant=other_tenant, headers={"Authorization": "Bearer s3cr3t-value"})
    rows = results(api.get(OUTBOX))
    assert [r["id"] for r in rows] == [mine.pk]
    assert rows[0]["message_id"] == mine.message_id
    assert rows[0]["headers"] == {"Authorization": "***", "X-Trace": "t-1"}
    assert "s3cr3t" not in json.dumps(rows)


def test_it_masks_secrets_in_an_email_payloads_headers(api, tenant):
    OutboxFactory(tenant=tenant, channel="email", target="a@customer.test",
                  payload={"subject": "Hi", "headers": {"X-Api-Key": "k-123", "List-Unsubscribe": "<https://x/u>"}})
    row = results(api.get(OUTBOX))[0]
    assert row["payload"]["headers"] == {"X-Api-Key": "***", "List-Unsubscribe": "<https://x/u>"}


def test_it_filters_messages_by_status_channel_run_and_created_range(api, tenant):
    old = OutboxFactory(tenant=tenant, status=Outbox.Status.DEAD,
                        created_at=timezone.now() - datetime.timedelta(days=3))
    email = OutboxFactory(tenant=tenant, channel="email", target="a@customer.test", status=Outbox.Status.DELIVERED)
    failed = OutboxFactory(tenant=tenant, target="https://hooks.example.com/failing", status=Outbox.Status.FAILED)

    def ids(query):
        return {r["id"] for r in results(api.get(OUTBOX, query))}

    assert ids({"status": "dead"}) == {old.pk}
    assert ids({"channel": "email"}) == {email.pk}
    since = (timezone.now() - datetime.timedelta(days=1)).isoformat()
    assert ids({"created_after": since}) == {email.pk, failed.pk}
    assert ids({"created_before": since}) == {old.pk}
    assert ids({"search": "hooks.example.com/failing"}) == {failed.pk}
    assert api.get(OUTBOX, {"status": "lost"}).status_code == 400


def test_filtering_by_another_tenants_run_finds_nothing(api, tenant, other_tenant):
    run = RunFactory(workflow__tenant=other_tenant)
    OutboxFactory(tenant=other_tenant, run_id=run.pk)
    response = api.get(OUTBOX, {"run": run.pk})
    assert response.status_code == 200 and response.json()["results"] == []


def test_it_is_read_only(api, tenant):
    row = OutboxFactory(tenant=tenant)
    assert api.post(OUTBOX, {"channel": "webhook", "target": "https://x.example.com"}).status_code == 405
    assert api.patch(f"{OUTBOX}{row.pk}/", {"status": "delivered"}).status_code == 405
    assert api.delete(f"{OUTBOX}{row.pk}/").status_code == 405


def test_it_requeues_a_dead_message_as_pending_with_the_same_message_id(api, tenant):
    dead = OutboxFactory(tenant=tenant, status=Outbox.Status.DEAD, attempts=8, error="gave up after 8 attempts: 500")
    response = api.post(f"{OUTBOX}{dead.pk}/requeue")
    assert response.status_code == 200, response.content
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.error) == (Outbox.Status.PENDING, 0, "")
    assert response.json()["message_id"] == dead.message_id
    assert response.json()["status"] == "pending"


def test_it_refuses_to_requeue_a_delivered_message_naming_its_status(api, tenant):
    done = OutboxFactory(tenant=tenant, status=Outbox.Status.DELIVERED)
    response = api.post(f"{OUTBOX}{done.pk}/requeue/")
    assert response.status_code == 409  # well formed: the message's state refuses it
    assert "delivered" in response.json()["status"][0]


@pytest.mark.parametrize("role,allowed", [(Role.TENANT_ADMIN, True), (Role.PRACTITIONER, True),
                                          (Role.CONTRIBUTOR, False), (Role.VIEWER, False)])
def test_it_lets_tenant_admins_and_practitioners_requeue(member_client, tenant, role, allowed):
    client = member_client(tenant, role)
    dead = OutboxFactory(tenant=tenant, status=Outbox.Status.DEAD)
    assert client.get(OUTBOX).status_code == 200
    response = client.post(f"{OUTBOX}{dead.pk}/requeue")
    assert response.status_code == (200 if allowed else 403)
    dead.refresh_from_db()
    assert dead.status == (Outbox.Status.PENDING if allowed else Outbox.Status.DEAD)


def test_it_answers_404_for_another_tenants_message(api, other_tenant):
    theirs = OutboxFactory(tenant=other_tenant, status=Outbox.Status.DEAD)
    assert api.get(f"{OUTBOX}{theirs.pk}/").status_code == 404
    assert api.post(f"{OUTBOX}{theirs.pk}/requeue").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Outbox.Status.DEAD


# --- email templates -----------------------------------------------------------------------------

def test_it_creates_a_template_through_the_service_and_audits_it(api, tenant):
    body = {"name": "Renewal", "subject": "Renewal for {{ account.name }}", "html": "<p>{{ custom.offer }}</p>",
            "variables": ["offer"], "category": "renewal"}
    response = api.post(TEMPLATES, body)
    assert response.status_code == 201, response.content
    row = EmailTemplate.objects.get(pk=response.json()["id"])
    assert (row.tenant_id, row.variables) == (tenant.pk, ["offer"])
    entry = AuditLog.objects.get(object_type="delivery.emailtemplate", action="create")
    assert entry.actor == api.user


def test_it_rejects_an_unknown_variable_naming_the_field_and_the_variable(api, tenant):
    response = api.post(TEMPLATES, {"name": "Bad", "subject": "Hi {{ account.nickname }}", "html": "<p>x</p>"})
    assert response.status_code == 400
    assert "account.nickname" in response.json()["subject"][0]
    row = EmailTemplateFactory(tenant=tenant)
    response = api.patch(f"{TEMPLATES}{row.pk}/", {"html": "<p>{{ discount_code }}</p>"})
    assert response.status_code == 400
    assert "discount_code" in response.json()["html"][0]
    row.refresh_from_db()
    assert "discount_code" not in row.html


def test_it_rejects_a_duplicate_template_name(api, tenant):
    EmailTemplateFactory(tenant=tenant, name="Hello")
    response = api.post(TEMPLATES, {"name": "Hello", "subject": "x", "html": "<p>x</p>"})
    assert response.status_code == 400
    assert "name" in response.json()


def test_it_updates_and_deletes_a_template_with_an_audit_entry_each(api, tenant):
    row = EmailTemplateFactory(tenant=tenant)
    assert api.patch(f"{TEMPLATES}{row.pk}/", {"subject": "Hello {{ account.name }}"}).status_code == 200
    assert api.delete(f"{TEMPLATES}{row.pk}/").status_code == 204
    actions = list(AuditLog.objects.filter(object_type="delivery.emailtemplate").values_list("action", flat=True))
    assert sorted(actions) == ["delete", "update"]


@pytest.mark.parametrize("role", [Role.PRACTITIONER, Role.CONTRIBUTOR, Role.VIEWER])
def test_it_lets_everyone_read_templates_but_only_tenant_admins_preview_and_write(member_client, tenant, role):
    client = member_client(tenant, role)
    row = EmailTemplateFactory(tenant=tenant)
    assert client.get(TEMPLATES).status_code == 200
    assert client.post(f"{TEMPLATES}{row.pk}/preview", {}).status_code == 403  # rendering is for its editors
    assert client.post(TEMPLATES, {"name": "New", "subject": "x", "html": "<p>x</p>"}).status_code == 403
    assert client.patch(f"{TEMPLATES}{row.pk}/", {"subject": "y"}).status_code == 403
    assert client.delete(f"{TEMPLATES}{row.pk}/").status_code == 403


def test_it_previews_a_template_with_an_accounts_variables(api, tenant):
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    contact = ContactFactory(account=account, name="Dana Smith")
    row = EmailTemplateFactory(tenant=tenant, variables=["offer"],
                               html="<p>Dear {{ contact.first_name }}, {{ account.name }} ({{ offer }})</p>")
    response = api.post(f"{TEMPLATES}{row.pk}/preview", {"account_id": str(account.pk), "contact_id": contact.pk,
                                                        "custom": {"offer": "20% off"}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["subject"] == "Hi TechStart Solutions"
    assert "Dear Dana, TechStart Solutions (20% off)" in body["html"]
    assert body["sample"] is False


def test_it_previews_with_sample_data_when_no_account_is_given(api, tenant):
    row = EmailTemplateFactory(tenant=tenant, variables=["offer"], html="<p>{{ account.name }} {{ offer }}</p>")
    body = api.post(f"{TEMPLATES}{row.pk}/preview", {}).json()
    assert body["sample"] is True
    assert body["subject"] == "Hi Sample Account"
    assert "Sample Account [offer]" in body["html"]


def test_it_refuses_to_preview_with_another_tenants_account_or_template(api, tenant, other_tenant):
    mine = EmailTemplateFactory(tenant=tenant)
    theirs = EmailTemplateFactory(tenant=other_tenant)
    stranger = AccountFactory(tenant=other_tenant)
    response = api.post(f"{TEMPLATES}{mine.pk}/preview", {"account_id": str(stranger.pk)})
    assert response.status_code == 400
    assert "account_id" in response.json()
    assert api.post(f"{TEMPLATES}{theirs.pk}/preview", {}).status_code == 404
    assert api.get(f"{TEMPLATES}{theirs.pk}/").status_code == 404
    assert [r["id"] for r in results(api.get(TEMPLATES))] == [mine.pk]


# --- webhook secrets -----------------------------------------------------------------------------

def test_it_rotates_a_webhook_secret_returning_it_once_and_never_again(api, tenant):
    old = WebhookSecret.objects.create(tenant=tenant)
    response = api.post(SECRETS, {"overlap_hours": 2})
    assert response.status_code == 201, response.content
    new_secret = response.json()["secret"]
    assert new_secret.startswith("whsec_")
    old.refresh_from_db()
    assert old.expires_at is not None and old.is_active
    listing = api.get(SECRETS)
    detail = api.get(f"{SECRETS}{old.pk}/")
    for shown in (listing, detail):
        text = shown.content.decode()
        assert new_secret not in text and old.secret not in text
        assert new_secret[6:16] not in text and old.secret[6:16] not in text
    assert len(results(listing)) == 2
    assert all("secret" not in row for row in results(listing))
    audit = json.dumps(list(AuditLog.objects.filter(object_type="delivery.webhooksecret")
                            .values("changes", "object_repr")))
    assert new_secret not in audit and new_secret[6:16] not in audit and old.secret[6:16] not in audit


def test_it_rotates_with_no_overlap_at_the_rotate_url(api, tenant):
    old = WebhookSecret.objects.create(tenant=tenant)
    assert api.post(f"{SECRETS}rotate", {"overlap_hours": 0}).status_code == 201
    old.refresh_from_db()
    assert not old.is_active


@pytest.mark.parametrize("role", [Role.PRACTITIONER, Role.CONTRIBUTOR, Role.VIEWER])
def test_it_lets_only_tenant_admins_see_or_rotate_webhook_secrets(member_client, tenant, role):
    client = member_client(tenant, role)
    WebhookSecret.objects.create(tenant=tenant)
    assert client.get(SECRETS).status_code == 403
    assert client.post(SECRETS, {}).status_code == 403
    assert WebhookSecret.objects.filter(tenant=tenant).count() == 1


def test_it_isolates_webhook_secrets_by_tenant(api, tenant, other_tenant):
    theirs = WebhookSecret.objects.create(tenant=other_tenant)
    assert results(api.get(SECRETS)) == []
    assert api.get(f"{SECRETS}{theirs.pk}/").status_code == 404
    api.post(SECRETS, {"overlap_hours": 0})
    theirs.refresh_from_db()
    assert theirs.expires_at is None


# --- integration credentials ---------------------------------------------------------------------

def test_it_stores_a_credential_with_a_write_only_token(api, tenant):
    response = api.post(CREDENTIALS, {"integration": "sms", "token": "tok-secret-1", "config": {"from": "+15550100",
                                                                                             "api_key": "k-9"}})
    assert response.status_code == 201, response.content
    assert "tok-secret-1" not in response.content.decode() and "k-9" not in response.content.decode()
    assert response.json()["connected"] is True
    row = IntegrationCredential.objects.get(pk=response.json()["id"])
    assert (row.tenant_id, row.token) == (tenant.pk, "tok-secret-1")
    response = api.patch(f"{CREDENTIALS}{row.pk}/", {"token": "tok-secret-2"})
    assert response.status_code == 200 and "tok-secret" not in response.content.decode()
    listing = api.get(CREDENTIALS).content.decode()
    assert "tok-secret" not in listing and "k-9" not in listing
    row.refresh_from_db()
    assert row.token == "tok-secret-2"
    audit = json.dumps(list(AuditLog.objects.filter(object_type="delivery.integrationcredential")
                            .values_list("changes", flat=True)))
    assert "tok-secret" not in audit
    assert AuditLog.objects.filter(object_type="delivery.integrationcredential", actor=api.user).count() == 2


def test_it_validates_credentials(api, tenant):
    assert "token" in api.post(CREDENTIALS, {"integration": "slack"}).json()
    IntegrationCredentialFactory(tenant=tenant)
    assert "integration" in api.post(CREDENTIALS, {"integration": "slack", "token": "y"}).json()
    refused = api.post(CREDENTIALS, {"integration": "salesforce", "token": "y",
                                     "base_url": "http://169.254.169.254/latest"})
    assert refused.status_code == 400 and "base_url" in refused.json()


@pytest.mark.parametrize("role", [Role.PRACTITIONER, Role.CONTRIBUTOR, Role.VIEWER])
def test_it_lets_only_tenant_admins_manage_credentials(member_client, tenant, role):
    client = member_client(tenant, role)
    row = IntegrationCredentialFactory(tenant=tenant)
    assert client.get(CREDENTIALS).status_code == 403
    assert client.post(CREDENTIALS, {"integration": "sms", "token": "y"}).status_code == 403
    assert client.delete(f"{CREDENTIALS}{row.pk}/").status_code == 403


def test_it_isolates_credentials_by_tenant(api, tenant, other_tenant):
    theirs = IntegrationCredentialFactory(tenant=other_tenant)
    assert results(api.get(CREDENTIALS)) == []
    assert api.patch(f"{CREDENTIALS}{theirs.pk}/", {"token": "mine"}).status_code == 404
    assert api.delete(f"{CREDENTIALS}{theirs.pk}/").status_code == 404
    # the same integration in another tenant is no clash
    assert api.post(CREDENTIALS, {"integration": "slack", "token": "y"}).status_code == 201


def test_it_accepts_seed_001s_html_content_and_text_content(api):
    created = api.post(TEMPLATES, {"name": "welcome_email_v2", "subject": "Welcome {{ account.name }}",
                                   "html_content": "<p>Hi {{ contact.name }}</p>",
                                   "text_content": "Hi {{ contact.name }}"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["html"], body["text"]) == ("<p>Hi {{ contact.name }}</p>", "Hi {{ contact.name }}")
    assert (body["html_content"], body["text_content"]) == (body["html"], body["text"])
    clash = api.patch(f"{TEMPLATES}{body['id']}/", {"html": "<p>a</p>", "html_content": "<p>b</p>"}, format="json")
    assert clash.status_code == 400 and "html_content" in clash.json()
