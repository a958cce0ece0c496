"""API tokens (issue 15): hashed, expiring, revocable. DRF's plain-text tokens (``authtoken_token``) become
ApiToken rows holding the digest of their key, so the keys clients have keep working until API_TOKEN_TTL from
now; then the plain keys are deleted.

``rest_framework.authtoken`` stays installed only so that this migration can read its table, which stays
empty. Once every database has run it, the app can leave INSTALLED_APPS: the dependency below and the
function follow it.
"""

import datetime
import hashlib

import django.db.models.deletion
import django.utils.timezone
from django.apps import apps as global_apps
from django.conf import settings
from django.db import migrations, models

PREFIX_LENGTH = 8


def move_authtoken_keys(apps, schema_editor):
    try:
        Token = apps.get_model("authtoken", "Token")
    except LookupError:  # rest_framework.authtoken is not installed (any more): no plain key to move
        return
    ApiToken = apps.get_model("accounts", "ApiToken")
    ttl = getattr(settings, "API_TOKEN_TTL", datetime.timedelta(days=30))
    expires_at = django.utils.timezone.now() + ttl
    moved = [
        ApiToken(user_id=token.user_id, name="authtoken (migrated)", prefix=token.key[:PREFIX_LENGTH],
                 digest=hashlib.sha256(token.key.encode()).hexdigest(), created_at=token.created,
                 expires_at=expires_at)
        for token in Token.objects.order_by("created").iterator()
    ]
    ApiToken.objects.bulk_create(moved, batch_size=500)
    Token.objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0006_tenant_number'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ] + ([("authtoken", "0004_alter_tokenproxy_options")] if global_apps.is_installed("rest_framework.authtoken")
         else [])

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(blank=True, default='', help_text='What the token is for.', max_length=100)),
                ('prefix', models.CharField(db_index=True, editable=False, help_text="The key's first characters: enough to recognise it, not to use it.", max_length=8)),
                ('digest', models.CharField(editable=False, max_length=64, unique=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('expires_at', models.DateTimeField(blank=True, help_text='Empty: never expires.', null=True)),
                ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'API token',
                'ordering': ['-created_at', '-id'],
            },
        ),
        # Backwards: the table is dropped; the plain keys cannot come back (clients log in again).
        migrations.RunPython(move_authtoken_keys, migrations.RunPython.noop),
    ]
