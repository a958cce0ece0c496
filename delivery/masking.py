"""How outgoing messages are shown to people (admin, API): secret-looking headers and keys hidden."""

from __future__ import annotations

import re

from accounts.audit import mask_secrets

MASK = "***"
# Header names whose values are credentials: Authorization, X-Api-Key, Cookie, X-Webhook-Token, ...
SECRET_HEADER = re.compile(r"auth|token|secret|passw|key|signature|cookie|session|credential", re.IGNORECASE)


def masked_headers(headers) -> dict:
    """``headers`` with the value of every secret-looking header replaced by ``***``."""
    if not isinstance(headers, dict):
        return {}
    return {name: MASK if SECRET_HEADER.search(str(name)) and value not in (None, "") else value
            for name, value in headers.items()}


def masked_payload(payload):
    """An outbox payload as shown to people: nested ``headers`` (an email's) masked like the message's own,
    and values under secret-looking keys hidden."""
    if isinstance(payload, dict):
        shown = mask_secrets(payload)
        if isinstance(payload.get("headers"), dict):
            shown["headers"] = masked_headers(payload["headers"])
        return shown
    return payload
