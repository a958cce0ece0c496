# The (tenant, created_at) index retention and the cockpit read a tenant's messages by age with. On PostgreSQL it
# is built CONCURRENTLY, so a deploy onto a big outbox does not block the runs writing messages meanwhile.

from django.db import migrations, models

TABLE, NAME = "automation_outbox", "outbox_tenant_created_idx"


def create(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        # An earlier CONCURRENTLY build that was interrupted leaves an INVALID index behind: drop it first.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
                           " WHERE c.relname = %s AND NOT i.indisvalid", [NAME])
            invalid = cursor.fetchone() is not None
        if invalid:
            schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{NAME}"')
    concurrently = "CONCURRENTLY " if postgres else ""
    schema_editor.execute(f'CREATE INDEX {concurrently}IF NOT EXISTS "{NAME}" ON "{TABLE}" ("tenant_id", "created_at")')


def drop(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{NAME}"')


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("delivery", "0006_encrypt_secrets"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create, drop)],
            state_operations=[
                migrations.AddIndex(
                    model_name="outbox",
                    index=models.Index(fields=["tenant", "created_at"], name="outbox_tenant_created_idx"),
                ),
            ],
        ),
    ]
