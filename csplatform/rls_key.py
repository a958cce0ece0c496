"""The key that signs a database session's row-level-security scope (``csplatform.rls``).

The policies trust ``app.tenant_ids`` / ``app.bypass_rls`` / ``app.user_id`` only when ``app.rls_sig``
is their HMAC-SHA256, bound to the session's backend pid. The key lives in the application's
settings and, for the database, in a table the runtime role cannot read; so code that can run SQL
as the application role (an injection, a stolen connection) cannot widen its own scope with
``SET app.bypass_rls = 'on'``, nor replay another connection's signature.

The database computes the HMAC with the builtin ``sha256()`` from the key's two padded forms
(RFC 2104: ``H(K ^ opad || H(K ^ ipad || m))``), so no extension is needed.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

BLOCK = 64  # SHA-256's block size, in bytes


def signing_key() -> bytes:
    """``RLS_SIGNING_KEY`` if set, else one derived from ``SECRET_KEY`` (so every process of one
    deployment agrees without another variable to keep in sync)."""
    configured = getattr(settings, "RLS_SIGNING_KEY", "")
    if configured:
        return configured.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"csplatform.rls.v1", hashlib.sha256).digest()


def pads(key: bytes) -> tuple[bytes, bytes]:
    """(K ^ ipad, K ^ opad), as HMAC defines them; the database stores these, never the key itself."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def scope_message(backend_pid: int, tenant_ids: str, bypass: str, user_id: str) -> bytes:
    return f"{backend_pid}|{tenant_ids}|{bypass}|{user_id}".encode()


def sign(backend_pid: int, tenant_ids: str, bypass: str, user_id: str) -> str:
    return hmac.new(signing_key(), scope_message(backend_pid, tenant_ids, bypass, user_id), hashlib.sha256).hexdigest()
