"""Secrets at rest (docs/security.md): the webhook signing secrets, the integration tokens (Slack, SMS, Telegram
bots, HubSpot, Salesforce) and the Mailgun signing keys become ``EncryptedTextField`` (text columns holding
``fernet:<token>``), and the rows already there are encrypted in place, in batches; reversed, they are decrypted
back to plain text before the columns shrink again. ``WebhookSecret`` lives in ``automation_webhooksecret``.
"""

import csplatform.crypto
import delivery.models
from csplatform.crypto import column_rewrite, decrypt_to_plain, encrypt_plain
from csplatform.tenancy import system_context
from django.db import migrations

FIELDS = [("webhooksecret", "secret"), ("integrationcredential", "token"),
          ("emailfeedbackendpoint", "mailgun_signing_key")]


def _rewrite(apps, schema_editor, change, reason):
    with system_context(reason):  # row-level security binds the migration's role too
        for model_name, field_name in FIELDS:
            model = apps.get_model("delivery", model_name)
            column_rewrite(schema_editor.connection, model._meta.db_table, model._meta.get_field(field_name).column,
                           change, pk=model._meta.pk.column)


def encrypt_rows(apps, schema_editor):
    _rewrite(apps, schema_editor, encrypt_plain, "migration delivery.0006: encrypt the stored secrets")


def decrypt_rows(apps, schema_editor):
    _rewrite(apps, schema_editor, decrypt_to_plain, "migration delivery.0006 reversed: decrypt the stored secrets")



class Migration(migrations.Migration):

    dependencies = [
        ('delivery', '0005_telegram_channels'),
    ]

    operations = [
        migrations.AlterField(
            model_name='emailfeedbackendpoint',
            name='mailgun_signing_key',
            field=csplatform.crypto.EncryptedTextField(blank=True, default='', help_text="Mailgun's HTTP webhook signing key (write-only in the API).", max_length=200),
        ),
        migrations.AlterField(
            model_name='integrationcredential',
            name='token',
            field=csplatform.crypto.EncryptedTextField(max_length=500),
        ),
        migrations.AlterField(
            model_name='webhooksecret',
            name='secret',
            field=csplatform.crypto.EncryptedTextField(default=delivery.models.new_webhook_secret, max_length=100),
        ),
        migrations.RunPython(encrypt_rows, decrypt_rows),
    ]
