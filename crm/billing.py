"""Billing events into journeys (seed 002's payment_failed / payment_succeeded from the billing system).

``billing_event_receive`` records one event per (tenant, source, external id) and raises crm's domain event
through the same path as ``manage.py crm_payment`` and the daily scan (``crm.triggers.emit_for``): the
journeys' managed rules (``crm.rules``) do the rest when the engine processes it:

* ``payment_failed`` -> ``payment_failed``: the rescue starts, for the named contact when there is one;
* ``payment_succeeded`` -> ``payment_succeeded``: the rescue's conversion rule converts the account's open
  rescues with ``amount``;
* ``trial_will_end`` -> ``trial_ending``: the trial-ending nudge starts.

The row is written first, in the caller's transaction: a redelivery (even a concurrent one, which waits on
the unique index) finds it and does nothing; an error later rolls the row back, so the sender's retry works.
The HTTP entry points are ``crm.api.billing`` (generic JSON) and ``crm.api.stripe`` (Stripe webhooks).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.models import Account, Contact

from . import triggers
from .models import BillingEvent, TriggerEvent
from .services import crm_journeys_ensure

Type = BillingEvent.Type
#: Which crm event each billing event raises.
RAISES = {Type.PAYMENT_FAILED: TriggerEvent.PAYMENT_FAILED.value, Type.PAYMENT_SUCCEEDED: triggers.PAYMENT_SUCCEEDED,
          Type.TRIAL_WILL_END: TriggerEvent.TRIAL_ENDING.value}


@dataclass
class Received:
    """What a billing system reported, in our terms (``account`` is the contact's when a contact is named)."""

    source: str
    external_id: str
    type: str
    source_type: str = ""
    account: Account | None = None
    contact: Contact | None = None
    customer_ref: str = ""
    amount: Decimal | None = None
    currency: str = ""
    occurred_at: datetime.datetime | None = None
    context: dict = field(default_factory=dict)  # extra data for the journey (invoice id, reason, trial end)


def contact_by_email(tenant, email: str) -> Contact | None:
    """The tenant's contact with this address (case-insensitive): the primary one first, then the oldest."""
    if not email:
        return None
    return (Contact.objects.for_tenant(tenant).select_related("account").filter(email__iexact=email.strip())
            .order_by("-is_primary", "created_at", "pk").first())


def known_customer(tenant, source: str, customer_ref: str) -> BillingEvent | None:
    """The latest earlier event of this billing customer that found its contact or account (Stripe's
    subscription events carry the customer id only)."""
    if not customer_ref:
        return None
    return (BillingEvent.objects.for_tenant(tenant).select_related("account", "contact")
            .filter(source=source, customer_ref=customer_ref).filter(Q(contact__isnull=False) | Q(account__isnull=False))
            .order_by("-received_at", "-pk").first())


def _context(received: Received, row: BillingEvent) -> dict:
    data = {"billing_event_id": row.pk, "source": received.source, "external_id": received.external_id,
            "contact_id": received.contact.pk if received.contact else None,
            "amount": received.amount, "currency": received.currency.upper() or None, **received.context}
    return {key: str(value) for key, value in data.items() if value not in (None, "")}


def billing_event_receive(tenant, received: Received) -> tuple[BillingEvent, bool]:
    """Record ``received`` for ``tenant`` and raise its crm event; returns (row, duplicate). A duplicate
    (same tenant, source and external id) changes nothing and returns the first delivery's row."""
    with transaction.atomic():
        if received.contact is not None:
            received.account = received.contact.account
        if received.account is not None and received.account.tenant_id != tenant.pk:
            raise ValueError("a billing event names an account of another tenant")  # callers look up in the tenant
        outcome = (BillingEvent.Outcome.IGNORED if received.type not in RAISES
                   else BillingEvent.Outcome.UNMATCHED if received.account is None else BillingEvent.Outcome.RAISED)
        row = BillingEvent(
            tenant_id=tenant.pk, source=received.source, external_id=received.external_id, type=received.type,
            source_type=received.source_type[:100], account=received.account, contact=received.contact,
            customer_ref=received.customer_ref[:255], amount=received.amount, currency=received.currency.upper()[:3],
            occurred_at=received.occurred_at, outcome=outcome)
        try:
            with transaction.atomic():  # a savepoint: the caller's transaction survives the duplicate
                row.save()
        except IntegrityError:
            first = BillingEvent.objects.for_tenant(tenant).get(source=received.source,
                                                                 external_id=received.external_id)
            return first, True
        if outcome != BillingEvent.Outcome.RAISED:
            return row, False
        if settings.CRM_DEFAULT_JOURNEYS:
            crm_journeys_ensure(tenant)  # a tenant from before crm gets its journeys and rules, as the daily scan does
        row.event = triggers.emit_for(RAISES[received.type], received.account, _context(received, row))
        if row.event is None:  # the tenant's journeys on this event are inactive
            row.outcome = BillingEvent.Outcome.NO_LISTENER
        row.save(update_fields=["event", "outcome"])
        return row, False
