# Delivery sits below automation: the outbox keeps the ids of the run and step that wrote a message as plain
# columns (same names, same data), without foreign keys to automation's tables.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("delivery", "0001_initial"),
        ("automation", "0007_delivery_models_moved"),
    ]

    operations = [
        migrations.AlterField(
            model_name="outbox", name="run",
            field=models.BigIntegerField(blank=True, null=True, db_index=True, db_column="run_id"),
        ),
        migrations.RenameField(model_name="outbox", old_name="run", new_name="run_id"),
        migrations.AlterField(
            model_name="outbox", name="run_step",
            field=models.BigIntegerField(blank=True, null=True, db_index=True, db_column="run_step_id"),
        ),
        migrations.RenameField(model_name="outbox", old_name="run_step", new_name="run_step_id"),
        migrations.AlterField(
            model_name="outbox", name="run_id",
            field=models.BigIntegerField(blank=True, db_index=True, help_text="The automation run that wrote it.", null=True),
        ),
        migrations.AlterField(
            model_name="outbox", name="run_step_id",
            field=models.BigIntegerField(blank=True, db_index=True, help_text="The run step that wrote it.", null=True),
        ),
    ]
