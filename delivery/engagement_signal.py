"""Email opens and clicks count towards a contact's engagement score (``accounts.engagement``): 5 points an
open (at most 20) and 10 a click (at most 30) over the score's window; recording one recomputes the score."""

from __future__ import annotations

from django.db.models import Count
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.engagement import contact_engagement_refresh_id, register_signal
from accounts.models import Contact

from .models import EmailEvent

OPEN_POINTS, OPEN_CAP = 5, 20
CLICK_POINTS, CLICK_CAP = 10, 30


@register_signal
def email_points(contact: Contact, since) -> int:
    counts = dict(EmailEvent.objects.for_tenant(contact.tenant_id)
                  .filter(contact=contact, at__gte=since, kind__in=[EmailEvent.Kind.OPEN, EmailEvent.Kind.CLICK])
                  .values_list("kind").annotate(n=Count("pk")))
    return (min(OPEN_CAP, OPEN_POINTS * counts.get(EmailEvent.Kind.OPEN, 0))
            + min(CLICK_CAP, CLICK_POINTS * counts.get(EmailEvent.Kind.CLICK, 0)))


@receiver(post_save, sender=EmailEvent, dispatch_uid="delivery.engagement_signal.refresh")
def _refresh(sender, instance, created, raw=False, **kwargs):
    if created and not raw and instance.contact_id and instance.kind in (EmailEvent.Kind.OPEN, EmailEvent.Kind.CLICK):
        contact_engagement_refresh_id(instance.tenant_id, instance.contact_id)
