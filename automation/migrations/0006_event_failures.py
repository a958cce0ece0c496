from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("automation", "0005_workflow_drafts"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="failed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="event",
            name="last_error",
            field=models.TextField(blank=True, default=""),
        ),
    ]
