"""The outbox: enqueue in the caller's transaction, claim with SKIP LOCKED, send, record, retry, sweep.

Life of a message::

    pending --claim--> sending --2xx--> delivered
       ^                  |----retryable failure, attempts left--> failed --(next_attempt_at)--> claim again
       |                  |----permanent failure / no attempts left--> dead --outbox_requeue--> pending
       |                  '----worker killed (claimed_at older than the timeout)--> failed (sweeper)

* ``outbox_enqueue`` writes the row in the caller's transaction and hands its id to celery in
  ``transaction.on_commit``: a rolled-back run leaves no message and sends nothing.
* ``claim`` (system context, one short transaction) takes a small batch of due rows with
  ``SELECT … FOR UPDATE SKIP LOCKED``, marks them ``sending``, counts the attempt and stamps a claim
  token; several workers share the queue without ever taking the same row.
* Each message is then sent outside any lock or transaction, in its tenant's context, and the result
  recorded only if the row still carries the same claim token (a message the sweeper took back from a
  worker presumed dead is not overwritten by that worker when it wakes up).
* ``reclaim_stuck`` puts rows left in ``sending`` longer than ``OUTBOX_SENDING_TIMEOUT`` back in the
  queue. Delivery is therefore at least once: receivers de-duplicate on ``webhook-id``.
* Webhook endpoint health (``health.py``): a target that failed everything for 5 days is disabled and
  its messages go straight to dead; the final outcome of every message is announced with the
  ``signals.outbox_message_finished`` signal (the CRM listens to it).
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Tenant
from csplatform.celery import task_named
from csplatform.conflicts import StateConflict
from csplatform.tenancy import system_context, tenant_context

from . import handover, health, retry, secrets
from .models import EmailTemplate, Outbox, WebhookEndpoint
from .outcomes import outcome_fields, write_outcomes
from .signals import send_finished, send_finished_many
from .transports import Result, transports

log = logging.getLogger("delivery")
S = Outbox.Status
# Task names predate the delivery app: beat schedules and queued tasks stored under them keep working. The
# services hand work to them by name (the tasks module imports this one).
DELIVER_MESSAGES_TASK = "automation.delivery.deliver_messages"
DELIVER_OUTBOX_TASK = "automation.delivery.deliver_outbox"
DUE = (S.PENDING, S.FAILED)
#: Messages per hand-over task: a transaction that wrote more queues one task per this many.
DISPATCH_CHUNK = 50

# --- enqueue ------------------------------------------------------------------------------------

def outbox_enqueue(*, tenant, channel: str, target: str, payload, method: str = "POST", headers: dict | None = None,
                   idempotency_key: str | None = None, run_id=None, retry_policy: tuple[dict, int] | None = None,
                   deliver_at=None, dispatch: bool = True, email_template=None, variant: str | None = None,
                   key_is_new: bool = False, defer: Callable[[Outbox], None] | None = None) -> Outbox:
    """Write one message in the current transaction (idempotent on ``idempotency_key`` per tenant) and,
    unless ``dispatch`` is false, hand it to a worker when the transaction commits; returns the message
    (the existing one for a known key). ``key_is_new`` says no message can have this key yet (a rule's
    keys name their run), which saves the savepoint; with ``defer`` such a message is handed to it instead
    of being inserted (the engine's batch gives it an id now and inserts it with its run). ``run_id`` is
    the automation run that wrote it: delivery keeps it as a plain id.

    An email records the template it was rendered from (``email_template``, or the template named by
    ``payload["template"]``) and its A/B variant (``variant``, or ``payload["variant"]``) for
    ``email.email_variant_report``."""
    if channel not in Outbox.Channel.values:
        raise ValueError(f"unknown channel '{channel}'")
    tenant_id = getattr(tenant, "pk", tenant)
    if channel == Outbox.Channel.EMAIL and isinstance(payload, dict):
        variant = payload.get("variant") or "" if variant is None else variant
        if email_template is None and payload.get("template"):
            email_template = EmailTemplate.objects.for_tenant(tenant_id).filter(name=payload["template"]).first()
    policy, max_attempts = retry_policy or retry.policy_for()
    key = idempotency_key or f"auto:{uuid.uuid4().hex}"
    message = Outbox(tenant_id=tenant_id, channel=channel, target=target, method=(method or "POST").upper(),
                     headers=headers or {}, payload=payload, idempotency_key=key, retry_policy=policy,
                     max_attempts=max_attempts, next_attempt_at=deliver_at or timezone.now(), run_id=run_id,
                     email_template=email_template, variant=(variant or "")[:32])
    if key_is_new and defer is not None:
        defer(message)  # an id now, the row when the engine's batch ends
    else:
        # A savepoint only where a duplicate key is possible: it must not break the caller's transaction.
        try:
            with nullcontext() if key_is_new or idempotency_key is None else transaction.atomic():
                message.save(force_insert=True)
        except IntegrityError:
            existing = Outbox.objects.for_tenant(tenant_id).filter(idempotency_key=key).first()
            if existing is None:
                raise
            return existing
    if dispatch and message.next_attempt_at <= timezone.now():
        dispatch_on_commit([message.pk])
    return message


def dispatch_on_commit(ids: list[int]) -> None:
    """Hand these ids to a worker when the transaction commits, together with the others of the same
    transaction (``handover``)."""
    handover.on_commit_collected(list(ids), dispatch)


def dispatch(ids: list[int]) -> None:
    """Hand message ids to celery, one task per ``DISPATCH_CHUNK``. A broker outage only delays them: the
    periodic pass picks them up."""
    for start in range(0, len(ids), DISPATCH_CHUNK):
        chunk = ids[start:start + DISPATCH_CHUNK]
        try:
            task_named(DELIVER_MESSAGES_TASK).delay(chunk)
        except Exception:
            log.exception("could not hand outbox messages %s to celery; the periodic pass will deliver them", chunk)


# --- claim, send, record ------------------------------------------------------------------------

def _no_flush_wait() -> None:
    """Commit the current transaction without waiting for the WAL flush (``OUTBOX_ASYNC_COMMIT``). A
    database crash may then forget the last claims or results (well under a second of them): those
    messages are pending or sending again and are sent again, at least once, never lost."""
    if settings.OUTBOX_ASYNC_COMMIT and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def claim(*, ids=None, limit: int | None = None, now=None) -> list[Outbox]:
    """Take up to ``limit`` due messages (only ``ids`` if given) for this worker: ``sending``, attempt
    counted, claim token set. Rows locked by another claimer are skipped, never waited for."""
    now = now or timezone.now()
    limit = limit or settings.OUTBOX_BATCH_SIZE
    token = uuid.uuid4()
    with system_context("outbox: claim due messages"), transaction.atomic():
        _no_flush_wait()
        qs = (Outbox.objects.select_for_update(skip_locked=True)
              .filter(status__in=DUE, next_attempt_at__lte=now).order_by("next_attempt_at", "id"))
        if ids is not None:
            qs = qs.filter(pk__in=list(ids))
        rows = list(qs[:limit])
        if not rows:
            return []
        claimed_at = timezone.now()
        Outbox.objects.filter(pk__in=[r.pk for r in rows]).update(
            status=S.SENDING, claimed_at=claimed_at, claim_token=token, attempts=F("attempts") + 1,
            last_attempt_at=claimed_at, updated_at=claimed_at)
    for row in rows:
        row.status, row.claimed_at, row.claim_token, row.attempts = S.SENDING, claimed_at, token, row.attempts + 1
        row.last_attempt_at = claimed_at
    return rows


def release(rows: list[Outbox]) -> None:
    """Give claimed but unsent rows back (a worker out of time budget): the attempt is not counted."""
    with system_context("outbox: release unsent claims"):
        for row in rows:
            Outbox.objects.filter(pk=row.pk, status=S.SENDING, claim_token=row.claim_token).update(
                status=S.PENDING if row.attempts <= 1 else S.FAILED, attempts=F("attempts") - 1, claim_token=None,
                updated_at=timezone.now())


def send(message: Outbox) -> Result:
    transport = transports.get(message.channel)
    if transport is None:
        return Result(False, error=f"no transport for channel '{message.channel}'", permanent=True)
    try:
        return transport.send(message)
    except Exception as exc:  # a bug or an unexpected error in a transport: retried, and logged
        log.exception("transport %s failed on message %s", message.channel, message.message_id)
        return Result(False, error=f"{type(exc).__name__}: {exc}")


def record(message: Outbox, result: Result, *, clock=None) -> str:
    """Write the outcome of one attempt; returns the new status ('' if the claim was lost meanwhile)."""
    return record_many([(message, result)], clock=clock)[0]


def record_many(attempts: list[tuple[Outbox, Result]], *, clock=None, tenants: dict | None = None) -> list[str]:
    """Write the outcomes of a batch of attempts in one transaction and one statement; returns each one's
    new status ('' where the claim was lost meanwhile: the sweeper took the row back). Final outcomes
    (delivered, dead) are announced with ``outbox_message_finished`` in that transaction, in each
    message's tenant context. ``clock`` (the pass's frozen ``now``, if later than the real time) is what
    a next attempt counts from; ``tenants`` maps tenant ids to tenants already loaded."""
    now = timezone.now()
    retry_base = max(now, clock) if clock is not None else now
    outcomes = [(message, outcome_fields(message, result, now=now, retry_base=retry_base))
                for message, result in attempts]
    finished: dict = {}
    with system_context("outbox: record a batch's results"), transaction.atomic():
        _no_flush_wait()
        written = write_outcomes(outcomes)
        for message, fields in outcomes:
            if message.pk in written:
                for name, value in fields.items():
                    setattr(message, name, value)
                if message.status in (S.DELIVERED, S.DEAD):
                    finished.setdefault(message.tenant_id, []).append(message)
        tenants = _tenants_of(finished, tenants or {})
        for tenant_id, messages in finished.items():
            with tenant_context(tenants[tenant_id]):
                send_finished_many(messages)
    statuses = []
    for (message, result), (_, fields) in zip(attempts, outcomes):
        if message.pk not in written:
            log.warning("outbox message %s was taken back by the sweeper before its result (%s) was recorded",
                        message.message_id, "ok" if result.ok else result.error)
        statuses.append(fields["status"] if message.pk in written else "")
    return statuses


def _tenants_of(tenant_ids, known: dict) -> dict:
    """``known`` plus the tenants of ``tenant_ids`` it lacks (one query; call it in the system context)."""
    missing = set(tenant_ids) - known.keys()
    if missing:
        known.update(Tenant.objects.in_bulk(list(missing)))
    return known


@dataclass
class DeliveryStats:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0
    reclaimed: int = 0
    statuses: dict = field(default_factory=dict)

    def count(self, status: str) -> None:
        if status == S.DELIVERED:
            self.delivered += 1
        elif status == S.FAILED:
            self.failed += 1
        elif status == S.DEAD:
            self.dead += 1

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("claimed", "delivered", "failed", "dead", "released", "reclaimed")}


def deliver(*, ids=None, limit: int | None = None, now=None, budget: float | None = None,
            batch_size: int | None = None) -> DeliveryStats:
    """Claim and send due messages batch after batch until none is due, ``limit`` were claimed, or the
    ``budget`` (seconds) is spent; with ``ids`` one batch of those messages only. Each batch is one claim,
    the sends, and one write of all its results."""
    stats = DeliveryStats()
    started = time.monotonic()
    tenants: dict = {}
    while True:
        want = len(ids) if ids is not None else batch_size or settings.OUTBOX_BATCH_SIZE
        if limit is not None:
            want = min(want, limit - stats.claimed)
            if want <= 0:
                break
        rows = claim(ids=ids, limit=want, now=now)
        if not rows:
            break
        stats.claimed += len(rows)
        with system_context("outbox: what a batch needs"):
            _tenants_of({r.tenant_id for r in rows}, tenants)
            secrets.prefetch(rows)
            endpoints = health.EndpointCache(rows)
        attempts = _send_batch(rows, tenants, endpoints, now=now,
                               out_of_time=lambda: budget is not None and time.monotonic() - started > budget)
        for (message, _), status in zip(attempts, record_many(attempts, clock=now, tenants=tenants)):
            stats.count(status)
            if status == S.FAILED:
                schedule_retry(message)
        if len(attempts) < len(rows):
            sent = {message.pk for message, _ in attempts}
            unsent = [r for r in rows if r.pk not in sent]
            release(unsent)
            stats.released += len(unsent)
            return stats
        if ids is not None:
            break
    return stats


def _send_batch(rows: list[Outbox], tenants: dict, endpoints: health.EndpointCache, *, now,
                out_of_time: Callable[[], bool]) -> list[tuple[Outbox, Result]]:
    """Send a claimed batch (no transaction open), one tenant context per tenant, messages in claim order,
    until ``out_of_time()``; returns the (message, result) of each attempt made."""
    by_tenant: dict = {}
    for message in rows:
        by_tenant.setdefault(message.tenant_id, []).append(message)
    attempts = []
    for tenant_id, messages in by_tenant.items():
        with tenant_context(tenants[tenant_id]):
            for message in messages:
                if out_of_time():
                    return attempts
                result = health.blocked(message, endpoints)
                if result is None:
                    result = send(message)
                    health.observe(message, result, endpoints, now=now)
                attempts.append((message, result))
    return attempts


def schedule_retry(message: Outbox) -> None:
    """A retry due soon also gets a celery countdown, so a 5 s retry does not wait for the next pass."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    delay = (message.next_attempt_at - timezone.now()).total_seconds()
    if delay <= settings.OUTBOX_SHORT_RETRY:
        try:
            task_named(DELIVER_MESSAGES_TASK).apply_async(([message.pk],), countdown=max(0.0, delay) + 0.05)
        except Exception:
            log.warning("could not schedule the retry of %s; the periodic pass will", message.message_id)


def reclaim_stuck(*, now=None, timeout: float | None = None) -> int:
    """Messages left ``sending`` longer than the timeout (their worker died): back in the queue, or dead
    when they have no attempt left. Their outcome is unknown, so they may be delivered twice."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT if timeout is None else timeout)
    with system_context("outbox: re-claim messages stuck in sending"), transaction.atomic():
        stuck = Outbox.objects.filter(status=S.SENDING, claimed_at__lt=cutoff)
        given_up = list(stuck.filter(attempts__gte=F("max_attempts")).select_for_update())
        error = "the worker was lost mid-send and no attempt is left (outcome unknown)"
        dead = Outbox.objects.filter(pk__in=[r.pk for r in given_up]).update(
            status=S.DEAD, claim_token=None, updated_at=now, error=error)
        for row in given_up:
            row.status, row.claim_token, row.error = S.DEAD, None, error
            send_finished(row)
        back = stuck.filter(attempts__lt=F("max_attempts")).update(
            status=S.FAILED, claim_token=None, next_attempt_at=now, updated_at=now,
            error="the worker was lost mid-send; sending again")
    if dead or back:
        log.warning("outbox sweeper: %d messages back in the queue, %d dead", back, dead)
    return dead + back


def deliver_outbox_pass(*, now=None, budget: float | None = None, limit: int | None = None) -> dict:
    """One pass of the periodic work: re-claim stuck messages, then deliver everything due."""
    reclaimed = reclaim_stuck(now=now)
    stats = deliver(now=now, budget=budget, limit=limit)
    stats.reclaimed = reclaimed
    return stats.as_dict()


# --- re-queue -----------------------------------------------------------------------------------

def outbox_requeue(message: Outbox) -> Outbox:
    """Put a dead (or failed) message back in the queue with a fresh set of attempts; the message id
    stays the same, so a receiver that got it before can still de-duplicate."""
    with transaction.atomic():
        row = Outbox.objects.for_tenant(message.tenant_id).select_for_update().get(pk=message.pk)
        if row.status not in (S.DEAD, S.FAILED):
            raise StateConflict({"status": f"only dead or failed messages can be re-queued; this one is {row.status}"})
        row.status, row.attempts, row.next_attempt_at = S.PENDING, 0, timezone.now()
        row.error, row.claim_token = "", None
        row.save(update_fields=["status", "attempts", "next_attempt_at", "error", "claim_token", "updated_at"])
        dispatch_on_commit([row.pk])
    return row


def webhook_endpoint_enable(tenant, url: str, *, requeue_dead: bool = False) -> WebhookEndpoint | None:
    """Turn a disabled endpoint back on (its failing streak starts afresh); with ``requeue_dead`` also
    re-queue the messages to it that died because it was disabled. Returns the endpoint (None if the
    URL never failed)."""
    tenant_id = getattr(tenant, "pk", tenant)
    with transaction.atomic():
        endpoint = (WebhookEndpoint.objects.for_tenant(tenant_id).select_for_update()
                    .filter(url_hash=health.url_hash(url)).first())
        if endpoint is None:
            return None
        endpoint.disabled_at, endpoint.disabled_reason = None, ""
        endpoint.failing_since, endpoint.failures = None, 0
        endpoint.save(update_fields=["disabled_at", "disabled_reason", "failing_since", "failures", "updated_at"])
        if requeue_dead:
            for message in (Outbox.objects.for_tenant(tenant_id)
                            .filter(channel=Outbox.Channel.WEBHOOK, target=url, status=Outbox.Status.DEAD,
                                    error__startswith=health.DISABLED_ERROR)):
                outbox_requeue(message)
    return endpoint
