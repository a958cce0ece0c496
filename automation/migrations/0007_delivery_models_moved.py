# The outbox, webhook secrets and endpoints, email templates and integration credentials now belong to the
# delivery app (delivery/migrations/0001_initial.py); their tables stay where they are.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("automation", "0006_event_failures"),
        ("delivery", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Outbox"),
                migrations.DeleteModel(name="EmailTemplate"),
                migrations.DeleteModel(name="IntegrationCredential"),
                migrations.DeleteModel(name="WebhookEndpoint"),
                migrations.DeleteModel(name="WebhookSecret"),
            ],
            database_operations=[],
        ),
    ]
