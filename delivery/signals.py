"""Signals of the delivery layer, for apps that must react to how a message ended (automation never
imports them; they connect here).

``outbox_message_finished(sender=Outbox, message=<Outbox>, status="delivered" | "dead")`` is sent once
per final outcome of a message: after a successful attempt, after a permanent failure or the last
failed attempt, when the sweeper gives up on a message whose worker died, and again if a re-queued
message ends once more. It is sent inside the transaction that records the outcome (in a savepoint),
in the message's tenant context (the sweeper's in the system context): a receiver's writes commit with
the outcome or not at all. A receiver that raises is logged and its writes are rolled back; the outcome
is recorded regardless. Receivers must be quick and should filter on ``message.idempotency_key`` first
(the CRM's are ``crm:<execution>:<step>``).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import Signal

from .models import Outbox

log = logging.getLogger("delivery")

outbox_message_finished = Signal()


def send_finished(message) -> None:
    """Call the receivers of ``outbox_message_finished`` for ``message`` (in a savepoint)."""
    if not outbox_message_finished.has_listeners(Outbox):
        return
    try:
        with transaction.atomic():
            outbox_message_finished.send(sender=Outbox, message=message, status=message.status)
    except Exception:
        log.exception("a receiver of outbox_message_finished failed for %s (%s); its writes were rolled back",
                      message.message_id, message.status)


def send_finished_many(messages: list) -> None:
    """``send_finished`` for several messages of one tenant: all in one savepoint, and only if a receiver
    raises, again one savepoint per message (so only the failing receiver's writes are rolled back, as
    with ``send_finished``; the others' writes were rolled back with the shared savepoint and are redone)."""
    if len(messages) <= 1 or not outbox_message_finished.has_listeners(Outbox):
        for message in messages:
            send_finished(message)
        return
    try:
        with transaction.atomic():
            for message in messages:
                outbox_message_finished.send(sender=Outbox, message=message, status=message.status)
        return
    except Exception:
        pass  # the per-message pass below names the failing message in the log
    for message in messages:
        send_finished(message)
