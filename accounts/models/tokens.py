"""API tokens (``Authorization: Token <key>``): hashed, expiring, revocable (issue 15).

The key is shown once, when it is issued (``accounts.tokens.api_token_issue``), and never stored: a row
keeps the key's first characters (``prefix``, not secret, to find the row) and its SHA-256 digest (to check
it, in constant time). A token is the user's, not a tenant's: the request's tenant still comes from the
user's memberships, so a member removed from a tenant is refused there whatever token they send.
"""

import hashlib
import hmac

from django.conf import settings
from django.db import models
from django.utils import timezone

PREFIX_LENGTH = 8


def key_digest(key: str) -> str:
    """What the database keeps of a key. Keys are random (256 bits), so a plain SHA-256 is enough: there
    is nothing to guess that a slow hash would protect."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="", help_text="What the token is for.")
    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True, editable=False,
                              help_text="The key's first characters: enough to recognise it, not to use it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    # Written at most once a minute (accounts.tokens.api_token_touch), not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})" if self.name else f"{self.prefix}…"

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(self.digest, key_digest(key))

    def state_at(self, now) -> str:
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return self.State.EXPIRED
        return self.State.ACTIVE

    @property
    def state(self) -> str:
        return self.state_at(timezone.now())
