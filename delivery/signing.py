"""Webhook signatures in the Standard Webhooks style (https://www.standardwebhooks.com/).

Every request carries ``webhook-id`` (the message id, the same on every retry), ``webhook-timestamp``
(Unix seconds of this attempt) and ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>``
of ``{id}.{timestamp}.{body}``, one per active secret of the tenant (several while rotating). The
HMAC key is the base64-decoded part of the ``whsec_…`` secret. ``verify`` is what a receiver does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Iterable

PREFIX = "whsec_"
TOLERANCE = 5 * 60


def key_of(secret: str) -> bytes:
    return base64.b64decode(secret[len(PREFIX):] if secret.startswith(PREFIX) else secret)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets: Iterable[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
    }


class InvalidSignature(ValueError):
    pass


def verify(secret: str, request_headers, body: bytes, *, tolerance: int = TOLERANCE, now: float | None = None) -> str:
    """Check a received webhook against one secret; returns its message id or raises InvalidSignature."""
    get = request_headers.get
    msg_id, stamp, sigs = get("webhook-id"), get("webhook-timestamp"), get("webhook-signature")
    if not (msg_id and stamp and sigs):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("bad webhook-timestamp") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance (replay?)")
    expected = signature(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in sigs.split(" ")):
        raise InvalidSignature("no signature matches")
    return msg_id
