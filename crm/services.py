"""Writes and rules of the CRM journeys: defaults per tenant, starting, converting and cancelling.

How journeys start (their managed automation rules) is ``crm.rules``; the events crm produces itself
(payment events, the daily scan) are ``crm.triggers``; the step scheduler is ``crm.scheduler``; discount
codes ``crm.discounts``; sending ``crm.channels``.
"""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account, Contact, Tenant
from automation.events import emit, json_safe
from csplatform.celery import task_named

from .journeys import DEFAULT_JOURNEYS
from .models import CRMPlaybook, CRMPlaybookExecution, CRMSettings, CRMStep, CRMStepExecution
from .rules import journey_rules_sync, rules_missing

log = logging.getLogger("crm")

ExecStatus = CRMPlaybookExecution.Status
StepStatus = CRMStepExecution.Status


class JourneyRefused(Exception):
    """A journey was not started. ``reason``: inactive, already_active, reentry_cooldown, max_entries,
    no_steps, no_contact, wrong_tenant. ``execution`` is the active one for already_active."""

    def __init__(self, reason: str, message: str, execution: CRMPlaybookExecution | None = None):
        super().__init__(message)
        self.reason, self.message, self.execution = reason, message, execution


class ConversionError(Exception):
    """The execution cannot be converted or cancelled in its current state."""


# --- tenant settings and default journeys -------------------------------------------------------

def crm_settings_for(tenant) -> CRMSettings:
    tenant_id = getattr(tenant, "pk", tenant)
    row = CRMSettings.objects.for_tenant(tenant_id).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return CRMSettings.objects.create(tenant_id=tenant_id)
    except IntegrityError:  # created concurrently
        return CRMSettings.objects.for_tenant(tenant_id).get()


def crm_journeys_ensure(tenant) -> list[CRMPlaybook]:
    """Create the default journeys (``crm.journeys``) the tenant does not have yet, with their managed rules
    (``crm.rules``, written when a journey is saved); never touch existing journeys (a tenant's edits win),
    but give any journey that lacks a rule it should keep its rule. Idempotent and safe under concurrency.
    Returns the journeys created."""
    tenant_id = getattr(tenant, "pk", tenant)
    journeys = list(CRMPlaybook.objects.for_tenant(tenant_id).only(
        "pk", "tenant_id", "name", "trigger_event", "workflow_id", "conversion_workflow_id"))
    for journey in journeys:
        if rules_missing(journey):  # a journey from before crm kept rules, or a rule deleted by hand
            journey_rules_sync(journey)
    have = {journey.name for journey in journeys}
    tenant_field = {"tenant": tenant} if isinstance(tenant, Tenant) else {"tenant_id": tenant_id}
    created = []
    for spec in DEFAULT_JOURNEYS:
        if spec["name"] in have:
            continue
        fields = {k: v for k, v in spec.items() if k != "steps"}
        try:
            with transaction.atomic():
                playbook = CRMPlaybook.objects.create(**tenant_field, **fields)
                CRMStep.objects.bulk_create([
                    CRMStep(tenant_id=tenant_id, playbook=playbook, order=order,
                            **{**step, "delay_hours": Decimal(str(step.get("delay_hours", 0)))})
                    for order, step in enumerate(spec["steps"])
                ])
        except IntegrityError:  # another process created it meanwhile
            continue
        created.append(playbook)
    return created


# --- contacts -----------------------------------------------------------------------------------

def recipient_contact(account: Account) -> Contact | None:
    """The account's primary contact, else its first contact (oldest)."""
    return (Contact.objects.for_tenant(account.tenant_id).filter(account=account)
            .order_by("-is_primary", "created_at", "pk").first())


def playbook_get(tenant, key) -> CRMPlaybook | None:
    """A journey of ``tenant`` by id or name; the defaults are created on first use."""
    if isinstance(key, CRMPlaybook):
        return key
    tenant_id = getattr(tenant, "pk", tenant)
    playbooks = CRMPlaybook.objects.for_tenant(tenant_id)
    found = None
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        found = playbooks.filter(pk=int(key)).first()
    if found is None and isinstance(key, str):
        found = playbooks.filter(name=key).first()
        if found is None and crm_journeys_ensure(tenant_id):
            found = playbooks.filter(name=key).first()
    return found


# --- starting -----------------------------------------------------------------------------------

def schedule_step(execution: CRMPlaybookExecution, step: CRMStep) -> CRMStepExecution:
    """The step execution row of the step that runs next, ``scheduled`` at ``execution.next_step_at``
    (so the API shows what comes when, and cancelling has a pending step to cancel)."""
    row, created = CRMStepExecution.objects.get_or_create(
        execution=execution, step_order=step.order,
        defaults={"tenant_id": execution.tenant_id, "step": step, "channel": step.channel,
                  "scheduled_for": execution.next_step_at})
    if not created and row.status == StepStatus.SCHEDULED and row.scheduled_for != execution.next_step_at:
        row.scheduled_for = execution.next_step_at
        row.save(update_fields=["scheduled_for", "updated_at"])
    return row


def start_journey(contact: Contact, playbook: CRMPlaybook | str, context: dict | None = None, *,
                  now: datetime.datetime | None = None, source: str = CRMPlaybookExecution.Source.TRIGGER,
                  started_by=None, ignore_inactive: bool = False, start_step: int = 1,
                  delay_hours: float | None = None) -> CRMPlaybookExecution:
    """Start ``playbook`` (a journey or its name) for ``contact``; raises ``JourneyRefused``.

    At most one active execution per contact and journey: the partial unique constraint decides under
    concurrency (the loser gets ``already_active`` with the winner's execution). The re-entry rule
    (``reentry_cooldown_hours``, ``max_entries``) is checked against the contact's earlier executions.
    The first step is due ``delay_hours`` after ``now``; when it is due at once a worker is asked to run
    it right after commit, so "at once" does not wait for the next scheduler tick. Seed 003's options:
    ``start_step`` (1-based position in the journey's steps; the earlier ones are skipped) and
    ``delay_hours`` (the first step run waits that long instead of its own delay). A ``start_step`` beyond
    the journey's last step is refused (``no_steps``).
    """
    now = now or timezone.now()
    tenant_id = contact.tenant_id
    journey = playbook_get(tenant_id, playbook)
    if journey is None:
        raise JourneyRefused("not_found", f"Journey '{playbook}' does not exist.")
    if journey.tenant_id != tenant_id:
        raise JourneyRefused("wrong_tenant", "The journey and the contact belong to different tenants.")
    if not journey.active and not ignore_inactive:
        raise JourneyRefused("inactive", f"Journey '{journey.name}' is not active.")
    steps = CRMStep.objects.for_tenant(tenant_id).filter(playbook=journey).order_by("order")
    first = next(iter(steps[start_step - 1:start_step]), None)
    if first is None:
        raise JourneyRefused("no_steps", f"Journey '{journey.name}' has no step {start_step}." if start_step > 1
                             else f"Journey '{journey.name}' has no steps.")
    earlier = CRMPlaybookExecution.objects.for_tenant(tenant_id).filter(playbook=journey, contact=contact)
    # One read, so the checks below see one consistent set of the contact's earlier entries.
    history = list(earlier.order_by("-started_at", "-pk").only("pk", "status", "started_at"))
    active = next((e for e in history if e.status == ExecStatus.ACTIVE), None)
    if active is not None:
        raise JourneyRefused("already_active", f"{contact} is already in journey '{journey.name}'.", active)
    if journey.max_entries and len(history) >= journey.max_entries:
        raise JourneyRefused("max_entries", f"{contact} has entered journey '{journey.name}' "
                                            f"{journey.max_entries} time(s), the most it allows.")
    if journey.reentry_cooldown_hours and history:
        last = history[0].started_at
        if now < last + datetime.timedelta(hours=journey.reentry_cooldown_hours):
            raise JourneyRefused("reentry_cooldown", f"{contact} entered journey '{journey.name}' at "
                                                     f"{last.isoformat()}; re-entry is allowed "
                                                     f"{journey.reentry_cooldown_hours} hours after that.")
    execution = CRMPlaybookExecution(
        tenant_id=tenant_id, playbook=journey, contact=contact, account_id=contact.account_id,
        status=ExecStatus.ACTIVE, current_step=first.order,
        next_step_at=now + datetime.timedelta(hours=float(first.delay_hours if delay_hours is None else delay_hours)),
        context=json_safe(context or {}), source=source, started_by=started_by, started_at=now,
    )
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction survives a lost race
            execution.save()
    except IntegrityError:
        winner = earlier.filter(status=ExecStatus.ACTIVE).first()
        raise JourneyRefused("already_active", f"{contact} is already in journey '{journey.name}'.", winner) from None
    schedule_step(execution, first)
    _emit(execution, "crm_journey_started")
    if execution.next_step_at <= timezone.now():
        transaction.on_commit(lambda: _kick(execution))
    log.info("crm journey %s started for contact %s (execution %s, source %s)",
             journey.name, contact.pk, execution.pk, source)
    return execution


def _kick(execution: CRMPlaybookExecution) -> None:
    """Run a just-started execution's first step now instead of at the next tick (best effort: the
    periodic scheduler picks it up anyway if this fails)."""
    try:
        # By name: the tasks module imports the scheduler, which imports this one.
        task_named("crm.tasks.run_execution_steps").delay(str(execution.tenant_id), execution.pk)
    except Exception:
        log.exception("could not run the first step of crm execution %s now; the scheduler will", execution.pk)


def _emit(execution: CRMPlaybookExecution, event_type: str, extra: dict | None = None) -> None:
    """Tell the automation engine (rules may listen to crm_journey_started / crm_journey_converted)."""
    emit(tenant_id=execution.tenant_id, type=event_type, object_id=execution.account_id,
         account=execution.account, payload=lambda: {
             "journey": execution.playbook.name, "execution_id": execution.pk, "contact_id": execution.contact_id,
             "status": execution.status, **(extra or {})})


# --- converting and cancelling ------------------------------------------------------------------

def _parse_value(value) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({"value": "must be a number"}) from None
    if not result.is_finite() or result < 0:
        raise ValidationError({"value": "must be a number >= 0"})
    if result >= Decimal("1e12"):
        raise ValidationError({"value": "is too large"})
    return result.quantize(Decimal("0.01"))


def _cancel_pending_steps(execution: CRMPlaybookExecution, reason: str) -> int:
    return CRMStepExecution.objects.for_tenant(execution.tenant_id).filter(
        execution=execution, status__in=CRMStepExecution.PENDING_STATUSES,
    ).update(status=StepStatus.CANCELLED, error=reason, updated_at=timezone.now())


@transaction.atomic
def execution_convert(*, execution: CRMPlaybookExecution, value=None, now: datetime.datetime | None = None,
                      reason: str = "") -> CRMPlaybookExecution:
    """Record a conversion: the journey stops (no further step is sent) and keeps the value.

    An active or already completed execution converts (a payment after the last step still counts);
    a converted, cancelled or failed one is refused with ``ConversionError``."""
    now = now or timezone.now()
    amount = _parse_value(value)
    row = (CRMPlaybookExecution.objects.for_tenant(execution.tenant_id).select_for_update(of=("self",))
           .select_related("playbook", "account").get(pk=execution.pk))
    if row.status not in (ExecStatus.ACTIVE, ExecStatus.COMPLETED):
        raise ConversionError(f"execution {row.pk} is {row.status} and cannot be converted")
    row.status, row.converted_at, row.conversion_value = ExecStatus.CONVERTED, now, amount
    row.next_step_at = None
    row.completed_at = row.completed_at or now
    if reason:
        row.context = {**(row.context or {}), "conversion_reason": reason}
    row.save()
    _cancel_pending_steps(row, "journey converted")
    _emit(row, "crm_journey_converted", {"conversion_value": float(amount) if amount is not None else None})
    for name in ("status", "converted_at", "conversion_value", "next_step_at", "completed_at", "context"):
        setattr(execution, name, getattr(row, name))
    return row


@transaction.atomic
def execution_cancel(*, execution: CRMPlaybookExecution, now: datetime.datetime | None = None,
                     reason: str = "cancelled") -> CRMPlaybookExecution:
    """Stop an active journey; its pending (scheduled or deferred) steps are cancelled."""
    now = now or timezone.now()
    row = (CRMPlaybookExecution.objects.for_tenant(execution.tenant_id).select_for_update(of=("self",))
           .get(pk=execution.pk))
    if row.status != ExecStatus.ACTIVE:
        raise ConversionError(f"execution {row.pk} is {row.status}; only active executions can be cancelled")
    row.status, row.cancelled_at, row.next_step_at = ExecStatus.CANCELLED, now, None
    row.error = reason if reason != "cancelled" else row.error
    row.save()
    _cancel_pending_steps(row, reason)
    for name in ("status", "cancelled_at", "next_step_at"):
        setattr(execution, name, getattr(row, name))
    return row


CONVERT_WITHIN = datetime.timedelta(days=30)


def journey_convert_open(*, journey: CRMPlaybook, account: Account, value=None, reason: str = "",
                         now: datetime.datetime | None = None) -> list[CRMPlaybookExecution]:
    """Convert ``account``'s open executions of ``journey`` with ``value``: the active ones, and the ones
    completed in the last 30 days (a payment after the owner's call still counts). Returns those converted."""
    now = now or timezone.now()
    converted = []
    for execution in CRMPlaybookExecution.objects.for_tenant(account.tenant_id).filter(
            account=account, playbook=journey).filter(
            Q(status=ExecStatus.ACTIVE) | Q(status=ExecStatus.COMPLETED, completed_at__gte=now - CONVERT_WITHIN)):
        try:
            converted.append(execution_convert(execution=execution, value=value, now=now, reason=reason))
        except ConversionError:  # converted or cancelled meanwhile
            continue
    return converted
