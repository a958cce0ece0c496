"""Thin receivers: accounts' domain signals start journeys (``crm.triggers``); a new tenant gets the
default journeys."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts import signals as domain
from accounts.models import Tenant
from csplatform.tenancy import tenant_context

from . import triggers


@receiver(post_save, sender=Tenant, dispatch_uid="crm.tenant_journeys")
def tenant_saved(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from .services import crm_journeys_ensure

        with tenant_context(instance):
            crm_journeys_ensure(instance)


@receiver(domain.status_changed, dispatch_uid="crm.status_changed")
def status_changed(sender, account, from_status, to_status, created, **kwargs):
    triggers.on_status_changed(account, from_status, to_status, created)


@receiver(domain.health_score_recorded, dispatch_uid="crm.health_score_recorded")
def health_score_recorded(sender, score, previous, **kwargs):
    triggers.on_health_score_recorded(score, previous)


@receiver(domain.goal_status_changed, dispatch_uid="crm.goal_status_changed")
def goal_status_changed(sender, goal, from_status, to_status, created, **kwargs):
    triggers.on_goal_status_changed(goal, from_status, to_status, created)
