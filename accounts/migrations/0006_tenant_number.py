"""Tenant.number: seed 000's integer customer id, given to existing tenants in order of creation."""

from django.db import migrations, models


def number_tenants(apps, schema_editor):
    # Tenant has no row-level security (it is not tenant-owned): a plain loop over every tenant.
    Tenant = apps.get_model("accounts", "Tenant")
    for number, tenant in enumerate(Tenant.objects.order_by("created_at", "slug"), start=1):
        Tenant.objects.filter(pk=tenant.pk).update(number=number)


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0005_telegram_and_deal_activity"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="number",
            field=models.PositiveIntegerField(null=True, editable=False),
        ),
        migrations.RunPython(number_tenants, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="tenant",
            name="number",
            field=models.PositiveIntegerField(editable=False, help_text="Seed 000's customer id.", unique=True),
        ),
    ]
