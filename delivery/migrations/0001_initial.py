# The delivery models moved here from the automation app with their tables: state only, no rows copied.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import delivery.models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("accounts", "0003_health_score_adjustment"),
        ("automation", "0006_event_failures"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='EmailTemplate',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100)),
                        ('subject', models.CharField(max_length=500)),
                        ('html', models.TextField()),
                        ('text', models.TextField(blank=True, default='')),
                        ('category', models.CharField(blank=True, default='', max_length=50)),
                        ('variables', models.JSONField(blank=True, default=list, help_text='Custom variables the template declares, e.g. ["product_name", "custom.discount_code"].')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('tenant', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
                        ('variants', models.JSONField(blank=True, default=list, help_text='A/B variants, e.g. [{"name": "A", "weight": 50}, {"name": "B", "weight": 50, "subject": "…"}]: each may override subject, html and text; a send picks one by its idempotency key and the weights.')),
                    ],
                    options={
                        'ordering': ['name'],
                        'constraints': [models.UniqueConstraint(fields=('tenant', 'name'), name='email_template_unique_name')],
                        'indexes': [],
                        'db_table': 'automation_emailtemplate',
                    },
                ),
                migrations.CreateModel(
                    name='IntegrationCredential',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('integration', models.CharField(choices=[('slack', 'Slack'), ('sms', 'SMS provider'), ('hubspot', 'HubSpot'), ('salesforce', 'Salesforce')], max_length=16)),
                        ('base_url', models.URLField(blank=True, default='', help_text="Blank: the platform's default for this integration.")),
                        ('token', models.CharField(max_length=500)),
                        ('config', models.JSONField(blank=True, default=dict, help_text='e.g. {"from": "+15550100"} for SMS.')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('tenant', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
                    ],
                    options={
                        'ordering': ['integration'],
                        'constraints': [models.UniqueConstraint(fields=('tenant', 'integration'), name='integration_once_per_tenant')],
                        'indexes': [],
                        'db_table': 'automation_integrationcredential',
                    },
                ),
                migrations.CreateModel(
                    name='WebhookEndpoint',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('url', models.TextField()),
                        ('url_hash', models.CharField(editable=False, help_text='sha256 of the URL (unique per tenant).', max_length=64)),
                        ('failing_since', models.DateTimeField(blank=True, help_text='First failure since the last success.', null=True)),
                        ('failures', models.PositiveIntegerField(default=0, help_text='Failed attempts since the last success.')),
                        ('last_failure_at', models.DateTimeField(blank=True, null=True)),
                        ('last_error', models.TextField(blank=True, default='')),
                        ('last_success_at', models.DateTimeField(blank=True, null=True)),
                        ('disabled_at', models.DateTimeField(blank=True, null=True)),
                        ('disabled_reason', models.TextField(blank=True, default='')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('tenant', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
                    ],
                    options={
                        'verbose_name': 'webhook endpoint',
                        'ordering': ['url'],
                        'indexes': [],
                        'constraints': [models.UniqueConstraint(fields=('tenant', 'url_hash'), name='webhook_endpoint_once_per_tenant')],
                        'db_table': 'automation_webhookendpoint',
                    },
                ),
                migrations.CreateModel(
                    name='WebhookSecret',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('secret', models.CharField(default=delivery.models.new_webhook_secret, max_length=100)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('expires_at', models.DateTimeField(blank=True, help_text='Stops signing after this time.', null=True)),
                        ('tenant', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
                    ],
                    options={
                        'ordering': ['created_at', 'id'],
                        'indexes': [],
                        'constraints': [],
                        'db_table': 'automation_webhooksecret',
                    },
                ),
                migrations.CreateModel(
                    name='Outbox',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('channel', models.CharField(choices=[('webhook', 'Webhook'), ('email', 'Email'), ('sms', 'SMS'), ('slack', 'Slack'), ('hubspot', 'HubSpot'), ('salesforce', 'Salesforce')], max_length=16)),
                        ('target', models.CharField(help_text='URL, email address, phone number, Slack channel or CRM object.', max_length=2048)),
                        ('method', models.CharField(default='POST', max_length=8)),
                        ('headers', models.JSONField(blank=True, default=dict)),
                        ('payload', models.JSONField(blank=True, default=dict)),
                        ('idempotency_key', models.CharField(max_length=255)),
                        ('message_id', models.CharField(default=delivery.models.new_message_id, editable=False, help_text='Sent as webhook-id; the same on every attempt so receivers can de-duplicate.', max_length=64, unique=True)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('sending', 'Sending'), ('delivered', 'Delivered'), ('failed', 'Failed (will retry)'), ('dead', 'Dead')], default='pending', max_length=10)),
                        ('attempts', models.PositiveSmallIntegerField(default=0)),
                        ('max_attempts', models.PositiveSmallIntegerField(default=8)),
                        ('retry_policy', models.JSONField(blank=True, default=dict, help_text='Backoff of this message (see delivery.retry).')),
                        ('next_attempt_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('claimed_at', models.DateTimeField(blank=True, help_text='When a worker marked it sending.', null=True)),
                        ('claim_token', models.UUIDField(blank=True, editable=False, null=True)),
                        ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('delivered_at', models.DateTimeField(blank=True, null=True)),
                        ('last_status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                        ('last_response', models.TextField(blank=True, default='', help_text='Excerpt of the last response body.')),
                        ('error', models.TextField(blank=True, default='')),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='outbox', to='automation.run')),
                        ('run_step', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='outbox', to='automation.runstep')),
                        ('tenant', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
                        ('email_template', models.ForeignKey(blank=True, help_text='The template an email was rendered from.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='messages', to='delivery.emailtemplate')),
                        ('variant', models.CharField(blank=True, default='', help_text='The A/B variant of the email template this message was rendered with.', max_length=32)),
                    ],
                    options={
                        'verbose_name': 'outbox message',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(condition=models.Q(('status__in', ['pending', 'failed'])), fields=['next_attempt_at'], name='outbox_due_idx'), models.Index(condition=models.Q(('status', 'sending')), fields=['claimed_at'], name='outbox_sending_idx'), models.Index(fields=['tenant', 'status', 'channel'], name='outbox_tenant_status_idx'), models.Index(condition=models.Q(('email_template__isnull', False)), fields=['email_template', 'variant'], name='outbox_template_variant_idx')],
                        'constraints': [models.UniqueConstraint(fields=('tenant', 'idempotency_key'), name='outbox_idempotency_per_tenant')],
                        'db_table': 'automation_outbox',
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
