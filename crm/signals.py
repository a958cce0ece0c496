"""Thin receivers. No journey matching here: a journey starts when the automation engine processes an event
and the journey's managed rule matches it (``crm.rules``).

* a new tenant gets the default journeys (and with them their rules);
* a saved journey brings its rules in line (trigger, active); a deleted one takes them along;
* the delivery layer's final outcome of a CRM message is recorded on its step (``crm.channels``).
"""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import Tenant
from csplatform.tenancy import tenant_context
from delivery.signals import outbox_message_finished

from . import channels
from .models import CRMPlaybook
from .rules import journey_rules_delete, journey_rules_sync
from .services import crm_journeys_ensure


@receiver(post_save, sender=Tenant, dispatch_uid="crm.tenant_journeys")
def tenant_saved(sender, instance, created, raw=False, **kwargs):
    if created and not raw and settings.CRM_DEFAULT_JOURNEYS:
        with tenant_context(instance):
            crm_journeys_ensure(instance)


@receiver(post_save, sender=CRMPlaybook, dispatch_uid="crm.journey_rules")
def journey_saved(sender, instance, created, raw=False, **kwargs):
    if not raw:
        journey_rules_sync(instance, created=created)


@receiver(post_delete, sender=CRMPlaybook, dispatch_uid="crm.journey_rules_deleted")
def journey_deleted(sender, instance, **kwargs):
    journey_rules_delete(instance)


@receiver(outbox_message_finished, dispatch_uid="crm.channels.delivery_feedback")
def delivery_finished(sender, message, status, **kwargs):
    return channels.on_outbox_message_finished(sender, message, status, **kwargs)
