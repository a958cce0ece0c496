# The (tenant, created_at) indexes retention reads a tenant's oldest events and runs by. On PostgreSQL they are
# built CONCURRENTLY, so a deploy onto big tables does not block the writes of events and runs meanwhile.

from django.db import migrations, models

INDEXES = [("automation_event", "event_tenant_created_idx"), ("automation_run", "run_tenant_created_idx")]


def create(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for table, name in INDEXES:
        if postgres:
            # An earlier CONCURRENTLY build that was interrupted leaves an INVALID index behind: drop it first.
            with schema_editor.connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
                               " WHERE c.relname = %s AND NOT i.indisvalid", [name])
                invalid = cursor.fetchone() is not None
            if invalid:
                schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
        concurrently = "CONCURRENTLY " if postgres else ""
        schema_editor.execute(f'CREATE INDEX {concurrently}IF NOT EXISTS "{name}" ON "{table}" ("tenant_id", "created_at")')


def drop(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for _, name in INDEXES:
        schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{name}"')


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ('automation', '0009_retention_policy'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create, drop)],
            state_operations=[
                migrations.AddIndex(
                    model_name='event',
                    index=models.Index(fields=['tenant', 'created_at'], name='event_tenant_created_idx'),
                ),
                migrations.AddIndex(
                    model_name='run',
                    index=models.Index(fields=['tenant', 'created_at'], name='run_tenant_created_idx'),
                ),
            ],
        ),
    ]
