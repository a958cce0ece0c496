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
* ``chat`` -> the tenant's chat transport (``CRMSettings.chat_transport``): ``telegram`` to the contact's
  ``telegram_chat_id``, ``slack`` to the Slack channel/user id in the journey's context (``chat_id``) or
  ``sms`` to the contact's phone. When the contact has no address there (or the tenant has not connected
  it), ``chat_route`` falls back along ``CHAT_FALLBACK`` (Telegram, then Slack, then SMS) and the step
  fails only when none is left;
* ``sms`` -> outbox ``sms`` to the contact's phone;
* ``owner_dm`` -> an email to the account owner (the CSM).

Delivery feedback: the delivery layer announces how each message ended
(``delivery.signals.outbox_message_finished``); ``on_outbox_message_finished`` finds the
step execution of a CRM message (idempotency key ``crm:<execution>:<step>``) and records it: ``dead``
-> the step is ``failed`` with the delivery error and the account owner gets a task (one per journey,
account and day: ``automation.delivery_outcomes.dead_delivery_task``); ``delivered`` -> the step stays
``sent`` (keeping its note, e.g. the chat fallback it took) or, after a re-queued dead message got
through, is again ``sent`` with no error. It runs in the
transaction that records the outcome, so the step and the message never disagree (connected in
``crm.signals``).
"""

from __future__ import annotations

from django.utils import timezone

from automation.delivery_outcomes import dead_delivery_task, dead_message_text
from delivery.services import outbox_enqueue
from delivery.transports import channel_unavailable

from .models import CRMPlaybookExecution, CRMStepExecution

#: The order a chat step tries transports in after the tenant's own choice (docs/crm.md "Channels").
CHAT_FALLBACK = ("telegram", "slack", "sms")
#: Outbox channels that need the tenant's integration (a credential, or Telegram's console mode).
CONNECTED = ("sms", "slack", "telegram")
_NO_ADDRESS = {"telegram": "the contact has no telegram_chat_id", "slack": "no chat_id in the journey's context",
               "sms": "the contact has no phone number"}


class ChannelError(Exception):
    """The message could not be handed on; the message is recorded on the step execution."""


def chat_address(transport: str, contact, context: dict) -> str:
    if transport == "telegram":
        return contact.telegram_chat_id
    if transport == "slack":
        return str(context.get("chat_id") or "")
    return contact.phone


def chat_route(tenant_id, contact, context: dict, preferred: str) -> tuple[str, str, str]:
    """``(transport, address, note)`` for a chat step: the tenant's transport when the contact has an address
    there and it is connected, else the first of ``CHAT_FALLBACK`` that is (the note says why it fell back).
    Raises ``ChannelError`` naming what each transport lacked when none is."""
    lacking = []
    for transport in dict.fromkeys((preferred, *CHAT_FALLBACK) if preferred in CHAT_FALLBACK else CHAT_FALLBACK):
        address = chat_address(transport, contact, context or {})
        reason = _NO_ADDRESS[transport] if not address else channel_unavailable(tenant_id, transport)
        if not reason:
            note = f"sent over {transport} instead: {'; '.join(lacking)}" if lacking else ""
            return transport, address, note
        lacking.append(f"{transport}: {reason if not address else 'not configured (' + reason + ')'}")
    raise ChannelError(f"no chat address for {contact}: {'; '.join(lacking)}")


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
    if transport in ("slack", "telegram"):
        return {"text": body}
    return {"body": body}


def send(step_execution, channel: str, recipient: str, subject: str, body: str, context: dict) -> str:
    """Hand one step message to the outbox; returns its message id. Raises ``ChannelError`` when it cannot
    be handed on."""
    context = context or {}
    if not recipient:
        raise ChannelError(f"no recipient address for channel '{channel}'")
    transport = outbox_channel(channel, context)
    reason = channel_unavailable(step_execution.tenant_id, transport) if transport in CONNECTED else ""
    if reason:
        raise ChannelError(f"{channel} channel not configured: {reason}")
    try:
        message = outbox_enqueue(tenant=step_execution.tenant_id, channel=transport, target=recipient,
                                 payload=_payload(transport, subject, body, context),
                                 idempotency_key=idempotency_key(step_execution))
    except ValueError as exc:
        raise ChannelError(str(exc)) from None
    return str(message.message_id)


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
    S = CRMStepExecution.Status
    execution_id, step_order = parsed
    steps = CRMStepExecution.objects.for_tenant(message.tenant_id).filter(
        execution_id=execution_id, step_order=step_order, outbox_message_id=message.message_id)
    if status == "dead":
        updated = steps.filter(status=S.SENT).update(
            status=S.FAILED, error=f"delivery failed: {message.error}"[:2000], updated_at=timezone.now())
        if updated or steps.exists():  # not updated: a re-queued message died again (its step failed already)
            _tell_owner(message, execution_id)
        return updated
    if status == "delivered":  # a sent step keeps its note (e.g. the chat fallback it took)
        return steps.filter(status=S.FAILED).update(
            status=S.SENT, error="", updated_at=timezone.now())
    return 0


def _tell_owner(message, execution_id) -> list:
    execution = (CRMPlaybookExecution.objects.for_tenant(message.tenant_id).filter(pk=execution_id)
                 .select_related("playbook", "account", "contact").first())
    if execution is None:
        return []
    journey, account = execution.playbook, execution.account
    name = journey.title or journey.name
    return dead_delivery_task(
        tenant_id=message.tenant_id, account=account, key=f"journey:{journey.pk}",
        title=f"Delivery failed: journey '{name}' for {account.name}",
        description=f"A step of journey '{name}' for {execution.contact} did not get through: "
                    f"{dead_message_text(message)}")
