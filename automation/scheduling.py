"""Time-driven work: the event sweeper, scheduled and time-based rules, and the due-work list of ``tick``.

Services here are what celery beat's periodic tasks (``automation/periodic.py``), the cron commands
(``tick``, ``run_scheduled_rules``, ``sweep_events``) and the embedded loop (``tick --loop``) all call.
Every entry point enters its own tenancy context: ``system_context`` only to list what is pending
across tenants, then ``tenant_context`` tenant by tenant for the work itself.

Slots. A scheduled rule (``daily``/``weekly``/``monthly`` at ``time`` in ``timezone``) or a time-based
rule (every ``check_every``) fires once per slot: the slot's ``ScheduledSlot`` row (unique on rule and
slot) is inserted in the same transaction as the slot's runs, while the rule's row is locked. A second
beat tick or worker waits for the lock, then fails to insert the claim and skips; a worker that dies
mid-slot leaves no claim, so the next tick fires the whole slot again. See ``docs/scheduling.md``.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.cache import cache
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import Tenant
from csplatform.logs import did_work, log_summary
from csplatform.tenancy import system_context, tenant_context

from . import conditions, engine
from .batch import open_batch
from .events import dispatch_ids
from .models import Event, Run, ScheduledSlot, Workflow
from .subjects import account_of, model_for
from .triggers import ConfigError, parse_duration, triggers

log = logging.getLogger("automation.scheduling")

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)

#: A scheduled slot older than this when a tick first sees it (beat or cron were down) is not fired:
#: a 09:00 "daily digest" sent at 15:00 after an outage is worse than none. Time-based rules have no
#: such window: their current slot is always due, so they simply check again on the next tick.
CATCH_UP = datetime.timedelta(hours=1)
#: A time-based rule without a cooldown fires a subject at most once a day (else every check would
#: fire every still-matching account again).
DEFAULT_REFIRE = datetime.timedelta(days=1)
SWEEP_GRACE = datetime.timedelta(seconds=30)
SWEEP_BATCH = 1000
#: An event the sweeper handed to celery is not handed on again for this long (a busy queue must not
#: be flooded with copies of the same backlog every minute).
REDISPATCH_AFTER = 300
CHUNK = 500
SCHEDULE_TRIGGERS = ("scheduled", "time_based")
FIRED = (Run.Status.SUCCESS, Run.Status.FAILED, Run.Status.RUNNING)
DEFAULT_WEEKDAY = 1  # a weekly schedule without days_of_week runs on Mondays


# --- due work: what ``tick`` runs -------------------------------------------------------------------

_due_work: dict[str, Callable[..., Any]] = {}


def register_due_work(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add a callable ``fn(*, now) -> summary`` to what ``tick`` runs (playbooks, crm and delivery
    register theirs from their ``AppConfig.ready``); a duplicate name fails loudly."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _due_work:
            raise ValueError(f"due work '{name}' is already registered")
        _due_work[name] = fn
        return fn

    return decorator


def due_work() -> list[tuple[str, Callable[..., Any]]]:
    """The registered due work, in registration order (the sweeper first)."""
    return list(_due_work.items())


@dataclass
class TickResult:
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def tick(now: datetime.datetime | None = None) -> TickResult:
    """Run every registered piece of due work once; one failing piece does not stop the others. Logs one
    INFO line when something was done (the pieces that did it), DEBUG when the tick was idle."""
    now = now or timezone.now()
    outcome = TickResult()
    for name, fn in due_work():
        try:
            outcome.results[name] = fn(now=now)
        except Exception as exc:  # keep the loop alive; the error is logged and reported
            log.exception("due work %s failed", name)
            outcome.errors[name] = f"{type(exc).__name__}: {exc}"
    busy = {name: result for name, result in outcome.results.items() if did_work(result)}
    log_summary(log, "tick", busy, errors=outcome.errors)
    return outcome


# --- the sweeper ------------------------------------------------------------------------------------

def sweep_events(*, grace: datetime.timedelta = SWEEP_GRACE, now: datetime.datetime | None = None,
                 limit: int = SWEEP_BATCH) -> int:
    """Hand to celery again every event still unprocessed ``grace`` after it was written (its on-commit
    dispatch was lost: broker down, worker killed). ``process_event`` skips processed events and
    locks with SKIP LOCKED, so a duplicate dispatch is harmless. Returns how many were dispatched."""
    now = now or timezone.now()
    with system_context("automation: sweep unprocessed events"):
        pending = list(engine.pending_events(Event.objects.filter(created_at__lt=now - grace))
                       .order_by("created_at").values_list("tenant_id", "pk")[:limit])
    keys = {f"automation:swept:{tenant_id}:{pk}": (tenant_id, pk) for tenant_id, pk in pending}
    recent = cache.get_many(list(keys))
    dispatched = 0
    for key, (tenant_id, pk) in keys.items():
        if key in recent:
            continue
        try:
            dispatch_ids(tenant_id, pk)
        except Exception:  # eager mode raises the task's own error; the next sweep tries again
            log.exception("sweeper: event %s of tenant %s failed", pk, tenant_id)
            continue
        cache.set(key, 1, REDISPATCH_AFTER)
        dispatched += 1
    log.debug("sweeper re-dispatched %d events", dispatched)
    return dispatched


# --- delayed and retried runs -----------------------------------------------------------------------

def run_due_runs(now: datetime.datetime | None = None, *, limit: int = 100, max_batches: int = 10) -> int:
    """Execute queued runs (``delay_minutes``, retries, debounce) that are due, tenant by tenant, through
    ``engine.run_due_runs`` (SKIP LOCKED, so workers share them). Returns how many ran."""
    now = now or timezone.now()
    with system_context("automation: list tenants with due queued runs"):
        tenant_ids = list(Run.objects.filter(status=Run.Status.QUEUED, scheduled_for__lte=now)
                          .values_list("tenant_id", flat=True).distinct().order_by("tenant_id"))
    done = 0
    for tenant_id in tenant_ids:
        for _ in range(max_batches):  # bounded, so one busy tenant cannot hold the tick forever
            batch = len(engine.run_due_runs(tenant_id, now=now, limit=limit))
            done += batch
            if batch < limit:
                break
    return done


# --- slots ------------------------------------------------------------------------------------------

def _runs_on(config: dict, day: datetime.date) -> bool:
    schedule = config.get("schedule") or "daily"
    days = {7 if d == 0 else d for d in config.get("days_of_week") or []}  # ISO days, 0 = Sunday too
    if schedule == "monthly":
        wanted = config.get("day_of_month") or 1
        wanted = wanted if isinstance(wanted, int) and 1 <= wanted <= 31 else 1
        next_month = (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        return day.day == min(wanted, (next_month - datetime.timedelta(days=1)).day)
    if schedule == "weekly":
        return day.isoweekday() in (days or {DEFAULT_WEEKDAY})
    return not days or day.isoweekday() in days


def latest_scheduled_slot(config: dict, now: datetime.datetime) -> datetime.datetime | None:
    """The UTC instant of the latest occurrence of a ``scheduled`` config at or before ``now``.

    The wall-clock ``time`` is read in the config's IANA ``timezone``, so 09:00 America/New_York is
    13:00 UTC in summer and 14:00 UTC in winter. A time skipped by a DST jump (02:30 on the spring
    day) is read with the offset before the jump, i.e. it fires an hour later on the wall clock; a
    time that happens twice in autumn fires at its first occurrence.
    """
    zone = ZoneInfo(config.get("timezone") or "UTC")
    hour, minute = (int(part) for part in str(config.get("time") or "09:00").split(":"))
    today = now.astimezone(zone).date()
    for back in range(0, 63):  # a monthly schedule's latest day is at most ~31 days back
        day = today - datetime.timedelta(days=back)
        if not _runs_on(config, day):
            continue
        at = datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=zone).astimezone(UTC)
        if at <= now:
            return at
    return None


def time_based_slot(config: dict, now: datetime.datetime) -> datetime.datetime:
    """``floor(now / check_every)``, aligned on the Unix epoch in UTC (``1d`` slots start at 00:00 UTC)."""
    period = parse_duration(config.get("check_every") or "1h", "check_every")
    return EPOCH + ((now - EPOCH) // period) * period


def due_slot(rule: Workflow, now: datetime.datetime, catch_up: datetime.timedelta = CATCH_UP) -> datetime.datetime | None:
    """The slot ``rule`` should fire for at ``now`` (claimed or not), or None."""
    if rule.trigger_type == "time_based":
        return time_based_slot(rule.trigger_config, now)
    slot = latest_scheduled_slot(rule.trigger_config, now)
    if slot is None or now - slot > catch_up:
        return None
    if rule.created_at and slot < rule.created_at:  # a rule does not fire for slots before it existed
        return None
    return slot


# --- matching: one queryset -------------------------------------------------------------------------

def subject_model_name(rule: Workflow) -> str:
    trigger = triggers.get(rule.trigger_type) if rule.trigger_type in triggers else None
    return rule.model_type or (trigger.subject_model if trigger else None) or "account"


def candidates(rule: Workflow, now: datetime.datetime) -> tuple[models.QuerySet, dict | None]:
    """The queryset of the rule's subjects in scope that match its conditions, and the part of the
    conditions that cannot be compiled to SQL (time windows), to check in memory, or None.

    For time-based rules the subjects fired within the cooldown (or ``DEFAULT_REFIRE``) are left out
    in the same query. Everything is one SELECT, however many accounts the tenant has.
    """
    name = subject_model_name(rule)
    model = model_for(name)
    qs = model.objects.for_tenant(rule.tenant_id)
    is_account = model._meta.label == "accounts.Account"
    if not rule.scope_all_accounts:
        scope = rule.scope_accounts.values("pk")
        qs = qs.filter(pk__in=scope) if is_account else qs.filter(account__in=scope)
    compiled, remainder = _compile(rule.conditions, model, now)
    qs = qs.filter(compiled)
    if rule.trigger_type == "time_based":
        window = datetime.timedelta(minutes=rule.cooldown_minutes) if rule.cooldown_minutes else DEFAULT_REFIRE
        # A subject with a run still queued (delayed, debounced, awaiting retry) is left out whatever its age,
        # or every check would queue another one.
        recent = models.Q(status__in=FIRED, created_at__gt=now - window) | models.Q(status=Run.Status.QUEUED)
        fired = Run.objects.for_tenant(rule.tenant_id).filter(recent, workflow=rule)
        if is_account:
            fired = fired.filter(account=models.OuterRef("pk"))
        else:
            fired = fired.filter(subject_model=name, subject_id=Cast(models.OuterRef("pk"), models.CharField()))
        qs = qs.filter(~models.Exists(fired))
    return qs.order_by("pk"), remainder


def _compile(tree, model, now) -> tuple[models.Q, dict | None]:
    """(Q, in-memory remainder): the whole tree as a Q if it compiles; else, for an ``all`` root, the
    compilable parts as a Q and the rest for ``evaluate``; else nothing in SQL and all in memory."""
    tree = conditions.normalize(tree)
    try:
        return conditions.to_q(tree, model, now=now), None
    except conditions.NotCompilable:
        pass
    if tree["op"] != "all":
        return models.Q(), tree
    q, rest = models.Q(), []
    for child in tree["conditions"]:
        try:
            q &= conditions.to_q(child, model, now=now)
        except conditions.NotCompilable:
            rest.append(child)
    return q, {"op": "all", "conditions": rest}


def matching_subjects(rule: Workflow, now: datetime.datetime) -> Iterator[models.Model]:
    """The subjects to fire for, loaded in chunks after one query for the candidate ids."""
    qs, remainder = candidates(rule, now)
    pks = list(qs.values_list("pk", flat=True))
    rows = qs.model.objects.for_tenant(rule.tenant_id).order_by("pk")  # by id only: the match is already made
    if any(f.name == "account" for f in qs.model._meta.concrete_fields):
        rows = rows.select_related("account")
    for start in range(0, len(pks), CHUNK):
        for subject in rows.filter(pk__in=pks[start:start + CHUNK]):
            if remainder is None or conditions.evaluate(remainder, subject, now=now):
                yield subject


# --- firing -----------------------------------------------------------------------------------------

@dataclass
class ScheduleResult:
    tenants: int = 0
    slots: int = 0
    runs: int = 0
    errors: int = 0

    def as_dict(self) -> dict:
        return {"tenants": self.tenants, "slots": self.slots, "runs": self.runs, "errors": self.errors}


def run_scheduled_rules(now: datetime.datetime | None = None, *, catch_up: datetime.timedelta = CATCH_UP) -> ScheduleResult:
    """Fire every live scheduled and time-based rule whose slot is due and not yet claimed, tenant by
    tenant. Safe to call from any number of beat ticks, workers and cron lines at once."""
    now = now or timezone.now()
    result = ScheduleResult()
    with system_context("automation: list tenants with scheduled rules"):
        tenant_ids = set(_live(Workflow.objects.all()).values_list("tenant_id", flat=True).distinct())
        tenants = list(Tenant.objects.filter(pk__in=tenant_ids).order_by("pk"))
    for tenant in tenants:
        with tenant_context(tenant):
            result.tenants += 1
            _run_tenant(tenant, now, catch_up, result)
    return result


def _live(qs: models.QuerySet) -> models.QuerySet:
    return qs.filter(status=Workflow.Status.ACTIVE, enabled=True, trigger_type__in=SCHEDULE_TRIGGERS)


def _run_tenant(tenant: Tenant, now: datetime.datetime, catch_up: datetime.timedelta, result: ScheduleResult) -> None:
    due: list[tuple[Workflow, datetime.datetime]] = []
    for rule in _live(Workflow.objects.for_tenant(tenant)).order_by("pk"):
        try:
            slot = due_slot(rule, now, catch_up)
        except (ConfigError, ValueError, ZoneInfoNotFoundError) as exc:  # saved before validation existed
            log.error("rule %s has a bad schedule: %s", rule.pk, exc)
            result.errors += 1
            continue
        if slot is not None:
            due.append((rule, slot))
    if not due:
        return
    # One query for the slots already claimed, so a claimed slot costs no lock on each later tick.
    wanted = models.Q()
    for rule, slot in due:
        wanted |= models.Q(workflow_id=rule.pk, slot=slot)
    claimed = set(ScheduledSlot.objects.for_tenant(tenant).filter(wanted).values_list("workflow_id", "slot"))
    for rule, slot in due:
        if (rule.pk, slot) in claimed:
            continue
        try:
            fired = fire_slot(rule, slot, now=now)
        except Exception:  # one broken rule must not stop the others
            log.exception("rule %s slot %s failed", rule.pk, slot.isoformat())
            result.errors += 1
            continue
        if fired is not None:
            result.slots += 1
            result.runs += fired


def fire_slot(rule: Workflow, slot: datetime.datetime, *, now: datetime.datetime | None = None) -> int | None:
    """Claim ``slot`` for ``rule`` and fire the rule for every matching subject, in one transaction.
    Returns the number of runs that acted, or None when the slot was already taken (or the rule was
    paused meanwhile). The caller is in the rule's tenant context."""
    now = now or timezone.now()
    with transaction.atomic(), open_batch() as batch:  # the slot's runs are written together
        # Lock first: a second claimant waits here, then finds the claim committed and skips; a time-based
        # rule's next slot waits too, so it sees this slot's runs when it leaves out recent subjects.
        locked = _live(Workflow.objects.for_tenant(rule.tenant_id)).select_for_update().filter(pk=rule.pk).first()
        if locked is None:
            return None
        try:
            with transaction.atomic():
                claim = ScheduledSlot.objects.create(tenant_id=locked.tenant_id, workflow=locked, slot=slot)
        except IntegrityError:
            return None
        acted = 0
        trigger_data = {"type": locked.trigger_type, "slot": slot.isoformat()}
        for subject in matching_subjects(locked, now):
            try:
                with transaction.atomic():
                    # matching_subjects has applied the conditions (one queryset) with this ``now``.
                    run = engine.fire(locked, subject=subject, account=account_of(subject), now=now,
                                      conditions_checked=True, trigger_data=trigger_data, batch=batch)
            except Exception:
                log.exception("rule %s slot %s: subject %s failed", locked.pk, slot.isoformat(), subject.pk)
                continue
            if run.status != Run.Status.SKIPPED:
                acted += 1
            elif run.skip_reason == Run.SkipReason.RATE_LIMITED:
                break  # the limit is per rule: every further subject would be skipped the same way
        ScheduledSlot.objects.filter(pk=claim.pk).update(runs=acted)
    log.debug("rule %s fired slot %s: %d runs", rule.pk, slot.isoformat(), acted)
    return acted


# --- automation's own due work (first in tick's order) ----------------------------------------------

@register_due_work("automation.sweep_events")
def _sweep_due(*, now: datetime.datetime) -> int:
    return sweep_events(now=now)


@register_due_work("automation.scheduled_rules")
def _scheduled_due(*, now: datetime.datetime) -> dict:
    return run_scheduled_rules(now).as_dict()


@register_due_work("automation.due_runs")
def _due_runs(*, now: datetime.datetime) -> int:
    return run_due_runs(now)
