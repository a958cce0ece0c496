"""The tenants' webhook signing secrets: created on demand, rotated with an overlap, prefetched per batch."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record, audit_snapshot
from csplatform.tenancy import system_context

from .models import Outbox, WebhookSecret


def prefetch(rows: list[Outbox]) -> None:
    """One query for the signing secrets of a batch's webhooks (instead of one per message)."""
    tenant_ids = {r.tenant_id for r in rows if r.channel == Outbox.Channel.WEBHOOK}
    if not tenant_ids:
        return
    now = timezone.now()
    found: dict = {t: [] for t in tenant_ids}
    with system_context("outbox: signing secrets of a batch"):
        for tenant_id, secret in (WebhookSecret.objects.filter(tenant_id__in=tenant_ids)
                                  .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
                                  .order_by("-created_at", "-id").values_list("tenant_id", "secret")):
            found[tenant_id].append(secret)
    for row in rows:
        if found.get(row.tenant_id):
            row.signing_secrets = found[row.tenant_id]


def active_webhook_secrets(tenant_id) -> list[str]:
    """The secrets that sign the tenant's webhooks now (newest first); the first is created on demand."""
    now = timezone.now()
    secrets = list(WebhookSecret.objects.for_tenant(tenant_id).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
                   .order_by("-created_at", "-id").values_list("secret", flat=True))
    if not secrets:
        secrets = [WebhookSecret.objects.create(tenant_id=tenant_id).secret]
    return secrets


def webhook_secret_rotate(tenant, *, overlap: timedelta = timedelta(hours=24), actor=None) -> WebhookSecret:
    """A new secret; the current ones keep signing (alongside it) for ``overlap``, then expire. The new
    secret and the old ones' expiry go to the audit trail with ``actor``."""
    tenant_id = getattr(tenant, "pk", tenant)
    now = timezone.now()
    secrets = WebhookSecret.objects.for_tenant(tenant_id)
    with transaction.atomic():
        before = {row.pk: (row, audit_snapshot(row)) for row in secrets.select_for_update()}
        secrets.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now + overlap)).update(expires_at=now + overlap)
        new = WebhookSecret.objects.create(tenant_id=tenant_id)
        audit_record(tenant=tenant_id, actor=actor, action="create", obj=new, object_repr=f"webhook secret {new.fingerprint}",
                     after=audit_snapshot(new))
        for row in secrets.filter(pk__in=list(before)):
            old, snapshot = before[row.pk]
            audit_record(tenant=tenant_id, actor=actor, action="update", obj=row, object_repr=f"webhook secret {row.fingerprint}",
                         before=snapshot, after=audit_snapshot(row))
    return new
