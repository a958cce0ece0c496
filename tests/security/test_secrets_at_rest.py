"""Secrets at rest (docs/security.md): the tenants' secrets are stored as Fernet ciphertext (``fernet:…``) under
``FIELD_ENCRYPTION_KEYS``, read back plain by the models, still sign and verify webhooks, rotate to a new key
with ``rotate_encryption_key``, fail loudly under a wrong key, and the migrations encrypt rows stored plain."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import io
import json
import re
import time
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings

from crm.models import StripeWebhookEndpoint
from csplatform import crypto
from csplatform.crypto import DecryptionError, EncryptedTextField
from delivery import secrets, services
from delivery.models import EmailFeedbackEndpoint, IntegrationCredential, Outbox, WebhookSecret
from tests.security.test_hardening import manage

pytestmark = pytest.mark.django_db

KEY_A, KEY_B, KEY_C = (Fernet.generate_key().decode() for _ in range(3))
TELEGRAM_TOKEN = "123456:AAE-telegram-bot-token-0123456789"
MAILGUN_KEY = "key-mailgun-signing-0123456789abcdef"
STRIPE_SECRET = "whsec_stripe_signing_0123456789abcdef"

# Fields whose names look secret but that are identifiers: looked up by value, so they cannot be encrypted
# with a randomised cipher (docs/security.md "Secrets at rest" says why each may stay plain).
IDENTIFIERS = {
    "delivery.Outbox.idempotency_key",  # de-duplication key of a message, not a secret
    "delivery.Outbox.claim_token",  # which worker claimed a message
    "delivery.EmailFeedbackEndpoint.token",  # URL segment the inbound hook is found by
    "crm.StripeWebhookEndpoint.token",  # URL segment; every request is also checked with the signing secret
    "automation.Workflow.webhook_token",  # URL segment of a rule's inbound hook
}
SECRET_NAME = re.compile(r"secret|token|password|api_?key|signing|credential|_key$", re.I)
PROJECT_APPS = {"accounts", "delivery", "automation", "playbooks", "crm", "csplatform"}


def raw(model, pk, field: str):
    """The stored value, past the model: what a database dump or a backup shows."""
    column = model._meta.get_field(field).column
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def set_raw(model, pk, field: str, value):
    """Write a value past the model, as a row stored before encryption would be."""
    column = model._meta.get_field(field).column
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {model._meta.db_table} SET {column} = %s WHERE id = %s", [value, pk])


def under(key: str, stored: str) -> str:
    """The plain text of ``stored`` under one key (InvalidToken if another key encrypted it)."""
    assert stored.startswith("fernet:"), stored
    return Fernet(key).decrypt(stored.removeprefix("fernet:").encode()).decode()


@pytest.fixture
def stored(tenant):
    """One row of every encrypted secret, with its plain value: (model, pk, field, plain)."""
    webhook = WebhookSecret.objects.create(tenant=tenant)
    telegram = IntegrationCredential.objects.create(tenant=tenant, integration="telegram", token=TELEGRAM_TOKEN)
    feedback = EmailFeedbackEndpoint.objects.create(tenant=tenant, mailgun_signing_key=MAILGUN_KEY)
    stripe = StripeWebhookEndpoint.objects.create(tenant=tenant, token="t" * 43, signing_secret=STRIPE_SECRET)
    return [(WebhookSecret, webhook.pk, "secret", webhook.secret),
            (IntegrationCredential, telegram.pk, "token", TELEGRAM_TOKEN),
            (EmailFeedbackEndpoint, feedback.pk, "mailgun_signing_key", MAILGUN_KEY),
            (StripeWebhookEndpoint, stripe.pk, "signing_secret", STRIPE_SECRET)]


def reads(model, pk, field):
    return getattr(model.objects.get(pk=pk), field)


# --- stored encrypted, read plain ----------------------------------------------------------------------

def test_it_stores_every_secret_as_ciphertext_and_the_models_read_the_plain_value(stored):
    for model, pk, field, plain in stored:
        value = raw(model, pk, field)
        assert value.startswith("fernet:") and plain not in value, (model, field)
        assert under(crypto.configured_keys()[0], value) == plain
        assert reads(model, pk, field) == plain
        assert model.objects.filter(pk=pk).values_list(field, flat=True).get() == plain


def test_it_covers_every_field_whose_name_says_secret():
    plain = sorted(
        f"{model._meta.label}.{field.name}" for model in apps.get_models() if model._meta.app_label in PROJECT_APPS
        for field in model._meta.concrete_fields
        if SECRET_NAME.search(field.name) and not field.name.endswith(("_hash", "_digest"))
        and not isinstance(field, EncryptedTextField) and f"{model._meta.label}.{field.name}" not in IDENTIFIERS
    )
    assert plain == [], "encrypt these (csplatform.crypto.EncryptedTextField) or list them as identifiers"


def test_it_does_not_encrypt_twice_nor_trust_a_fake_prefix(tenant):
    row = WebhookSecret.objects.create(tenant=tenant)
    first = raw(WebhookSecret, row.pk, "secret")
    row.save()  # the plain value again: a new ciphertext of the same secret
    assert under(crypto.configured_keys()[0], raw(WebhookSecret, row.pk, "secret")) == row.secret
    WebhookSecret.objects.filter(pk=row.pk).update(secret=first)  # ciphertext of ours is stored as it is
    assert raw(WebhookSecret, row.pk, "secret") == first and reads(WebhookSecret, row.pk, "secret") == row.secret
    fake = IntegrationCredential.objects.create(tenant=tenant, integration="slack", token="fernet:not-ours")
    assert reads(IntegrationCredential, fake.pk, "token") == "fernet:not-ours"  # encrypted like any plain value
    assert under(crypto.configured_keys()[0], raw(IntegrationCredential, fake.pk, "token")) == "fernet:not-ours"


def test_it_keeps_blank_blank_and_refuses_lookups_by_value(tenant):
    endpoint = EmailFeedbackEndpoint.objects.create(tenant=tenant)
    assert raw(EmailFeedbackEndpoint, endpoint.pk, "mailgun_signing_key") == ""  # blank: not configured
    with pytest.raises(FieldError, match="delivery.WebhookSecret.secret is encrypted at rest"):
        WebhookSecret.objects.filter(secret="whsec_x").exists()
    with pytest.raises(FieldError, match="cannot be looked up by value"):
        StripeWebhookEndpoint.objects.filter(signing_secret__startswith="whsec_").exists()
    assert not WebhookSecret.objects.filter(secret__isnull=True).exists()


# --- still signing and verifying -------------------------------------------------------------------------

def test_webhooks_are_signed_end_to_end_with_the_decrypted_secret(tenant, receiver):
    [secret] = secrets.active_webhook_secrets(tenant.pk)  # created on demand, encrypted
    row = WebhookSecret.objects.for_tenant(tenant).get()
    assert raw(WebhookSecret, row.pk, "secret").startswith("fernet:") and row.secret == secret
    assert row.fingerprint == "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]
    receiver.secrets = [secret]
    services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={"hello": "world"})
    services.deliver()
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_B, *crypto.configured_keys()]):  # mid-rotation, not yet run
        services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={"hello": "again"})
        services.deliver()
    assert [r["verified"] for r in receiver.requests] == [True, True]
    assert set(Outbox.objects.for_tenant(tenant).values_list("status", flat=True)) == {Outbox.Status.DELIVERED}


def test_a_stripe_event_signed_with_the_plain_secret_is_accepted(api, tenant):
    answer = api.post("/api/billing/stripe/endpoint/", {}, format="json").json()
    endpoint = StripeWebhookEndpoint.objects.for_tenant(tenant).get()
    assert raw(StripeWebhookEndpoint, endpoint.pk, "signing_secret").startswith("fernet:")

    def send(secret):
        body = json.dumps({"id": "evt_1", "type": "charge.refunded", "data": {"object": {}}}).encode()
        at = int(time.time())
        signature = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
        return api.post(answer["url"], body, content_type="application/json",
                        HTTP_STRIPE_SIGNATURE=f"t={at},v1={signature}")

    assert send("whsec_wrong").status_code == 400
    assert send(answer["signing_secret"]).status_code == 200


# --- rotation -------------------------------------------------------------------------------------------

def rotate(*args) -> dict:
    out = io.StringIO()
    call_command("rotate_encryption_key", *args, stdout=out)
    return json.loads(out.getvalue())


def test_it_rotates_to_a_new_key_so_the_old_one_can_be_dropped(tenant, other_tenant):
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_A]):
        rows = [WebhookSecret.objects.create(tenant=t) for t in (tenant, other_tenant, tenant)]
        credential = IntegrationCredential.objects.create(tenant=tenant, integration="telegram", token=TELEGRAM_TOKEN)
        stripe = StripeWebhookEndpoint.objects.create(tenant=other_tenant, token="s" * 43, signing_secret=STRIPE_SECRET)
    plain = {row.pk: row.secret for row in rows}
    assert all(under(KEY_A, raw(WebhookSecret, pk, "secret")) == value for pk, value in plain.items())

    with override_settings(FIELD_ENCRYPTION_KEYS=f"{KEY_B},{KEY_A}"):  # as the env variable gives it
        assert {pk: reads(WebhookSecret, pk, "secret") for pk in plain} == plain  # both keys decrypt
        report = rotate("--batch-size", "2")
    assert report["keys"] == 2
    assert report["fields"]["delivery.WebhookSecret.secret"] == {"rotated": 3}
    assert report["fields"]["delivery.IntegrationCredential.token"] == {"rotated": 1}
    assert report["fields"]["crm.StripeWebhookEndpoint.signing_secret"] == {"rotated": 1}
    for pk, value in plain.items():
        assert under(KEY_B, raw(WebhookSecret, pk, "secret")) == value
        with pytest.raises(InvalidToken):
            under(KEY_A, raw(WebhookSecret, pk, "secret"))

    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_B]):  # the old key is gone
        assert {pk: reads(WebhookSecret, pk, "secret") for pk in plain} == plain
        assert reads(IntegrationCredential, credential.pk, "token") == TELEGRAM_TOKEN
        assert reads(StripeWebhookEndpoint, stripe.pk, "signing_secret") == STRIPE_SECRET
        again = rotate()
    assert again["fields"]["delivery.WebhookSecret.secret"] == {"current": 3}  # nothing left to do


def test_a_wrong_key_is_a_clear_error_not_garbage(tenant):
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_A]):
        row = WebhookSecret.objects.create(tenant=tenant)
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_C]):
        with pytest.raises(DecryptionError, match=r"Cannot decrypt delivery\.WebhookSecret\.secret: none of the 1 "
                                                  r"FIELD_ENCRYPTION_KEYS decrypts it") as error:
            WebhookSecret.objects.get(pk=row.pk)
        assert row.secret not in str(error.value) and "fernet:" not in str(error.value)
        with pytest.raises(CommandError, match="no key of FIELD_ENCRYPTION_KEYS decrypts"):
            rotate()
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_C, KEY_A]):  # the rest of the command still ran
        assert reads(WebhookSecret, row.pk, "secret") == row.secret


def test_a_malformed_key_is_refused_by_the_system_check_without_showing_it():
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY_A, "not-a-fernet-key"]):
        [problem] = crypto.check_field_encryption_keys()
        assert problem.id == "csplatform.E001" and "key 2 of 2 is not a Fernet key" in problem.msg
        assert "not-a-fernet-key" not in problem.msg
        with pytest.raises(ImproperlyConfigured):
            crypto.encrypt("x")
    assert crypto.check_field_encryption_keys() == []


def test_production_settings_refuse_to_start_without_encryption_keys():
    result = manage("check", FIELD_ENCRYPTION_KEYS=None)
    assert result.returncode != 0 and "FIELD_ENCRYPTION_KEYS must be set" in result.stderr


# --- the migrations --------------------------------------------------------------------------------------

@pytest.mark.parametrize("migration, app", [("delivery.migrations.0006_encrypt_secrets", "delivery"),
                                            ("crm.migrations.0005_encrypt_secrets", "crm")])
def test_the_migration_encrypts_rows_stored_plain_and_decrypts_them_back(stored, migration, app):
    module = importlib.import_module(migration)
    historical = MigrationLoader(connection).project_state((app, migration.rsplit(".", 1)[1])).apps
    editor = SimpleNamespace(connection=connection)
    mine = [(model, pk, field, plain) for model, pk, field, plain in stored if model._meta.app_label == app]
    for model, pk, field, plain in mine:
        set_raw(model, pk, field, plain)  # as before the migration
    module.encrypt_rows(historical, editor)
    encrypted = {}
    for model, pk, field, plain in mine:
        encrypted[model, pk] = raw(model, pk, field)
        assert under(crypto.configured_keys()[0], encrypted[model, pk]) == plain and reads(model, pk, field) == plain
    module.encrypt_rows(historical, editor)  # again: nothing is encrypted twice
    assert all(raw(model, pk, field) == encrypted[model, pk] for model, pk, field, _ in mine)
    module.decrypt_rows(historical, editor)
    assert [raw(model, pk, field) for model, pk, field, _ in mine] == [plain for *_, plain in mine]
