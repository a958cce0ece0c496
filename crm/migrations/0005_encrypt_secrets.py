"""Secrets at rest (docs/security.md): the Stripe webhook signing secret becomes an ``EncryptedTextField`` (a text
column holding ``fernet:<token>``) and the rows already there are encrypted in place; reversed, they are decrypted
back to plain text before the column shrinks again. The endpoint's URL ``token`` stays plain: it is what a request
is looked up by, and every request is also checked against the (encrypted) signing secret.
"""

import csplatform.crypto
from csplatform.crypto import column_rewrite, decrypt_to_plain, encrypt_plain
from csplatform.tenancy import system_context
from django.db import migrations


def _rewrite(apps, schema_editor, change, reason):
    model = apps.get_model("crm", "StripeWebhookEndpoint")
    with system_context(reason):  # row-level security binds the migration's role too
        column_rewrite(schema_editor.connection, model._meta.db_table, model._meta.get_field("signing_secret").column,
                       change, pk=model._meta.pk.column)


def encrypt_rows(apps, schema_editor):
    _rewrite(apps, schema_editor, encrypt_plain, "migration crm.0005: encrypt the Stripe signing secrets")


def decrypt_rows(apps, schema_editor):
    _rewrite(apps, schema_editor, decrypt_to_plain, "migration crm.0005 reversed: decrypt the Stripe signing secrets")



class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0004_billing_events'),
    ]

    operations = [
        migrations.AlterField(
            model_name='stripewebhookendpoint',
            name='signing_secret',
            field=csplatform.crypto.EncryptedTextField(max_length=255),
        ),
        migrations.RunPython(encrypt_rows, decrypt_rows),
    ]
