"""Daily evaluate-all for every tenant, at the tenant's ``PlaybookSchedule.evaluate_at`` (default 06:00) in
the tenant's timezone, once per local day.

Beat runs ``playbooks.tasks.evaluate_due_tenants_task`` every five minutes (and ``tick`` runs the same
function for cron users); it only looks for tenants that are due. A tenant is claimed for its local day
with one conditional UPDATE of ``last_run_on`` inside the transaction that evaluates it, so two beat
ticks or workers cannot both evaluate it, and a failed evaluation rolls the claim back (the next tick
retries). A tick that comes late (beat down at 06:00) still evaluates that day.
"""

from __future__ import annotations

import datetime
import logging
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Tenant
from csplatform.tenancy import system_context, tenant_context

from .models import PlaybookExecution, PlaybookSchedule, PlaybookTrigger
from .services import playbook_triggers_evaluate_all

log = logging.getLogger("playbooks.scheduling")


def local_now(tenant, now: datetime.datetime) -> datetime.datetime:
    try:
        zone = ZoneInfo(tenant.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return now.astimezone(zone)


def is_due(schedule, tenant, now: datetime.datetime) -> bool:
    local = local_now(tenant, now)
    return schedule.enabled and local.time() >= schedule.evaluate_at and (
        schedule.last_run_on is None or schedule.last_run_on < local.date())


def evaluate_due_tenants(now: datetime.datetime | None = None) -> dict:
    """Evaluate every tenant whose daily time has come and that was not evaluated today (local date)."""
    now = now or timezone.now()
    with system_context("playbooks: list tenants due for the daily evaluation"):
        enabled = set(PlaybookTrigger.objects.filter(auto_trigger_enabled=True).values_list("tenant_id", flat=True))
        tenants = list(Tenant.objects.filter(pk__in=enabled))
        schedules = {s.tenant_id: s for s in PlaybookSchedule.objects.filter(tenant_id__in=enabled)}
    done, failed = [], {}
    for tenant in tenants:
        schedule = schedules.get(tenant.pk) or PlaybookSchedule(tenant=tenant)
        if not is_due(schedule, tenant, now):
            continue
        today = local_now(tenant, now).date()
        try:
            with tenant_context(tenant), transaction.atomic():
                if schedule.pk is None:
                    PlaybookSchedule.objects.get_or_create(tenant=tenant)
                claimed = PlaybookSchedule.objects.for_tenant(tenant).filter(enabled=True).filter(
                    Q(last_run_on__isnull=True) | Q(last_run_on__lt=today)).update(last_run_on=today)
                if not claimed:
                    continue  # another worker has it
                outcome = playbook_triggers_evaluate_all(tenant=tenant, source=PlaybookExecution.Source.SCHEDULE,
                                                         now=now)
            done.append({"tenant": tenant.slug, "triggered": outcome["total_triggered"],
                         "evaluated": outcome["total_triggers_evaluated"]})
        except Exception as exc:  # one tenant failing does not stop the others; its claim is rolled back
            log.exception("daily playbook evaluation of tenant %s failed", tenant.slug)
            failed[tenant.slug] = f"{type(exc).__name__}: {exc}"
    return {"evaluated": done, "failed": failed}
