"""Activity that keeps derived fields right: a contact's ``engagement_score`` and a deal's ``last_activity_date``.

**Contact engagement score** (0-100, seed 003's lead qualification reads it): the points of the contact's
last 30 days, clamped to 0..100. Engagements (``POINTS``): a completed meeting 25, call 20, email 10; a
missed meeting -15, a negative outcome -20, no response -10. Other apps add points through
``register_signal`` (delivery: 5 an email open, at most 20; 10 a click, at most 30). It is recomputed when one of its engagements is saved
or deleted (and when a signal's app asks: ``contact_engagement_refresh``); the window moves on at the next
recomputation, not by itself.

**Deal last activity**: an engagement or note about an opportunity moves its ``last_activity_date`` forward
(never back), with a save, so rules watching it see the change.

Writes go through ``save(update_fields=...)`` (post_save fires: rules see the change) and only when the
value changes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Callable

from django.db.models import Count
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from .models import Contact, Engagement, Note, Opportunity

WINDOW = timedelta(days=30)
POINTS = {("meeting", "completed"): 25, ("call", "completed"): 20, ("email", "completed"): 10,
          ("meeting", "missed"): -15}
OUTCOME_POINTS = {"negative": -20, "no_response": -10}
_signals: list[Callable] = []


def register_signal(fn: Callable) -> Callable:
    """``fn(contact, since) -> int``: more points for a contact's score (e.g. email opens and clicks)."""
    _signals.append(fn)
    return fn


def engagement_score(contact: Contact, now=None) -> int:
    since = (now or timezone.now()) - WINDOW
    rows = (Engagement.objects.for_tenant(contact.tenant_id).filter(contact=contact, occurred_at__gte=since)
            .values("kind", "outcome").annotate(n=Count("pk")))
    points = sum(row["n"] * POINTS.get((row["kind"], row["outcome"]), OUTCOME_POINTS.get(row["outcome"], 0))
                 for row in rows)
    points += sum(signal(contact, since) for signal in _signals)
    return max(0, min(100, points))


def contact_engagement_refresh_id(tenant_id, contact_id) -> None:
    """``contact_engagement_refresh`` for the contact with this id, if it still exists (for receivers)."""
    contact = Contact.objects.for_tenant(tenant_id).filter(pk=contact_id).first()
    if contact is not None:
        contact_engagement_refresh(contact)


def contact_engagement_refresh(contact: Contact) -> int:
    """Recompute and store the contact's score (a save, only when it changed); returns it."""
    score = engagement_score(contact)
    if score != contact.engagement_score:
        contact.engagement_score = score
        contact.save(update_fields=["engagement_score", "updated_at"])
    return score


def deal_touched(opportunity_id, tenant_id, on) -> None:
    deal = Opportunity.objects.for_tenant(tenant_id).filter(pk=opportunity_id).first()
    if deal is not None and (deal.last_activity_date is None or deal.last_activity_date < on):
        deal.last_activity_date = on
        deal.save(update_fields=["last_activity_date", "updated_at"])


@receiver([post_save, post_delete], sender=Engagement, dispatch_uid="accounts.engagement.engagement_changed")
def _engagement_changed(sender, instance, raw=False, **kwargs):
    if raw:
        return
    if instance.contact_id:
        contact_engagement_refresh_id(instance.tenant_id, instance.contact_id)
    if instance.opportunity_id and "created" in kwargs and instance.occurred_at <= timezone.now():  # saved, happened
        deal_touched(instance.opportunity_id, instance.tenant_id, timezone.localdate(instance.occurred_at))


@receiver(post_save, sender=Note, dispatch_uid="accounts.engagement.note_saved")
def _note_saved(sender, instance, raw=False, **kwargs):
    if not raw and instance.opportunity_id:
        deal_touched(instance.opportunity_id, instance.tenant_id, timezone.localdate(instance.created_at))
