"""``rotate_encryption_key``: re-encrypt every secret at rest with the first of ``FIELD_ENCRYPTION_KEYS``.

Rotation (docs/security.md "Secrets at rest"): put the new key first (``FIELD_ENCRYPTION_KEYS=new,old``) and
restart, run this command, then drop the old key. It covers every ``EncryptedTextField`` of every installed app
(delivery's webhook secrets and integration tokens, crm's Stripe signing secrets, …), in batches, in a system
context (row-level security: the secrets of every tenant). Safe to run again: rows already under the first key
are left alone. It fails (after doing the rest) if a row decrypts with none of the keys.
"""

import json

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, router

from csplatform.crypto import EncryptedTextField, column_rewrite, configured_keys, reencrypt
from csplatform.tenancy import system_context


def encrypted_fields():
    """(model, field) of every ``EncryptedTextField`` with a table of its own."""
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.local_concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the first of FIELD_ENCRYPTION_KEYS (after putting a new key first)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")

    def handle(self, *args, batch_size=500, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        keys = len(configured_keys())
        report = {}
        for model, field in encrypted_fields():
            connection = connections[router.db_for_write(model)]
            with system_context(f"rotate_encryption_key: {model._meta.label}.{field.name}"):
                counts = column_rewrite(connection, model._meta.db_table, field.column, reencrypt,
                                        pk=model._meta.pk.column, batch_size=batch_size)
            report[f"{model._meta.label}.{field.name}"] = dict(sorted(counts.items()))
        self.stdout.write(json.dumps({"keys": keys, "fields": report}, sort_keys=True))
        broken = {name: counts["undecryptable"] for name, counts in report.items() if counts.get("undecryptable")}
        if broken:
            raise CommandError(f"rows no key of FIELD_ENCRYPTION_KEYS decrypts were left as they are: {broken}; "
                               f"add the key that encrypted them (anywhere in the list) and run again")
