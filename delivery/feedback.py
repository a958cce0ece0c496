"""Bounces and complaints: what the email provider reports back, and the tenant's suppression list.

Two inbound formats per tenant (``EmailFeedbackEndpoint``; docs/delivery.md "Email engagement"):

* generic JSON ``{"type": "bounce"|"complaint", "email", "bounce_type": "hard"|"soft", "message_id"?}`` at
  ``/api/email-feedback/hooks/<token>/``, where the random per-tenant token is the credential;
* Mailgun's event webhook at ``…/<token>/mailgun/``: ``signature.signature`` must be the hex HMAC-SHA256 of
  ``timestamp + token`` under the tenant's webhook signing key, the timestamp within ``MAILGUN_TOLERANCE``
  and the token not seen before (replays are refused). ``failed`` with severity ``permanent`` is a hard
  bounce, ``temporary`` a soft one, ``complained`` a complaint; other events are acknowledged and ignored.

Every report is an ``EmailEvent``; a hard bounce or a complaint also puts the address on the tenant's
``Suppression`` list, which ``send_email`` and the email transport skip.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import Contact
from csplatform.tenancy import system_context

from .models import EmailEvent, EmailFeedbackEndpoint, Outbox, Suppression

MAILGUN_TOLERANCE = 5 * 60
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


class FeedbackError(ValueError):
    """A report that cannot be read: ``field`` names what is wrong (the API answers 400 with it)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class InvalidSignature(ValueError):
    pass


@dataclass
class Report:
    kind: str  # EmailEvent.Kind.BOUNCE or COMPLAINT
    email: str
    bounce_type: str = ""  # hard, soft ("" for a complaint)
    message_id: str = ""
    detail: str = ""
    source: str = "generic"

    @property
    def suppresses(self) -> bool:
        return self.kind == EmailEvent.Kind.COMPLAINT or self.bounce_type == "hard"


# --- suppression list ---------------------------------------------------------------------------

def normalize(email: str) -> str:
    return (email or "").strip().lower()


def suppressed_reasons(tenant, emails) -> dict[str, str]:
    """{lower-cased address: "suppressed: <reason>"} for those of ``emails`` the tenant suppresses."""
    wanted = {normalize(e) for e in emails if e}
    if not wanted:
        return {}
    rows = Suppression.objects.for_tenant(getattr(tenant, "pk", tenant)).filter(email__in=wanted)
    return {row.email: f"suppressed: {row.get_reason_display().lower()}" for row in rows}


def suppression_add(*, tenant, email: str, reason: str, detail: str = "") -> Suppression:
    """Suppress ``email`` for the tenant (idempotent: the first reason is kept)."""
    tenant_id = getattr(tenant, "pk", tenant)
    row, _ = Suppression.objects.for_tenant(tenant_id).get_or_create(
        tenant_id=tenant_id, email=normalize(email), defaults={"reason": reason, "detail": detail[:2000]})
    return row


@transaction.atomic
def email_feedback_record(*, tenant, report: Report) -> tuple[EmailEvent, Suppression | None]:
    """Record a bounce or complaint (in the tenant's context) and suppress the address when it is a hard
    bounce or a complaint. A ``message_id`` of another tenant (or unknown) links no message."""
    tenant_id = getattr(tenant, "pk", tenant)
    message = None
    if report.message_id:
        message = (Outbox.objects.for_tenant(tenant_id)
                   .filter(message_id=report.message_id, channel=Outbox.Channel.EMAIL).first())
    payload = message.payload if message is not None and isinstance(message.payload, dict) else {}
    contact_id = payload.get("contact_id") or (
        Contact.objects.for_tenant(tenant_id).filter(email__iexact=report.email).values_list("pk", flat=True).first())
    meta = {"source": report.source, **({"bounce_type": report.bounce_type} if report.bounce_type else {}),
            **({"detail": report.detail[:1000]} if report.detail else {})}
    event = EmailEvent.objects.create(tenant_id=tenant_id, message=message, contact_id=contact_id,
                                      email=normalize(report.email), kind=report.kind, meta=meta)
    suppression = None
    if report.suppresses:
        reason = Suppression.Reason.COMPLAINT if report.kind == EmailEvent.Kind.COMPLAINT else Suppression.Reason.HARD_BOUNCE
        suppression = suppression_add(tenant=tenant_id, email=report.email, reason=reason,
                                      detail=f"{report.source}: {report.detail}".rstrip(": "))
    return event, suppression


# --- inbound endpoint ---------------------------------------------------------------------------

def feedback_endpoint_get(tenant) -> EmailFeedbackEndpoint:
    """The tenant's endpoint (created on first use)."""
    tenant_id = getattr(tenant, "pk", tenant)
    endpoint, _ = EmailFeedbackEndpoint.objects.for_tenant(tenant_id).get_or_create(tenant_id=tenant_id)
    return endpoint


def feedback_endpoint_by_token(token: str) -> EmailFeedbackEndpoint | None:
    """The endpoint owning ``token``. The caller knows no tenant yet, so this one lookup runs in a system
    context (logged); anything that is not shaped like one of our tokens costs no query."""
    if not TOKEN.fullmatch(token or ""):
        return None
    with system_context("email feedback: find the endpoint by its token"):
        return EmailFeedbackEndpoint.objects.select_related("tenant").filter(token=token).first()


# --- formats ------------------------------------------------------------------------------------

def _email(value, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FeedbackError(field, "is required")
    try:
        validate_email(value.strip())
    except ValidationError:
        raise FeedbackError(field, f"'{value}' is not a valid email address") from None
    return value.strip()


def parse_generic(body) -> Report:
    if not isinstance(body, dict):
        raise FeedbackError("body", "must be a JSON object")
    kind = body.get("type")
    if kind not in ("bounce", "complaint"):
        raise FeedbackError("type", "must be bounce or complaint")
    email = _email(body.get("email"), "email")
    bounce_type = ""
    if kind == "bounce":
        bounce_type = body.get("bounce_type")
        if bounce_type not in ("hard", "soft"):
            raise FeedbackError("bounce_type", "must be hard or soft")
    message_id = body.get("message_id") or ""
    if not isinstance(message_id, str):
        raise FeedbackError("message_id", "must be a string")
    detail = body.get("detail") or body.get("reason") or ""
    return Report(kind=kind, email=email, bounce_type=bounce_type, message_id=message_id,
                  detail=str(detail)[:1000], source="generic")


def mailgun_verify(signing_key: str, body, *, now: float | None = None, tolerance: int = MAILGUN_TOLERANCE) -> None:
    """Mailgun's webhook signature: hex HMAC-SHA256(signing key, timestamp + token), a timestamp within the
    tolerance, and a token used once (cached for twice the tolerance). Raises ``InvalidSignature``."""
    signature = body.get("signature") if isinstance(body, dict) else None
    if not signing_key:
        raise InvalidSignature("no Mailgun signing key is configured for this tenant")
    if not isinstance(signature, dict) or not all(isinstance(signature.get(k), str) and signature.get(k)
                                                  for k in ("timestamp", "token", "signature")):
        raise InvalidSignature("signature.timestamp, signature.token and signature.signature are required")
    try:
        timestamp = int(signature["timestamp"])
    except ValueError:
        raise InvalidSignature("bad signature.timestamp") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("signature.timestamp is outside the tolerance (stale or replayed)")
    expected = hmac.new(signing_key.encode(), f"{signature['timestamp']}{signature['token']}".encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature["signature"].lower()):
        raise InvalidSignature("the signature does not match")
    seen = "delivery:mailgun-token:" + hashlib.sha256(signature["token"].encode()).hexdigest()
    if not cache.add(seen, 1, timeout=2 * tolerance):
        raise InvalidSignature("this signature token was already used (replayed)")


def parse_mailgun(body) -> Report | None:
    """The report in a Mailgun event (None: an event that is neither a failure nor a complaint)."""
    data = body.get("event-data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise FeedbackError("event-data", "is required")
    event, severity = data.get("event"), data.get("severity")
    if event == "failed":
        kind, bounce_type = EmailEvent.Kind.BOUNCE, "hard" if severity == "permanent" else "soft"
    elif event == "complained":
        kind, bounce_type = EmailEvent.Kind.COMPLAINT, ""
    else:
        return None
    email = _email(data.get("recipient"), "event-data.recipient")
    variables = data.get("user-variables") if isinstance(data.get("user-variables"), dict) else {}
    status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
    detail = status.get("description") or status.get("message") or data.get("reason") or ""
    return Report(kind=kind, email=email, bounce_type=bounce_type, message_id=str(variables.get("message_id") or ""),
                  detail=str(detail)[:1000], source="mailgun")
