# Email engagement: open/click/bounce/complaint events, the per-tenant suppression list and the inbound
# feedback endpoint (docs/delivery.md "Email engagement"). Row-level security is added by csplatform's post_migrate.

import delivery.models
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_telegram_and_deal_activity'),
        ('delivery', '0003_relabel_content_types'),
    ]

    operations = [
        migrations.CreateModel(
            name='EmailEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('email', models.CharField(blank=True, default='', help_text="The recipient's address.", max_length=254)),
                ('kind', models.CharField(choices=[('delivered', 'Delivered'), ('open', 'Opened'), ('click', 'Clicked'), ('bounce', 'Bounced'), ('complaint', 'Complaint')], max_length=10)),
                ('url', models.TextField(blank=True, default='', help_text='The link followed (clicks).')),
                ('at', models.DateTimeField(default=django.utils.timezone.now)),
                ('meta', models.JSONField(blank=True, default=dict, help_text="e.g. bounce_type, source (generic, mailgun), the provider's reason; user agent.")),
                ('contact', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='email_events', to='accounts.contact')),
                ('message', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='email_events', to='delivery.outbox')),
                ('tenant', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
            ],
            options={
                'verbose_name': 'email event',
                'ordering': ['-at', '-id'],
                'indexes': [models.Index(fields=['tenant', 'kind', 'at'], name='email_event_tenant_kind_idx'), models.Index(fields=['message', 'kind'], name='email_event_message_kind_idx')],
            },
        ),
        migrations.CreateModel(
            name='EmailFeedbackEndpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token', models.CharField(default=delivery.models.new_feedback_token, editable=False, max_length=64, unique=True)),
                ('mailgun_signing_key', models.CharField(blank=True, default='', help_text="Mailgun's HTTP webhook signing key (write-only in the API).", max_length=200)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('tenant', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
            ],
            options={
                'verbose_name': 'email feedback endpoint',
                'constraints': [models.UniqueConstraint(fields=('tenant',), name='email_feedback_endpoint_once_per_tenant')],
            },
        ),
        migrations.CreateModel(
            name='Suppression',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('email', models.CharField(help_text='Lower-cased address.', max_length=254)),
                ('reason', models.CharField(choices=[('hard_bounce', 'Hard bounce'), ('complaint', 'Spam complaint'), ('manual', 'Added by hand')], max_length=16)),
                ('detail', models.TextField(blank=True, default='', help_text='What the provider said, and where it came from.')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('tenant', models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'constraints': [models.UniqueConstraint(fields=('tenant', 'email'), name='suppression_once_per_tenant')],
            },
        ),
    ]
