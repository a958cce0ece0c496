"""Stripe-format webhooks: the ``Stripe-Signature`` check and what a Stripe event means for the journeys.

The signature is Stripe's scheme, checked by hand (no stripe library): ``t=<unix time>,v1=<hex>[,v1=<hex>...]``
where each ``v1`` is HMAC-SHA256 of ``"{t}.{raw body}"`` keyed with the endpoint's signing secret (the whole
``whsec_...`` string). Any ``v1`` may match (Stripe sends one per secret while a secret is rolled), compared in
constant time; ``t`` must lie within the endpoint's tolerance (300 s by default) of now, either way.

Events: ``invoice.payment_failed`` -> payment_failed, ``invoice.payment_succeeded`` -> payment_succeeded
(``amount_paid`` in the currency's minor unit -> a decimal), ``customer.subscription.trial_will_end`` ->
trial_will_end; any other type is recorded as ``other`` and ignored. Who it is about, first found wins:
``data.object.metadata.contact_id``, ``metadata.account_id``, ``data.object.customer_email`` (a contact of the
tenant with that address), then the contact or account an earlier event of the same ``customer`` (``cus_...``)
found.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import secrets
import time
from decimal import Decimal

from accounts.models import Account, Contact
from csplatform.tenancy import system_context

from .billing import Received, contact_by_email, known_customer
from .models import BillingEvent, StripeWebhookEndpoint

HEADER = "Stripe-Signature"
TYPES = {
    "invoice.payment_failed": BillingEvent.Type.PAYMENT_FAILED,
    "invoice.payment_succeeded": BillingEvent.Type.PAYMENT_SUCCEEDED,
    "customer.subscription.trial_will_end": BillingEvent.Type.TRIAL_WILL_END,
}
# Stripe's zero-decimal currencies: their amounts are already in whole units.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
MAX_AMOUNT = Decimal("1e12")  # what BillingEvent.amount and a conversion value hold


class BadEvent(Exception):
    """The request is refused (400); ``field`` names what is wrong, e.g. ``Stripe-Signature`` or ``data.object``."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


def endpoint_for_token(token: str) -> StripeWebhookEndpoint | None:
    """The endpoint owning the URL ``token``, or None. The request knows no tenant yet, so the lookup runs in
    a system context (logged); anything that is not one of our tokens costs no query."""
    if not TOKEN.fullmatch(token):
        return None
    with system_context("stripe webhook: find the endpoint by its token"):
        return StripeWebhookEndpoint.objects.select_related("tenant").filter(token=token).first()


def new_signing_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The hex ``v1`` signature of ``body`` at ``timestamp`` (what Stripe sends; tests sign with it too)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(endpoint: StripeWebhookEndpoint, header: str, body: bytes, now: float | None = None) -> None:
    """Raise ``BadEvent`` unless ``header`` carries a fresh ``v1`` signature of ``body`` by the endpoint's secret."""
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and timestamp is None:
            timestamp = value
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        raise BadEvent(HEADER, "missing or malformed: expected t=<timestamp>,v1=<signature>")
    if abs((now if now is not None else time.time()) - int(timestamp)) > endpoint.tolerance_seconds:
        raise BadEvent(HEADER, f"the timestamp is more than {endpoint.tolerance_seconds} seconds from now")
    expected = sign(endpoint.signing_secret, body, int(timestamp)).encode()
    # Every candidate is compared (no early exit), so timing says nothing about which one came close.
    if not sum(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures):
        raise BadEvent(HEADER, "no signature matches the endpoint's signing secret")


def _minor_to_decimal(amount, currency: str, name: str) -> Decimal | None:
    if amount is None:
        return None
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise BadEvent(name, "must be a whole number >= 0 in the currency's minor unit")
    value = Decimal(amount) if currency.lower() in ZERO_DECIMAL else (Decimal(amount) / 100).quantize(Decimal("0.01"))
    if value >= MAX_AMOUNT:
        raise BadEvent(name, "is too large")
    return value


def _timestamp(value, name: str) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadEvent(name, "must be a Unix timestamp")
    return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)


def _by_id(model, tenant, value):
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return model.objects.for_tenant(tenant).filter(pk=int(value)).first()
    return None


def _whom(tenant, obj: dict, customer: str) -> tuple[Account | None, Contact | None]:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    contact = _by_id(Contact, tenant, metadata.get("contact_id"))
    if contact is not None:
        return contact.account, contact
    account = _by_id(Account, tenant, metadata.get("account_id"))
    if account is not None:
        return account, None
    email = obj.get("customer_email")
    contact = contact_by_email(tenant, email) if isinstance(email, str) else None
    if contact is not None:
        return contact.account, contact
    earlier = known_customer(tenant, BillingEvent.Source.STRIPE, customer)
    return (earlier.account, earlier.contact) if earlier else (None, None)


def translate(tenant, event: dict) -> Received:
    """A Stripe event (the parsed body) as a ``Received`` billing event of ``tenant``; ``BadEvent`` names the
    field when the body is not a Stripe event."""
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise BadEvent("id", "must be the Stripe event id (a string)")
    if not isinstance(event_type, str) or not event_type:
        raise BadEvent("type", "must be the Stripe event type (a string)")
    kind = TYPES.get(event_type, BillingEvent.Type.OTHER)
    received = Received(source=BillingEvent.Source.STRIPE, external_id=event_id, type=kind, source_type=event_type,
                        occurred_at=_timestamp(event.get("created"), "created"))
    if kind == BillingEvent.Type.OTHER:
        return received  # acknowledged; its contents are none of our business
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise BadEvent("data.object", "must be an object")
    customer = obj.get("customer") if isinstance(obj.get("customer"), str) else ""
    received.account, received.contact = _whom(tenant, obj, customer)
    received.customer_ref = customer
    received.currency = obj.get("currency") if isinstance(obj.get("currency"), str) else ""
    if kind == BillingEvent.Type.TRIAL_WILL_END:
        trial_end = _timestamp(obj.get("trial_end"), "data.object.trial_end")
        received.context = {"subscription_id": obj.get("id"),
                            "trial_ends_on": trial_end.date().isoformat() if trial_end else None}
        return received
    amount_key = "amount_paid" if kind == BillingEvent.Type.PAYMENT_SUCCEEDED else "amount_due"
    received.amount = _minor_to_decimal(obj.get(amount_key), received.currency, f"data.object.{amount_key}")
    received.context = {"invoice_id": obj.get("id") if isinstance(obj.get("id"), str) else None}
    return received
