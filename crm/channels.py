"""The one way a CRM journey sends anything: ``send()``.

Every step message (email, chat, SMS, owner notification) goes through ``send``, which hands it to the
delivery layer's outbox (``delivery.services.outbox_enqueue``) in the caller's transaction:
the step's "sent" and the message commit together, the delivery worker sends after commit with
retries and an idempotency key (``crm:<execution>:<step>``), so a re-run of a step never sends twice.
"Sent" on a step therefore means "handed to the outbox"; the outbox row (``outbox_message_id``) says
whether and when it was delivered.

Channels:

* ``email`` -> outbox ``email`` to the contact's address (payload: subject, text, html, contact_id so
  the transport re-checks the opt-out at send time);
* ``chat`` -> the tenant's chat transport (``CRMSettings.chat_transport``): ``sms`` to the contact's
  phone or ``slack`` to the contact's Slack channel/user id (``context["chat_id"]``); Telegram has no
  transport yet and fails as "not configured";
* ``sms`` -> outbox ``sms`` to the contact's phone;
* ``owner_dm`` -> an email to the account owner (the CSM).

Without the delivery layer (``outbox_enqueue`` not importable) email and owner notifications go out
directly with Django's ``send_mail`` and chat/SMS fail with "channel not configured": nothing is
silently dropped.

Delivery feedback: the delivery layer announces how each message ended
(``delivery.signals.outbox_message_finished``); ``on_outbox_message_finished`` finds the
step execution of a CRM message (idempotency key ``crm:<execution>:<step>``) and records it: ``dead``
-> the step is ``failed`` with the delivery error; ``delivered`` -> the step stays (or, after a
re-queued dead message got through, is again) ``sent`` with no error. It runs in the transaction that
records the outcome, so the step and the message never disagree.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

log = logging.getLogger("crm.channels")


class ChannelError(Exception):
    """The message could not be handed on; the message is recorded on the step execution."""


def _enqueue_service():
    try:
        from delivery.services import outbox_enqueue
    except ImportError:
        return None
    return outbox_enqueue


def _credential_exists(tenant_id, integration: str) -> bool:
    try:
        from delivery.models import IntegrationCredential
    except ImportError:
        return False
    return IntegrationCredential.objects.for_tenant(tenant_id).filter(integration=integration).exists()


def outbox_channel(channel: str, context: dict) -> str:
    """The outbox channel a CRM step channel travels on."""
    if channel in ("email", "owner_dm"):
        return "email"
    if channel == "sms":
        return "sms"
    if channel == "chat":
        return context.get("chat_transport") or "sms"
    raise ChannelError(f"unknown channel '{channel}'")


def idempotency_key(step_execution) -> str:
    return f"crm:{step_execution.execution_id}:{step_execution.step_order}"


def _payload(transport: str, subject: str, body: str, context: dict) -> dict:
    if transport == "email":
        payload = {"subject": subject, "text": body, "headers": {"X-CRM-Journey": context.get("journey", "")}}
        if context.get("html"):
            payload["html"] = context["html"]
        if context.get("contact_id"):
            payload["contact_id"] = context["contact_id"]
        return payload
    if transport == "slack":
        return {"text": body}
    return {"body": body}


def send(step_execution, channel: str, recipient: str, subject: str, body: str, context: dict) -> str | None:
    """Hand one step message on; returns the outbox message id (None when sent directly without an
    outbox). Raises ``ChannelError`` when it cannot be handed on."""
    context = context or {}
    if not recipient:
        raise ChannelError(f"no recipient address for channel '{channel}'")
    transport = outbox_channel(channel, context)
    if transport == "telegram":
        raise ChannelError("chat channel not configured: there is no Telegram transport in the delivery layer")
    enqueue = _enqueue_service()
    if enqueue is None:
        return _send_directly(step_execution, transport, recipient, subject, body, context)
    if transport in ("sms", "slack") and not _credential_exists(step_execution.tenant_id, transport):
        raise ChannelError(f"{channel} channel not configured: no {transport} integration credential for this tenant")
    try:
        message = enqueue(tenant=step_execution.tenant_id, channel=transport, target=recipient,
                          payload=_payload(transport, subject, body, context),
                          idempotency_key=idempotency_key(step_execution))
    except ValueError as exc:
        raise ChannelError(str(exc)) from None
    return getattr(message, "message_id", None) or (str(message) if message is not None else None)


def _send_directly(step_execution, transport: str, recipient: str, subject: str, body: str, context: dict) -> None:
    if transport != "email":
        raise ChannelError(f"{transport} channel not configured: the delivery layer (outbox) is not available")
    email = EmailMultiAlternatives(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[recipient],
                                   headers={"X-CRM-Idempotency-Key": idempotency_key(step_execution)})
    if context.get("html"):
        email.attach_alternative(context["html"], "text/html")
    try:
        if not email.send():
            raise ChannelError("the email backend sent nothing")
    except ChannelError:
        raise
    except Exception as exc:  # SMTP and network errors: recorded on the step, the journey goes on
        raise ChannelError(f"{type(exc).__name__}: {exc}") from None
    return None


# --- delivery feedback --------------------------------------------------------------------------

def _parse_key(key: str) -> tuple[str, int] | None:
    parts = (key or "").split(":")
    if len(parts) != 3 or parts[0] != "crm" or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def on_outbox_message_finished(sender, message, status, **kwargs) -> int:
    """Record a CRM message's final delivery outcome on its step execution; returns rows updated."""
    parsed = _parse_key(message.idempotency_key)
    if parsed is None:
        return 0
    from .models import CRMStepExecution

    S = CRMStepExecution.Status
    execution_id, step_order = parsed
    steps = CRMStepExecution.objects.for_tenant(message.tenant_id).filter(
        execution_id=execution_id, step_order=step_order, outbox_message_id=message.message_id)
    if status == "dead":
        return steps.filter(status=S.SENT).update(
            status=S.FAILED, error=f"delivery failed: {message.error}"[:2000], updated_at=timezone.now())
    if status == "delivered":
        return steps.filter(status__in=[S.SENT, S.FAILED]).update(status=S.SENT, error="", updated_at=timezone.now())
    return 0


def _connect_delivery_feedback() -> None:
    try:
        from delivery.signals import outbox_message_finished
    except ImportError:  # pragma: no cover - no delivery layer: messages are sent directly
        return
    outbox_message_finished.connect(on_outbox_message_finished, dispatch_uid="crm.channels.delivery_feedback")


_connect_delivery_feedback()
