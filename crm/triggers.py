"""What starts a journey: the accounts' domain signals, payment events and the daily scan.

A trigger starts every *active* journey of the tenant whose ``trigger_event`` is the event (the
defaults: one each), for the account's recipient contact (primary, else first). Each also goes
through automation's ``emit()`` so rules can react to the same event (``event`` trigger).

* ``status_changed`` to churned / cancelled -> ``cancellation`` (winback; its first step waits 24 h)
* ``health_score_recorded`` whose risk level *becomes* at_risk / critical -> ``churn_risk``
* ``goal_status_changed`` to achieved -> ``milestone``
* ``payment_failed(account)`` -> ``payment_failed`` (rescue); ``payment_succeeded(account)`` converts
  the account's open rescue (``crm_rescue_recovered_total``)
* daily (``daily_scan``): ``trial_ending`` for trial accounts whose trial ends within 3 days
  (the account's ``renewal_date`` is its trial end) and ``inactivity`` for accounts without a login for
  14 days (``UsageMetric.logins``); each one queryset per tenant, not a loop over accounts.

A trigger never breaks the change that caused it: a refused start (already active, re-entry rule) is
logged, an error is logged and swallowed inside a savepoint.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from accounts.models import Account, Contact, RiskLevel, Tenant, UsageMetric
from csplatform.tenancy import system_context, tenant_context

from .models import CRMPlaybook, CRMPlaybookExecution, CRMSettings, TriggerEvent
from .services import (
    ConversionError, JourneyRefused, crm_journeys_ensure, crm_settings_for, execution_convert, recipient_contact,
    start_journey,
)

log = logging.getLogger("crm.triggers")

RISKY = (RiskLevel.AT_RISK, RiskLevel.CRITICAL)
CANCELLED = (Account.Status.CHURNED, Account.Status.CANCELLED)
TRIAL_ENDING_DAYS = 3
INACTIVITY_DAYS = 14


@dataclass
class TriggerResult:
    started: list = field(default_factory=list)
    refused: dict = field(default_factory=dict)  # journey name -> reason

    def as_dict(self) -> dict:
        return {"started": [e.pk for e in self.started], "refused": self.refused}


def _playbooks_for(tenant_id, event: str) -> list[CRMPlaybook]:
    playbooks = list(CRMPlaybook.objects.for_tenant(tenant_id).filter(trigger_event=event, active=True))
    if not playbooks and crm_journeys_ensure(tenant_id):
        playbooks = list(CRMPlaybook.objects.for_tenant(tenant_id).filter(trigger_event=event, active=True))
    return playbooks


def fire(event: str, account: Account, *, contact: Contact | None = None, context: dict | None = None,
         now: datetime.datetime | None = None, emit_event: bool = True) -> TriggerResult:
    """Start the journeys listening to ``event`` for ``account`` (its recipient contact unless given)."""
    result = TriggerResult()
    tenant = account.tenant
    with tenant_context(tenant):
        if emit_event:
            _emit(event, account, context)
        contact = contact or recipient_contact(account)
        if contact is None:
            log.info("crm %s for account %s: no contact to reach, no journey started", event, account.pk)
            result.refused["*"] = "no_contact"
            return result
        for playbook in _playbooks_for(account.tenant_id, event):
            try:
                result.started.append(start_journey(contact, playbook, {"trigger": event, **(context or {})}, now=now))
            except JourneyRefused as refused:
                log.info("crm %s: journey %s not started for contact %s: %s", event, playbook.name, contact.pk,
                         refused.message)
                result.refused[playbook.name] = refused.reason
    return result


def _emit(event: str, account: Account, context: dict | None) -> None:
    from automation.events import emit

    emit(tenant_id=account.tenant_id, type=event, object_id=account.pk, account=account,
         payload=lambda: {"account_id": str(account.pk), **(context or {})})


def _safely(event: str, account: Account, **kwargs) -> None:
    """For signal receivers: the account change must commit even if the journey cannot start."""
    try:
        with transaction.atomic():
            fire(event, account, **kwargs)
    except Exception:
        log.exception("crm trigger %s failed for account %s (the change itself is kept)", event, account.pk)


# --- signal receivers (connected in crm.signals) ------------------------------------------------

def on_status_changed(account: Account, from_status, to_status, created: bool) -> None:
    if created or to_status not in CANCELLED or from_status in CANCELLED:
        return
    _safely(TriggerEvent.CANCELLATION, account, context={"from_status": from_status, "to_status": to_status})


def on_health_score_recorded(score, previous) -> None:
    if score.risk_level not in RISKY or (previous is not None and previous.risk_level in RISKY):
        return
    account = Account.objects.for_tenant(score.tenant_id).select_related("tenant").get(pk=score.account_id)
    if account.risk_level != score.risk_level:  # a backdated score is history, not a change of risk
        return
    _safely(TriggerEvent.CHURN_RISK, account, context={
        "risk_level": score.risk_level, "health_score": float(score.overall_score),
        "previous_score": float(previous.overall_score) if previous is not None else None})


def on_goal_status_changed(goal, from_status, to_status, created: bool) -> None:
    if to_status != "achieved" or from_status == "achieved":
        return
    _safely(TriggerEvent.MILESTONE, goal.account, context={
        "goal_id": goal.pk, "goal_title": goal.title, "goal_type": goal.goal_type})


# --- payment events -----------------------------------------------------------------------------

def payment_failed(account: Account, *, amount=None, invoice_id: str = "", reason: str = "",
                   now: datetime.datetime | None = None) -> TriggerResult:
    """A payment of ``account`` failed: start the rescue journey."""
    context = {"amount": str(amount) if amount is not None else None, "invoice_id": invoice_id, "reason": reason}
    return fire(TriggerEvent.PAYMENT_FAILED, account, context={k: v for k, v in context.items() if v}, now=now)


def payment_succeeded(account: Account, *, amount=None, invoice_id: str = "",
                      now: datetime.datetime | None = None) -> list[CRMPlaybookExecution]:
    """A payment of ``account`` succeeded: every open rescue of its contacts converts with ``amount``
    (active, or completed in the last 30 days: a payment after the owner's call still counts)."""
    now = now or timezone.now()
    converted = []
    with tenant_context(account.tenant):
        _emit("payment_succeeded", account, {"amount": str(amount) if amount is not None else None})
        rescues = CRMPlaybookExecution.objects.for_tenant(account.tenant_id).filter(
            account=account, playbook__trigger_event=TriggerEvent.PAYMENT_FAILED).filter(
            Q(status=CRMPlaybookExecution.Status.ACTIVE)
            | Q(status=CRMPlaybookExecution.Status.COMPLETED, completed_at__gte=now - datetime.timedelta(days=30)))
        for execution in rescues:
            try:
                converted.append(execution_convert(execution=execution, value=amount, now=now,
                                                   reason=f"payment succeeded {invoice_id}".strip()))
            except ConversionError:
                continue
    return converted


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


def _without_open_execution(accounts, tenant, event: str, now):
    """Drop accounts whose contacts are in (or, by the re-entry rule, recently left) the event's journeys:
    one subquery instead of a refused start per account."""
    playbooks = CRMPlaybook.objects.for_tenant(tenant).filter(trigger_event=event, active=True)
    cooldown = max([p.reentry_cooldown_hours for p in playbooks] or [0])
    recent = CRMPlaybookExecution.objects.filter(account=OuterRef("pk"), playbook__in=playbooks).filter(
        Q(status=CRMPlaybookExecution.Status.ACTIVE) | Q(started_at__gte=now - datetime.timedelta(hours=cooldown)))
    return accounts.filter(~Exists(recent))


def scan_tenant(tenant: Tenant, now: datetime.datetime | None = None) -> dict:
    """Trial-ending and inactivity triggers of one tenant, for the tenant's current day."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    counts = {"trial_ending": 0, "inactivity": 0}
    with tenant_context(tenant):
        crm_journeys_ensure(tenant)
        for event, accounts in ((TriggerEvent.TRIAL_ENDING, trial_ending_accounts(tenant, today)),
                                (TriggerEvent.INACTIVITY, inactive_accounts(tenant, today))):
            for account in _without_open_execution(accounts, tenant, event, now).select_related("tenant"):
                context = {}
                if event == TriggerEvent.TRIAL_ENDING:
                    context["trial_ends_on"] = account.renewal_date.isoformat()
                else:
                    context["last_login"] = account.last_login.isoformat() if account.last_login else None
                try:
                    with transaction.atomic():
                        counts[event] += len(fire(event, account, context=context, now=now).started)
                except Exception:  # one broken account must not stop the scan of the others
                    log.exception("crm daily scan: %s failed for account %s", event, account.pk)
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
