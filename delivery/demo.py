"""The embedded demo's email engagement: a welcome email that was delivered and then opened.

Connected to ``accounts.signals.demo_seeded`` (accounts knows no other app): when ``seed_demo`` has written
its tenant, the first account's primary contact gets a welcome email sent two days ago and opened the next
morning, so the outbox, ``/api/email-events/`` and the admin show a recorded open. Idempotent.
"""

from __future__ import annotations

from datetime import timedelta

from django.dispatch import receiver
from django.utils import timezone

from accounts.models import Contact, Tenant
from accounts.signals import demo_seeded
from csplatform.tenancy import tenant_context

from .email import email_context, email_template_get, render_for_send
from .models import EmailEvent, Outbox
from .tracking import email_open_record

DEMO_KEY = "demo:welcome_email"


def demo_email_engagement(tenant: Tenant) -> EmailEvent | None:
    """Write the demo's delivered-and-opened welcome email (once); returns its open."""
    with tenant_context(tenant):
        existing = Outbox.objects.for_tenant(tenant).filter(idempotency_key=DEMO_KEY).first()
        if existing is not None:
            return existing.email_events.filter(kind=EmailEvent.Kind.OPEN).first()
        contact = (Contact.objects.for_tenant(tenant).filter(is_primary=True).exclude(email="")
                   .select_related("account").order_by("account__name", "pk").first())
        if contact is None:
            return None
        template = email_template_get(tenant, "welcome_email")
        context = email_context(tenant=tenant, account=contact.account, contact=contact,
                                custom={"product_name": tenant.name})
        rendered = render_for_send(template, context, key=DEMO_KEY)
        sent = timezone.now() - timedelta(days=2)
        message = Outbox.objects.create(
            tenant=tenant, channel=Outbox.Channel.EMAIL, target=contact.email, idempotency_key=DEMO_KEY,
            payload={**rendered, "contact_id": contact.pk}, status=Outbox.Status.DELIVERED, attempts=1,
            created_at=sent, next_attempt_at=sent, last_attempt_at=sent, delivered_at=sent,
            email_template=template, variant=rendered["variant"])
        return email_open_record(message, at=sent + timedelta(hours=18), meta={"source": "demo"})


@receiver(demo_seeded, dispatch_uid="delivery.demo_seeded")
def on_demo_seeded(sender, tenant, **kwargs):
    demo_email_engagement(tenant)
