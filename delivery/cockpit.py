"""Delivery's part of the CSM cockpit (``accounts.cockpit.sources``; registered in ``ready()``): what happened
to emails after they left, for the account's contacts (opens, clicks, bounces, complaints), as "Messages" on the
360 timeline beside the messages the account's rule runs wrote (``automation.cockpit``).
"""

from __future__ import annotations

from django.utils.text import Truncator

from accounts.cockpit.sources import BAD, GOOD, Entry, Kind, Source, admin_url, register

from .models import EmailEvent

MESSAGE = "message"
VERBS = {EmailEvent.Kind.DELIVERED: "delivered to", EmailEvent.Kind.OPEN: "opened by",
         EmailEvent.Kind.CLICK: "clicked by", EmailEvent.Kind.BOUNCE: "bounced for",
         EmailEvent.Kind.COMPLAINT: "reported as spam by"}
TONES = {EmailEvent.Kind.OPEN: GOOD, EmailEvent.Kind.CLICK: GOOD, EmailEvent.Kind.BOUNCE: BAD,
         EmailEvent.Kind.COMPLAINT: BAD}


class EmailEngagementSource(Source):
    key = "delivery"
    kinds = (Kind(MESSAGE, "Messages", "Message", 31),)

    def timeline(self, account, *, kinds, before, limit):
        rows = EmailEvent.objects.for_tenant(account.tenant_id).filter(contact__account=account)
        if before is not None:
            rows = rows.filter(at__lt=before)
        entries = []
        for event in rows.select_related("contact", "message").order_by("-at", "-id")[:limit]:
            subject = (event.message.payload or {}).get("subject", "") if event.message_id else ""
            detail = "; ".join(filter(None, [f"“{Truncator(subject).chars(120)}”" if subject else "",
                                             Truncator(event.url).chars(120),
                                             str((event.meta or {}).get("reason", ""))[:200]]))
            entries.append(Entry(event.at, MESSAGE, f"Email {VERBS.get(event.kind, event.kind)} {event.contact.name}",
                                 detail, event.get_kind_display(), TONES.get(event.kind, ""),
                                 admin_url("admin:delivery_emailevent_change", event.pk)))
        return entries


register(EmailEngagementSource())
