"""The events crm produces for its journeys: payment events and the daily scan.

A journey starts when the automation engine processes one of these events and its managed rule
(``crm.rules``) matches: the Run records why it started, or why not. Here they are only raised, through
automation's ``emit()`` (written only when a live rule of the tenant listens, handed to a worker on commit):

* ``payment_failed(account, amount=, invoice_id=, reason=)`` -> ``payment_failed`` (the rescue);
  ``payment_succeeded(account, amount=, invoice_id=)`` -> ``payment_succeeded`` (the rescue's conversion rule
  converts the account's open rescues: ``crm_rescue_recovered_total``);
* daily (``daily_scan``, once per tenant and day): ``trial_ending`` for trial accounts whose trial ends within
  3 days (the account's ``renewal_date`` is its trial end) and ``inactivity`` for live accounts with usage
  data but no login (``UsageMetric.logins``) for 14 days; each one queryset per tenant, not a loop over
  accounts. Accounts whose contacts are in the event's journeys, or may not enter them again yet (re-entry
  rule), are left out in the same queryset, so a daily scan does not pile up refused runs.

The accounts' own domain changes (status churned/cancelled, risk level becoming at risk, goal achieved) need
nothing from crm: automation turns them into events, and the journeys' rules match them.
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from accounts.models import Account, Tenant, UsageMetric
from automation.events import emit
from automation.models import Event
from csplatform.tenancy import system_context, tenant_context

from .models import CRMPlaybook, CRMPlaybookExecution, CRMSettings, TriggerEvent
from .services import crm_journeys_ensure, crm_settings_for

log = logging.getLogger("crm.triggers")

TRIAL_ENDING_DAYS = 3
INACTIVITY_DAYS = 14
PAYMENT_SUCCEEDED = "payment_succeeded"


def emit_for(event: str, account: Account, context: dict | None = None) -> Event | None:
    """Raise ``event`` for ``account`` (payload: the account's id and ``context``) in the account's tenant; None
    when no live rule of the tenant listens (e.g. the journeys listening to it are inactive)."""
    with tenant_context(account.tenant):
        return _emit(event, account, context)


def _emit(event: str, account: Account, context: dict | None) -> Event | None:
    return emit(tenant_id=account.tenant_id, type=event, object_id=account.pk, account=account,
                payload=lambda: {"account_id": str(account.pk), **(context or {})})


# --- payment events -----------------------------------------------------------------------------

def _present(**values) -> dict:
    return {key: str(value) for key, value in values.items() if value not in (None, "")}


def payment_failed(account: Account, *, amount=None, invoice_id: str = "", reason: str = "") -> Event | None:
    """A payment of ``account`` failed: the ``payment_failed`` event (its journeys' rules start the rescue)."""
    return emit_for(TriggerEvent.PAYMENT_FAILED, account, _present(amount=amount, invoice_id=invoice_id, reason=reason))


def payment_succeeded(account: Account, *, amount=None, invoice_id: str = "") -> Event | None:
    """A payment of ``account`` succeeded: the ``payment_succeeded`` event (the rescues' conversion rules
    convert the account's open rescues with ``amount``)."""
    return emit_for(PAYMENT_SUCCEEDED, account, _present(amount=amount, invoice_id=invoice_id))


# --- the daily scan -----------------------------------------------------------------------------

def trial_ending_accounts(tenant, today: datetime.date):
    return Account.objects.for_tenant(tenant).filter(
        status=Account.Status.TRIAL, renewal_date__gt=today,
        renewal_date__lte=today + datetime.timedelta(days=TRIAL_ENDING_DAYS))


def inactive_accounts(tenant, today: datetime.date):
    """Live accounts whose last login (a usage row with logins > 0) is 14 days old or more; accounts
    without any usage data are left alone (no telemetry is not inactivity)."""
    cutoff = today - datetime.timedelta(days=INACTIVITY_DAYS)
    recent_login = UsageMetric.objects.filter(account=OuterRef("pk"), date__gt=cutoff, logins__gt=0)
    return (Account.objects.for_tenant(tenant)
            .filter(status__in=[Account.Status.ACTIVE, Account.Status.AT_RISK, Account.Status.TRIAL])
            .filter(Exists(UsageMetric.objects.filter(account=OuterRef("pk"))))
            .filter(~Exists(recent_login))
            .annotate(last_login=Max("usage_metrics__date", filter=Q(usage_metrics__logins__gt=0))))


def _refused_by(journey: CRMPlaybook, now) -> Q:
    """Accounts whose contacts ``journey`` would turn away now: in it, inside its re-entry cooldown, or at its
    maximum of entries."""
    executions = CRMPlaybookExecution.objects.filter(account=OuterRef("pk"), playbook=journey)
    busy = Q(status=CRMPlaybookExecution.Status.ACTIVE)
    if journey.reentry_cooldown_hours:
        busy |= Q(started_at__gte=now - datetime.timedelta(hours=journey.reentry_cooldown_hours))
    refused = Q(Exists(executions.filter(busy)))
    if journey.max_entries:
        full = executions.values("contact").annotate(entries=Count("pk")).filter(entries__gte=journey.max_entries)
        refused |= Q(Exists(full))
    return refused


def scan_candidates(accounts, tenant, event: str, now):
    """``accounts`` less those every active journey listening to ``event`` would refuse (one query in all)."""
    journeys = list(CRMPlaybook.objects.for_tenant(tenant).filter(trigger_event=event, active=True))
    if not journeys:
        return accounts.none()
    # dropped only when every journey refuses it
    return accounts.exclude(Q(*[_refused_by(journey, now) for journey in journeys]))


def scan_tenant(tenant: Tenant, now: datetime.datetime | None = None) -> dict:
    """Raise the trial-ending and inactivity events of one tenant for its current day; returns how many of
    each were raised (each becomes a Run of the listening journeys' rules)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    counts = {TriggerEvent.TRIAL_ENDING.value: 0, TriggerEvent.INACTIVITY.value: 0}
    with tenant_context(tenant):
        if settings.CRM_DEFAULT_JOURNEYS:
            crm_journeys_ensure(tenant)
        for event, accounts in ((TriggerEvent.TRIAL_ENDING, trial_ending_accounts(tenant, today)),
                                (TriggerEvent.INACTIVITY, inactive_accounts(tenant, today))):
            for account in scan_candidates(accounts, tenant, event, now):
                if event == TriggerEvent.TRIAL_ENDING:
                    context = {"trial_ends_on": account.renewal_date.isoformat()}
                else:
                    context = {"last_login": account.last_login.isoformat() if account.last_login else None}
                if _emit(event, account, context) is not None:  # already in the tenant's context
                    counts[event] += 1
    return counts


def daily_scan(now: datetime.datetime | None = None, *, force: bool = False) -> dict:
    """Run ``scan_tenant`` once per tenant and day (``CRMSettings.last_daily_scan`` under a row lock),
    so it may be called every minute by ``tick`` and still scans each tenant once a day."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    with system_context("crm: list tenants for the daily trigger scan"):
        tenants = list(Tenant.objects.exclude(pk__in=CRMSettings.objects.filter(last_daily_scan__gte=today)
                                              .values("tenant_id")) if not force else Tenant.objects.all())
    done = {}
    for tenant in tenants:
        with tenant_context(tenant), transaction.atomic():
            settings_row = crm_settings_for(tenant)
            row = CRMSettings.objects.for_tenant(tenant).select_for_update(skip_locked=True).filter(
                pk=settings_row.pk).first()
            if row is None or (not force and row.last_daily_scan is not None and row.last_daily_scan >= today):
                continue  # another worker is scanning it, or it was scanned today
            done[tenant.slug] = scan_tenant(tenant, now)
            row.last_daily_scan = today
            row.save(update_fields=["last_daily_scan", "updated_at"])
    return done
