"""Issuing, finding, and revoking API tokens (``accounts.ApiToken``, docs/security.md "API tokens")."""

from __future__ import annotations

import datetime
import logging
import secrets

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import ApiToken
from .models.tokens import PREFIX_LENGTH, key_digest

log = logging.getLogger(__name__)

KEY_BYTES = 32  # 43 URL-safe characters
MAX_KEY_LENGTH = 128  # longer is no key of ours: refused before hashing
TOUCH_EVERY = datetime.timedelta(minutes=1)
DEFAULT_TTL = object()  # ``ttl`` not given: settings.API_TOKEN_TTL


def api_token_issue(*, user, name: str = "", ttl: datetime.timedelta | None | object = DEFAULT_TTL,
                    ) -> tuple[ApiToken, str]:
    """A new token for ``user`` and its key, which is returned here once and stored nowhere. ``ttl``: how long
    it lasts (default ``API_TOKEN_TTL``); ``None``: it never expires (operators only: ``issue_api_token``)."""
    if ttl is DEFAULT_TTL:
        ttl = settings.API_TOKEN_TTL
    if ttl is not None and ttl <= datetime.timedelta(0):
        raise ValueError("an API token's lifetime must be positive")
    key = secrets.token_urlsafe(KEY_BYTES)
    now = timezone.now()
    _make_room(user, now)
    token = ApiToken.objects.create(
        user=user, name=name[: ApiToken._meta.get_field("name").max_length], prefix=key[:PREFIX_LENGTH],
        digest=key_digest(key), created_at=now, expires_at=now + ttl if ttl is not None else None,
    )
    log.info("API token %s issued to user %s (%s), expires %s", token.prefix, user.pk, name or "unnamed",
             token.expires_at or "never")
    return token, key


def api_token_find(key: str) -> ApiToken | None:
    """The token with this key (revoked and expired ones too), with its user; ``None`` if there is none.
    Rows are found by the key's prefix and checked by digest in constant time, never looked up by digest."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    found = None
    for token in ApiToken.objects.select_related("user").filter(prefix=key[:PREFIX_LENGTH]):
        if token.matches(key):
            found = token
    return found


def api_token_touch(token: ApiToken) -> None:
    """Record that the token was used, at most once a minute. The write happens after the request's
    transaction commits, so it holds no lock while the request runs (a request that fails is rolled back
    and does not count as a use)."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < TOUCH_EVERY:
        return

    def touch():
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_EVERY)
        ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)

    transaction.on_commit(touch, robust=True)


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke one token at once; ``False`` if it already was. The row stays (the list shows it as revoked)."""
    now = timezone.now()
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now) == 1
    if revoked:
        token.revoked_at = now
        log.info("API token %s of user %s revoked", token.prefix, token.user_id)
    return revoked


def api_token_revoke_all(*, user) -> int:
    """Revoke every token of ``user`` that is not revoked yet; how many were."""
    count = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    log.info("%d API tokens of user %s revoked", count, user.pk)
    return count


def _make_room(user, now) -> None:
    """Keep a user below ``API_TOKEN_MAX_PER_USER`` live tokens by revoking the least recently used (never
    used first, then the oldest), as GitHub does: a script that logs in on every run without revoking cannot
    grow the table for ever, and a client that uses its token keeps it."""
    live = ApiToken.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), user=user,
                                   revoked_at__isnull=True)
    surplus = live.count() - settings.API_TOKEN_MAX_PER_USER + 1
    if surplus <= 0:
        return
    oldest = live.order_by(F("last_used_at").asc(nulls_first=True), "created_at").values_list("pk", flat=True)
    revoked = ApiToken.objects.filter(pk__in=list(oldest[:surplus])).update(revoked_at=now)
    log.info("%d least recently used API tokens of user %s revoked: more than %d live", revoked, user.pk,
             settings.API_TOKEN_MAX_PER_USER)


def api_token_purge(*, now: datetime.datetime | None = None) -> int:
    """Delete tokens revoked or expired more than ``API_TOKEN_KEEP_DAYS`` ago (the list shows dead tokens
    until then); how many. Run with the history purge (``purge_history``)."""
    cutoff = (now or timezone.now()) - datetime.timedelta(days=settings.API_TOKEN_KEEP_DAYS)
    deleted, _ = ApiToken.objects.filter(Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff)).delete()
    if deleted:
        log.info("%d API tokens dead for more than %d days deleted", deleted, settings.API_TOKEN_KEEP_DAYS)
    return deleted
