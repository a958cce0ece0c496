# The moved models keep their history: their content types (admin log entries, permissions) and the audit
# trail's object_type move from "automation.<model>" to "delivery.<model>" instead of starting afresh.

from django.db import migrations

MOVED = ("outbox", "webhooksecret", "webhookendpoint", "emailtemplate", "integrationcredential")


def relabel(apps, schema_editor, old="automation", new="delivery"):
    from csplatform.tenancy import system_context  # the audit trail has row-level security

    ContentType = apps.get_model("contenttypes", "ContentType")
    AuditLog = apps.get_model("accounts", "AuditLog")
    for model in MOVED:
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)
    with system_context(f"migration: audit entries of the moved delivery models ({old} -> {new})"):
        for model in MOVED:
            AuditLog.objects.filter(object_type=f"{old}.{model}").update(object_type=f"{new}.{model}")


def unlabel(apps, schema_editor):
    relabel(apps, schema_editor, old="delivery", new="automation")


class Migration(migrations.Migration):

    dependencies = [
        ("delivery", "0002_outbox_run_ids"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("accounts", "0003_health_score_adjustment"),
    ]

    operations = [migrations.RunPython(relabel, unlabel)]
