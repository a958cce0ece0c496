"""Webhook endpoint health: disable a target that has failed everything for 5 days, and say so.

An endpoint is one webhook target of a tenant: its exact URL. ``WebhookEndpoint`` rows appear with the
first failed attempt (a healthy endpoint costs no row and no write):

* every failed attempt of a webhook message (any error: HTTP status, timeout, connection, signature
  rejected) extends the endpoint's failing streak (``failing_since`` = first failure since the last
  success, ``failures``, ``last_error``); any 2xx ends it;
* when an attempt fails and the streak began ``WEBHOOK_DISABLE_AFTER_DAYS`` (5) days ago or more, the
  endpoint is disabled (one conditional UPDATE, so exactly one worker does it) and every Tenant Admin
  of the tenant gets a high-priority ``accounts.Task`` saying which URL, since when, the last error and
  how to re-enable it: once per disabling;
* a message to a disabled endpoint is not sent: it goes straight to ``dead`` with the error
  ``DISABLED_ERROR`` (no HTTP request);
* ``services.webhook_endpoint_enable(tenant, url)`` turns it back on (streak reset) and, with
  ``requeue_dead=True``, re-queues the messages that died because it was disabled.

The batch's endpoints are read with one query per batch (``EndpointCache``); the clock is the
delivery pass's ``now`` so tests can freeze it.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Membership, Role, Task
from csplatform.tenancy import system_context

from .models import Outbox, WebhookEndpoint
from .transports import Result

log = logging.getLogger("delivery")
DISABLED_ERROR = "endpoint disabled"
TASK_SOURCE = "delivery: webhook endpoint health"


def disable_after() -> timedelta:
    return timedelta(days=float(settings.WEBHOOK_DISABLE_AFTER_DAYS))


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


class EndpointCache:
    """The failing or disabled endpoints of one batch of messages, read with one query and kept up to
    date by ``observe`` (so a message later in the same batch sees an endpoint disabled by an earlier one)."""

    def __init__(self, rows=()):
        self.found: dict[tuple, WebhookEndpoint] = {}
        hooks = [r for r in rows if r.channel == Outbox.Channel.WEBHOOK]
        if not hooks:
            return
        hashes = {url_hash(r.target) for r in hooks}
        with system_context("outbox: webhook endpoint health of a batch"):
            for endpoint in WebhookEndpoint.objects.filter(tenant_id__in={r.tenant_id for r in hooks},
                                                            url_hash__in=hashes):
                self.found[(endpoint.tenant_id, endpoint.url_hash)] = endpoint

    def get(self, message) -> WebhookEndpoint | None:
        return self.found.get((message.tenant_id, url_hash(message.target)))


def blocked(message, cache: EndpointCache) -> Result | None:
    """The result of a message to a disabled endpoint (dead at once), or None to send it."""
    if message.channel != Outbox.Channel.WEBHOOK:
        return None
    endpoint = cache.get(message)
    if endpoint is None or endpoint.disabled_at is None:
        return None
    return Result(False, error=(
        f"{DISABLED_ERROR}: {message.target} has been disabled since {endpoint.disabled_at:%Y-%m-%d %H:%M} UTC "
        f"({endpoint.disabled_reason}); nothing was sent. Re-enable it with "
        f"delivery.services.webhook_endpoint_enable, then re-queue this message"), permanent=True)


def observe(message, result: Result, cache: EndpointCache, *, now=None) -> None:
    """Count one attempt's outcome against the message's endpoint (webhooks only)."""
    if message.channel != Outbox.Channel.WEBHOOK:
        return
    now = now or timezone.now()
    endpoint = cache.get(message)
    if result.ok:
        if endpoint is not None and endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
                failing_since=None, failures=0, last_success_at=now, updated_at=timezone.now())
            endpoint.failing_since, endpoint.failures, endpoint.last_success_at = None, 0, now
        return
    digest = url_hash(message.target)
    error = (result.error or "failed")[:1000]
    with transaction.atomic():
        if endpoint is None:
            try:
                with transaction.atomic():
                    endpoint = WebhookEndpoint.objects.create(
                        tenant_id=message.tenant_id, url=message.target, url_hash=digest, failing_since=now)
            except IntegrityError:  # another worker created it meanwhile
                endpoint = WebhookEndpoint.objects.for_tenant(message.tenant_id).get(url_hash=digest)
        qs = WebhookEndpoint.objects.filter(pk=endpoint.pk)
        qs.update(failures=F("failures") + 1, last_failure_at=now, last_error=error,
                  failing_since=Coalesce("failing_since", Value(now)), updated_at=timezone.now())
        cutoff = now - disable_after()
        reason = f"every attempt failed for {disable_after().days} days; last error: {error[:200]}"
        disabled = qs.filter(disabled_at__isnull=True, failing_since__lte=cutoff).update(
            disabled_at=now, disabled_reason=reason)
        endpoint.refresh_from_db()
        if disabled:
            _notify_admins(endpoint, now)
    cache.found[(endpoint.tenant_id, endpoint.url_hash)] = endpoint
    if disabled:
        log.warning("webhook endpoint %s of tenant %s disabled: %s", endpoint.url, endpoint.tenant_id, reason)


def _notify_admins(endpoint: WebhookEndpoint, now) -> list:
    """One high-priority task per Tenant Admin (in the transaction that disabled the endpoint)."""
    host = urlsplit(endpoint.url).hostname or endpoint.url[:60]
    description = (
        f"Webhooks to {endpoint.url} have all failed since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC "
        f"({endpoint.failures} failed attempts; last error: {endpoint.last_error[:300]}). The endpoint was "
        f"disabled on {endpoint.disabled_at:%Y-%m-%d %H:%M} UTC: messages to it are no longer sent and end as "
        f"dead. Fix the receiver, then re-enable the endpoint (delivery.services."
        f"webhook_endpoint_enable(tenant, url, requeue_dead=True) re-enables it and re-queues the messages "
        f"that died meanwhile).")
    admins = list(Membership.objects.filter(tenant_id=endpoint.tenant_id, role=Role.TENANT_ADMIN)
                  .values_list("user_id", flat=True))
    if not admins:
        log.warning("webhook endpoint %s disabled but tenant %s has no admin to tell", endpoint.url, endpoint.tenant_id)
    return [Task.objects.create(tenant_id=endpoint.tenant_id, assignee_id=user_id,
                                title=f"Webhook endpoint disabled: {host}"[:255], description=description,
                                priority=Task.Priority.HIGH, due_date=timezone.localdate(now), source=TASK_SOURCE)
            for user_id in admins]


def webhook_endpoint_get(tenant, url: str) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.for_tenant(getattr(tenant, "pk", tenant)).filter(url_hash=url_hash(url)).first()
