"""The delivery admin: outbox (filters, search, re-queue, read-only detail), outbox messages on the run page,
email templates (saved through the service, preview), webhook secrets (rotate, never shown again) and
integration credentials (token write-only); scoped by tenant and role."""

import json

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.models import AuditLog, Role
from automation.models import RunStep
from delivery.models import EmailTemplate, IntegrationCredential, Outbox, WebhookSecret
from tests.factories import (
    AccountFactory, ContactFactory, EmailTemplateFactory, IntegrationCredentialFactory, OutboxFactory, RunFactory,
    staff,
)

pytestmark = pytest.mark.django_db


def url(model: str, view: str, *args) -> str:
    app = "automation" if model in ("run", "workflow") else "delivery"
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def listed(response) -> set:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def act(client, model: str, action: str, *objects, follow=False):
    return client.post(url(model, "changelist"), {"action": action, "index": "0",
                                                  "_selected_action": [o.pk for o in objects]}, follow=follow)


# --- outbox --------------------------------------------------------------------------------------

def test_it_lists_only_the_users_tenants_messages_filtered_and_searched(client, tenant, other_tenant):
    dead = OutboxFactory(tenant=tenant, status=Outbox.Status.DEAD)
    email = OutboxFactory(tenant=tenant, channel="email", target="dana@customer.test")
    theirs = OutboxFactory(tenant=other_tenant, status=Outbox.Status.DEAD)
    client.force_login(staff(tenant, Role.VIEWER))
    assert listed(client.get(url("outbox", "changelist"))) == {dead.pk, email.pk}
    assert listed(client.get(url("outbox", "changelist"), {"status__exact": "dead"})) == {dead.pk}
    assert listed(client.get(url("outbox", "changelist"), {"channel__exact": "email"})) == {email.pk}
    assert listed(client.get(url("outbox", "changelist"), {"q": "dana@"})) == {email.pk}
    response = client.get(url("outbox", "change", theirs.pk))
    assert response.status_code in (302, 404)


def test_it_shows_a_read_only_detail_with_attempts_response_and_masked_headers(client, tenant):
    row = OutboxFactory(tenant=tenant, status=Outbox.Status.DEAD, attempts=8, last_status_code=500,
                        last_response="upstream exploded", error="gave up after 8 attempts: HTTP 500",
                        headers={"Authorization": "Bearer s3cr3t-value"})
    client.force_login(staff(tenant))
    response = client.get(url("outbox", "change", row.pk))
    assert response.status_code == 200
    page = response.content.decode()
    assert "upstream exploded" in page and "gave up after 8 attempts" in page and row.message_id in page
    assert "s3cr3t" not in page
    assert not response.context["adminform"].form.fields  # nothing editable
    assert client.post(url("outbox", "change", row.pk), {"status": "delivered"}).status_code == 403


def test_it_requeues_dead_messages_from_the_list_keeping_their_id(client, tenant):
    dead = OutboxFactory(tenant=tenant, status=Outbox.Status.DEAD, attempts=8)
    delivered = OutboxFactory(tenant=tenant, status=Outbox.Status.DELIVERED)
    client.force_login(staff(tenant, Role.PRACTITIONER))
    response = act(client, "outbox", "requeue", dead, delivered, follow=True)
    dead.refresh_from_db()
    delivered.refresh_from_db()
    assert (dead.status, dead.attempts) == (Outbox.Status.PENDING, 0)
    assert delivered.status == Outbox.Status.DELIVERED
    text = " ".join(messages_of(response))
    assert dead.message_id in text and "left as they were" in text


def test_it_does_not_let_viewers_requeue(client, tenant):
    dead = OutboxFactory(tenant=tenant, status=Outbox.Status.DEAD)
    client.force_login(staff(tenant, Role.VIEWER))
    act(client, "outbox", "requeue", dead)
    dead.refresh_from_db()
    assert dead.status == Outbox.Status.DEAD


def test_it_shows_each_steps_outbox_messages_on_the_run_page(client, tenant):
    run = RunFactory(workflow__tenant=tenant)
    step = RunStep.objects.create(tenant=tenant, run=run, position=0, action_type="webhook")
    OutboxFactory(tenant=tenant, target="https://hooks.example.com/1", run_id=run.pk, run_step_id=step.pk,
                  status=Outbox.Status.FAILED, error="HTTP 503", attempts=2)
    client.force_login(staff(tenant, Role.VIEWER))
    page = client.get(url("run", "change", run.pk)).content.decode()
    assert "Outbox messages" in page and "https://hooks.example.com/1" in page and "HTTP 503" in page
    assert "0: webhook" in page


# --- email templates -----------------------------------------------------------------------------

def template_form(**fields) -> dict:
    return {"name": "Hello", "category": "", "subject": "Hi {{ account.name }}", "html": "<p>Hi</p>", "text": "",
            "variables": "[]", **fields}


def test_it_saves_a_template_through_the_service_with_an_audit_entry(client, tenant):
    user = staff(tenant)
    client.force_login(user)
    response = client.post(url("emailtemplate", "add"), template_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    row = EmailTemplate.objects.get(name="Hello")
    assert row.tenant_id == tenant.pk
    assert AuditLog.objects.get(object_type="delivery.emailtemplate", action="create").actor == user


def test_it_shows_an_unknown_variable_on_its_field(client, tenant):
    client.force_login(staff(tenant))
    response = client.post(url("emailtemplate", "add"), template_form(html="<p>{{ account.nickname }}</p>"))
    assert response.status_code == 200
    assert "account.nickname" in str(response.context["adminform"].form.errors["html"])
    assert not EmailTemplate.objects.exists()


def test_it_lets_only_tenant_admins_change_templates(client, tenant):
    row = EmailTemplateFactory(tenant=tenant, subject="Hi")
    client.force_login(staff(tenant, Role.PRACTITIONER))
    assert client.get(url("emailtemplate", "change", row.pk)).status_code == 200
    client.post(url("emailtemplate", "change", row.pk), template_form(subject="Changed"))
    row.refresh_from_db()
    assert row.subject == "Hi"


def test_it_previews_a_template_for_an_account_or_with_sample_data(client, tenant, other_tenant):
    account = AccountFactory(tenant=tenant, name="GlobalTech")
    contact = ContactFactory(account=account, name="Dana Smith")
    row = EmailTemplateFactory(tenant=tenant, html="<p>Dear {{ contact.first_name }} <script>x()</script></p>")
    theirs = EmailTemplateFactory(tenant=other_tenant)
    client.force_login(staff(tenant, Role.VIEWER))
    assert client.get(url("emailtemplate", "preview", row.pk)).status_code == 403  # only its editors render it
    client.force_login(staff(tenant))
    sample = client.get(url("emailtemplate", "preview", row.pk))
    assert sample.status_code == 200 and "Hi Sample Account" in sample.content.decode()
    real = client.get(url("emailtemplate", "preview", row.pk), {"account": account.pk, "contact": contact.pk})
    page = real.content.decode()
    assert "Hi GlobalTech" in page and "Dear Dana" in page
    assert 'sandbox=""' in page and "<script>x()" not in page
    assert client.get(url("emailtemplate", "preview", theirs.pk)).status_code in (302, 404)


# --- webhook secrets -----------------------------------------------------------------------------

def test_it_rotates_a_webhook_secret_showing_it_once_and_never_again(client, tenant):
    old = WebhookSecret.objects.create(tenant=tenant)
    user = staff(tenant)
    client.force_login(user)
    response = client.post(url("webhooksecret", "rotate"), {"tenant": tenant.pk, "overlap_hours": "1"})
    assert response.status_code == 200
    new = WebhookSecret.objects.for_tenant(tenant).exclude(pk=old.pk).get()
    assert new.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    old.refresh_from_db()
    assert old.expires_at is not None
    for page in (client.get(url("webhooksecret", "changelist")), client.get(url("webhooksecret", "change", new.pk),
                                                                           follow=True)):
        text = page.content.decode()
        assert new.secret not in text and new.secret[6:16] not in text and old.secret[6:16] not in text
    assert AuditLog.objects.filter(object_type="delivery.webhooksecret", actor=user).exists()


def test_it_rotates_from_the_list_action(client, tenant):
    old = WebhookSecret.objects.create(tenant=tenant)
    client.force_login(staff(tenant))
    response = act(client, "webhooksecret", "rotate_for_tenant", old)
    assert response.status_code == 200
    assert WebhookSecret.objects.for_tenant(tenant).count() == 2
    new = WebhookSecret.objects.for_tenant(tenant).exclude(pk=old.pk).get()
    assert new.secret in response.content.decode()


def test_it_hides_webhook_secrets_from_everyone_but_tenant_admins(client, tenant, other_tenant):
    WebhookSecret.objects.create(tenant=tenant)
    theirs = WebhookSecret.objects.create(tenant=other_tenant)
    client.force_login(staff(tenant, Role.PRACTITIONER))
    assert client.get(url("webhooksecret", "changelist")).status_code == 403
    assert client.post(url("webhooksecret", "rotate"), {"tenant": tenant.pk, "overlap_hours": "1"}).status_code == 403
    client.force_login(staff(tenant))
    assert listed(client.get(url("webhooksecret", "changelist"))) == {
        WebhookSecret.objects.for_tenant(tenant).get().pk}
    response = client.post(url("webhooksecret", "rotate"), {"tenant": other_tenant.pk, "overlap_hours": "1"})
    assert "tenant" in response.context["form"].errors
    assert WebhookSecret.objects.filter(tenant=other_tenant).get() == theirs


# --- integration credentials ---------------------------------------------------------------------

def test_it_keeps_the_token_write_only(client, tenant):
    user = staff(tenant)
    client.force_login(user)
    response = client.post(url("integrationcredential", "add"),
                           {"integration": "slack", "base_url": "", "token": "xoxb-secret-1", "config": "{}"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    row = IntegrationCredential.objects.get()
    assert row.token == "xoxb-secret-1"
    page = client.get(url("integrationcredential", "change", row.pk)).content.decode()
    assert "xoxb-secret" not in page
    assert "xoxb-secret" not in client.get(url("integrationcredential", "changelist")).content.decode()
    # a blank token keeps the current one
    client.post(url("integrationcredential", "change", row.pk),
                {"integration": "slack", "base_url": "", "token": "", "config": json.dumps({"channel": "#cs"})})
    row.refresh_from_db()
    assert (row.token, row.config) == ("xoxb-secret-1", {"channel": "#cs"})
    audit = json.dumps(list(AuditLog.objects.filter(object_type="delivery.integrationcredential")
                            .values_list("changes", flat=True)))
    assert "xoxb-secret" not in audit
    assert AuditLog.objects.filter(object_type="delivery.integrationcredential", actor=user).count() == 2


def test_it_requires_a_token_and_refuses_metadata_base_urls(client, tenant):
    client.force_login(staff(tenant))
    response = client.post(url("integrationcredential", "add"),
                           {"integration": "salesforce", "base_url": "http://169.254.169.254/", "token": "",
                            "config": "{}"})
    errors = response.context["adminform"].form.errors
    assert "token" in errors and "base_url" in errors


def test_it_shows_credentials_only_to_tenant_admins_of_their_tenant(client, tenant, other_tenant):
    mine = IntegrationCredentialFactory(tenant=tenant)
    theirs = IntegrationCredentialFactory(tenant=other_tenant)
    client.force_login(staff(tenant, Role.PRACTITIONER))
    assert client.get(url("integrationcredential", "changelist")).status_code == 403
    client.force_login(staff(tenant))
    assert listed(client.get(url("integrationcredential", "changelist"))) == {mine.pk}
    assert client.get(url("integrationcredential", "change", theirs.pk)).status_code in (302, 404)
