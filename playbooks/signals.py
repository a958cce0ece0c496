"""Thin receivers: a new tenant gets the playbook defaults; ``seed_demo`` switches the demo's plays on; a
SuccessPlay's message that died gives the account owner a task (``delivery_outcomes``)."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts import signals as domain
from accounts.models import Tenant
from csplatform.tenancy import tenant_context
from delivery.signals import outbox_message_finished

from . import delivery_outcomes
from .defaults import enable_demo_plays, playbook_defaults_ensure


@receiver(post_save, sender=Tenant, dispatch_uid="playbooks.tenant_defaults")
def tenant_created(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        with tenant_context(instance):
            playbook_defaults_ensure(instance)


@receiver(domain.demo_seeded, dispatch_uid="playbooks.demo_seeded")
def demo_seeded(sender, tenant, **kwargs):
    with tenant_context(tenant):
        playbook_defaults_ensure(tenant)  # a demo tenant created before playbooks had defaults
        enable_demo_plays(tenant)


@receiver(outbox_message_finished, dispatch_uid="playbooks.delivery_outcomes")
def delivery_finished(sender, message, status, **kwargs):
    return delivery_outcomes.on_message_finished(sender, message, status, **kwargs)
