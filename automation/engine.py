"""The one flow: event -> matching rules -> conditions -> limits -> actions -> Run + RunSteps.

``process_event`` handles one event (or, under load, a batch of the tenant's pending events) in one
transaction: every run, its steps, the actions' local writes and the events' ``processed_at`` commit
together or not at all. Limits (cooldown, rate limit) are checked while the rule's row is locked, so
concurrent workers cannot both pass them.

The order of work for a batch of events (``_process`` -> ``_process_batch``), top to bottom:

1. claim the tenant's pending events (SKIP LOCKED) and load the live rules and the changed rows;
2. match each event to its rules; lock the rules with limits, in one order;
3. fire each event's rules (``fire``): conditions, limits, then the actions (``_run_actions``), each
   recording its run and steps on the ``Batch``;
4. mark the events processed; the batch writes its runs, steps and messages when it ends.

Bookkeeping writes (runs, steps, messages, ``last_run_at``) are batched: see ``batch.Batch``, passed
explicitly (``ctx.batch`` for actions). A batch that fails is retried event by event, so one poisoned
event cannot hold back the others.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.cache import cache
from django.db import OperationalError, transaction
from django.db.models import Case, Exists, F, IntegerField, Q, Value, When
from django.utils import timezone

from accounts.models import Tenant
from csplatform.tenancy import tenant_context

from . import conditions, waits
from .actions import ActionContext, ActionError, ActionRefused, actions
from .batch import Batch, Redo, ScoreMemo, joined, open_batch
from .breaker import after_failure
from .chains import as_described, ran_in_chain
from .events import actions_running, chain_of, dispatch
from .models import Event, Run, RunStep, Workflow
from .subjects import WATCHED, model_for
from .triggers import triggers

MAX_DEPTH = 3
PERIODS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
log = logging.getLogger(__name__)


def process_event(tenant_id, event_id, batch: int = 1) -> list[Run]:
    """Process one event (the task handed to celery on commit); a no-op if it is already done. With
    ``batch`` > 1 the worker also takes up to ``batch - 1`` other pending events of the tenant, oldest
    first, so a backlog is drained in few transactions (their own tasks then find nothing to do); the
    batch is fired in the order the events were written."""
    if batch <= 1:
        return _process(tenant_id, Event.objects.filter(pk=event_id))
    own_first = Case(When(pk=event_id, then=Value(0)), default=Value(1), output_field=IntegerField())
    return _process(tenant_id, Event.objects.order_by(own_first, "id"), batch)


def process_pending(tenant_id, limit: int = 100) -> list[Run]:
    """Process up to ``limit`` pending events of one tenant in one transaction (sweepers, bulk workers)."""
    return _process(tenant_id, Event.objects.order_by("id"), limit)


CAREFUL_TTL = 3600


def _careful_key(tenant) -> str:
    return f"automation:careful:{tenant.pk}"


def _is_careful(tenant) -> bool:
    """Whether the tenant's latest batch had a failing action (shared by all workers through the cache): its
    next batch then starts with a savepoint per event, so another failure refires one event, not the batch."""
    try:
        return bool(cache.get(_careful_key(tenant)))
    except Exception:  # the cache is down: the fast mode, which still falls back to savepoints on failure
        log.warning("cache unavailable; tenant %s's batch runs without savepoints first", tenant.pk)
        return False


def _set_careful(tenant, careful: bool, was: bool) -> None:
    if not careful and not was:
        return
    try:
        if careful:  # set again while batches keep failing: the flag lasts an hour after the last failure
            cache.set(_careful_key(tenant), 1, CAREFUL_TTL)
        else:
            cache.delete(_careful_key(tenant))
    except Exception:
        log.warning("cache unavailable; tenant %s's savepoint mode is not remembered", tenant.pk)


def _process(tenant_id, events, limit: int | None = None) -> list[Run]:
    """A batch without savepoints (actions rarely fail); if one fails, the batch again with a savepoint per
    event, where only the failing event is fired a third time, with a savepoint per action."""
    tenant = _tenant_with_work(tenant_id, events)
    if tenant is None:
        return []
    careful = _is_careful(tenant)
    try:
        try:
            runs, refired = _process_batch(tenant, events, limit, "event" if careful else "none")
        except Redo:  # an action failed and everything was rolled back: again, more carefully
            runs, refired = _process_batch(tenant, events, limit, "event")
            refired = True
        _set_careful(tenant, refired, careful)
        return runs
    except Exception as exc:
        with tenant_context(tenant):  # the batch was rolled back: the same events are pending again
            pending = pending_events(events.for_tenant(tenant)).values_list("pk", flat=True)
            ids = list(pending[:limit] if limit else pending)
        if len(ids) == 1:
            _record_failure(tenant, ids[0], exc)
            return []
        log.warning("automation batch of tenant %s failed (%s); processing its %d events one by one",
                    tenant_id, exc, len(ids))
    # One event broke the batch: take them one at a time, so only the broken one stays behind.
    runs = []
    for event_id in ids:
        try:
            runs += _process_batch(tenant, Event.objects.filter(pk=event_id), None)[0]
        except Exception as exc:
            _record_failure(tenant, event_id, exc)
    return runs


def _tenant_with_work(tenant_id, events) -> Tenant | None:
    """The tenant, if one of ``events`` is pending; else None, after this one query. Under a backlog most tasks
    find their event taken by an earlier task's batch: they stop here, without the cache read, the transaction
    and the empty claim (they were 9 ms of a worker's time each). Events locked by a batch still in flight count
    as pending, so a task still claims whatever that batch leaves: it never stops pulling ahead."""
    with tenant_context(Tenant(pk=tenant_id)):
        return Tenant.objects.filter(Exists(pending_events(events.for_tenant(tenant_id))), pk=tenant_id).first()


def pending_events(events):
    """Events still to process: not processed, not set aside after failing."""
    return events.filter(processed_at__isnull=True, failed_at__isnull=True)


def _record_failure(tenant, event_id, exc: Exception) -> None:
    """Count a failed attempt on the event; after AUTOMATION_EVENT_MAX_ATTEMPTS it is set aside (failed_at)
    so the sweeper stops handing it out. The admin's "process again" action puts it back. A passing
    database condition (deadlock, serialization failure, lost connection) is not the event's fault: it
    stays pending, uncounted, for the next dispatch or sweep."""
    log.error("automation event %s of tenant %s failed", event_id, tenant.pk, exc_info=exc)
    if isinstance(exc, OperationalError):
        return
    last = settings.AUTOMATION_EVENT_MAX_ATTEMPTS - 1
    with tenant_context(tenant), transaction.atomic():
        Event.objects.for_tenant(tenant).filter(pk=event_id).update(
            attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000],
            failed_at=Case(When(attempts__gte=last, then=Value(timezone.now())), default=None))


def event_retry(event: Event) -> None:
    """Put a failed (set aside) event back: fresh attempts, handed to a worker when this commits."""
    Event.objects.for_tenant(event.tenant_id).filter(pk=event.pk).update(failed_at=None, attempts=0, last_error="")
    transaction.on_commit(lambda: dispatch(event))


def _process_batch(tenant, events, limit: int | None, savepoints: str = "action") -> tuple[list[Run], bool]:
    """The batch's runs, and whether an event had to be fired again with savepoints."""
    with tenant_context(tenant), transaction.atomic(), open_batch(savepoints=savepoints) as batch:
        claimed = pending_events(events.for_tenant(tenant)).select_for_update(skip_locked=True)
        claimed = list(claimed[:limit] if limit else claimed)  # locked rows belong to another worker: skip them
        if not claimed:
            return [], False
        claimed.sort(key=lambda event: event.pk)  # in the order they happened, whichever event the task was handed
        live = list(Workflow.objects.for_tenant(tenant).select_related("tenant").defer("draft")
                    .filter(status=Workflow.Status.ACTIVE, enabled=True))
        subjects = _load_subjects(tenant, claimed)
        matched = {event.pk: matching_rules(event, live) for event in claimed}
        batch.expect(sum(map(len, matched.values())))
        # Rules with limits stay locked until the batch commits: lock them all now, in one order, so two
        # workers meeting them in different orders cannot deadlock.
        limited = sorted({rule.pk for rules in matched.values() for rule in rules if _is_limited(rule, manual=False)})
        if limited:
            list(Workflow.objects.for_tenant(tenant).filter(pk__in=limited).order_by("pk").select_for_update()
                 .values_list("pk", flat=True))
        if batch.scores is not None:  # the webhook payloads' latest scores: one query for the batch's accounts
            batch.scores = ScoreMemo(event.account_id for event in claimed if matched[event.pk])
        runs = [run for event in claimed for run in _fire_event(
            event, matched[event.pk], subjects.get((event.model, event.object_id)), batch)]
        Event.objects.filter(pk__in=[e.pk for e in claimed]).update(processed_at=timezone.now(), attempts=F("attempts") + 1)
        return runs, batch.refired


def _fire_event(event: Event, rules: list[Workflow], subject, batch: Batch) -> list[Run]:
    """Fire an event's rules. With a savepoint per event (``savepoints="event"``), an action failing rolls
    back this event alone, which is fired again with a savepoint per action."""
    def fire_all():
        return [fire(rule, event=event, subject=subject, batch=batch) for rule in rules if rule.pk not in batch.paused]

    if batch.savepoints != "event":
        return fire_all()  # "none": a failing action's Redo rolls back the batch (``_process``)
    mark = batch.mark()
    try:
        with transaction.atomic():
            return fire_all()
    except Redo:
        batch.rewind(mark)
        if batch.scores is not None:
            batch.scores.forget()  # a score the rolled-back runs recorded may be in the memo
        batch.refired = True
    with batch.with_savepoints():
        return fire_all()


def _load_subjects(tenant, batch: list[Event]) -> dict:
    """The changed rows of a batch of events, one query per model (deleted rows are simply absent)."""
    wanted: dict[str, set] = {}
    for event in batch:
        if event.model in WATCHED and event.object_id and event.type != "model_deleted":
            wanted.setdefault(event.model, set()).add(event.object_id)
    found = {}
    for model_name, ids in wanted.items():
        for pk, row in model_for(model_name).objects.for_tenant(tenant).in_bulk(list(ids)).items():
            found[(model_name, str(pk))] = row
    return found


def matching_rules(event: Event, live: list[Workflow] | None = None) -> list[Workflow]:
    """The live rules whose trigger matches the event (rules are few per tenant: one query, filtered here)."""
    if live is None:
        live = Workflow.objects.for_tenant(event.tenant_id).filter(status=Workflow.Status.ACTIVE, enabled=True)
    return [r for r in live if r.trigger_type in triggers
            and triggers.get(r.trigger_type).matches(r.trigger_config, r.model_type, event)]


def has_conditions(rule: Workflow) -> bool:
    """An empty group (what normalising "no conditions" gives) is no condition at all."""
    tree = rule.conditions or {}
    return bool(tree.get("conditions")) if "op" in tree else bool(tree)


def _subject_of(rule: Workflow, event: Event | None):
    if event is None or not event.object_id or event.type == "model_deleted":
        return None
    model_name = rule.model_type or event.model or "account"
    return model_for(model_name).objects.for_tenant(event.tenant_id).filter(pk=event.object_id).first()


def _skip_reason(rule: Workflow, account, depth: int, manual: bool) -> str:
    if depth > MAX_DEPTH:
        return Run.SkipReason.RECURSION_LIMIT
    if not manual and not rule.is_live:
        return Run.SkipReason.DISABLED
    if account is not None and not rule.scope_all_accounts and not rule.scope_accounts.filter(pk=account.pk).exists():
        return Run.SkipReason.OUT_OF_SCOPE
    return ""


def _fired_runs(rule: Workflow):
    """Runs of ``rule`` that acted (or are acting): what cooldowns and rate limits count."""
    return Run.objects.for_tenant(rule.tenant_id).filter(
        Q(status__in=[Run.Status.SUCCESS, Run.Status.FAILED, Run.Status.RUNNING]) | waits.waiting(), workflow=rule)


def cooldown_until(rule: Workflow, account):
    """When ``account`` may fire ``rule`` again, or None when it is not cooling down."""
    if not rule.cooldown_minutes or account is None:
        return None
    last = (_fired_runs(rule).filter(account=account).order_by("-created_at")
            .values_list("created_at", flat=True).first())
    until = last + timedelta(minutes=rule.cooldown_minutes) if last else None
    return until if until and until > timezone.now() else None


def limit_reason(rule: Workflow, account) -> str:
    """Cooldown per rule and account, then the rule's rate limit ("" when neither holds it back). The caller
    holds the rule's row lock, so concurrent workers check and record one at a time."""
    if cooldown_until(rule, account) is not None:
        return Run.SkipReason.COOLDOWN
    limit = rule.rate_limiting or {}
    if limit.get("limit"):
        now = timezone.now()
        period = PERIODS[limit.get("period", "hour")]
        if limit.get("reset_strategy") == "fixed":
            start = now - timedelta(seconds=now.timestamp() % period.total_seconds())
        else:
            start = now - period
        allowed = int(limit["limit"]) + int(limit.get("burst_limit") or 0)
        if _fired_runs(rule).filter(created_at__gte=start).count() >= allowed:
            return Run.SkipReason.RATE_LIMITED
    return ""


def fire(rule: Workflow, *, event: Event | None = None, subject=None, account=None, depth: int | None = None,
         manual: bool = False, extra: dict | None = None, now=None, conditions_checked: bool = False,
         trigger_data: dict | None = None, batch: Batch | None = None, record=None) -> Run:
    """Run one rule for one event (or by hand) and record the Run; skips are recorded with their reason.

    Set-based callers (scheduled and time-based rules) pass ``conditions_checked`` after matching the
    subjects with one queryset, ``now`` for the clock the conditions saw, and their ``trigger_data``.
    ``record`` (an inbound webhook's contact or account, ``running.webhook_record``): what the actions change
    when the conditions read something else (the webhook's body, ``subject``).
    The run and its steps are written when this returns, or when the caller's ``batch`` ends."""
    with joined(batch) as batch:
        return _fire(rule, event, subject, account, depth, manual, extra, now, conditions_checked, trigger_data,
                     batch, record)


def _fire(rule, event, subject, account, depth, manual, extra, now, conditions_checked, trigger_data, batch,
          record=None) -> Run:
    depth = event.depth if depth is None and event is not None else (depth or 0)
    if subject is None:
        subject = _subject_of(rule, event)
    if account is None and subject is not None and subject._meta.label == "accounts.Account":
        account = subject
    if account is None and event is not None and event.account_id:
        account = event.account
    debounce = (rule.trigger_config or {}).get("debounce_seconds") if not manual else None
    limited = _is_limited(rule, manual)
    if limited:
        # Lock the rule so concurrent workers check and record its limits one at a time.
        rule = Workflow.objects.select_related("tenant").select_for_update(of=("self",)).get(pk=rule.pk)
    run = Run(tenant_id=rule.tenant_id, workflow=rule, workflow_version=rule.version, event=event, account=account,
              depth=depth, manual=manual,
              subject_model=(record or subject)._meta.model_name if (record or subject) is not None else "",
              subject_id=str((record or subject).pk) if (record or subject) is not None else "",
              trigger_data=trigger_data if trigger_data is not None else (
                  {"type": event.type, "payload": event.payload, "changes": event.changes} if event else {}))
    reason = _skip_reason(rule, account, depth, manual)
    trace: list = []
    if not reason and not conditions_checked and has_conditions(rule):
        target = as_described(subject if subject is not None else account, event)
        changes = event.changes if event else None
        try:
            passed = target is not None and conditions.evaluate(
                rule.conditions, target, changes=changes, now=now, trace=trace)
        except (conditions.ConditionError, ObjectDoesNotExist) as exc:  # a tree that no longer fits the model,
            passed, run.error = False, f"condition error: {exc}"  # or a snapshot naming a row deleted since
        if not passed:
            reason = Run.SkipReason.CONDITIONS_NOT_MET
    if not reason and not manual and ran_in_chain(run, batch):
        reason = Run.SkipReason.LOOP_DETECTED
    if not reason and not manual:
        reason = limit_reason(rule, account)
    run.trace = trace if rule.debug_mode else []
    if reason:
        run.status, run.skip_reason, run.finished_at = Run.Status.SKIPPED, reason, timezone.now()
        batch.add(run)
        return run
    if debounce:
        return _debounce(rule, run, timedelta(seconds=debounce))
    if rule.delay_minutes and not manual:
        # Seed 003's delay: the run waits as a queued row (nothing lost if a worker dies meanwhile).
        run.status, run.scheduled_for = Run.Status.QUEUED, timezone.now() + timedelta(minutes=rule.delay_minutes)
        run.result = {"extra": extra or {}}
        run.save()
        return run
    run.status, run.started_at = Run.Status.RUNNING, timezone.now()
    batch.add(run, now=limited)  # limits count runs: others must see this one at once
    _execute(rule, run, record or subject, account, event.payload if event else {}, extra or {}, batch)
    return run


def _is_limited(rule: Workflow, manual: bool) -> bool:
    """Cooldown, rate limit or debounce: the rule's row is locked while its runs are counted."""
    return bool(rule.cooldown_minutes or rule.rate_limiting or (not manual and (rule.trigger_config or {}).get(
        "debounce_seconds")))


def _debounce(rule: Workflow, run: Run, quiet: timedelta) -> Run:
    """An autosave storm is one run: a queued run for the same rule and subject is pushed back (and
    takes the newest trigger data) instead of adding another; it runs after ``quiet`` without changes."""
    due = timezone.now() + quiet + timedelta(minutes=rule.delay_minutes)
    pending = Run.objects.for_tenant(rule.tenant_id).filter(
        workflow=rule, subject_model=run.subject_model, subject_id=run.subject_id, status=Run.Status.QUEUED,
        retry_of__isnull=True, started_at__isnull=True).first()  # not one waiting before an action (waits)
    if pending is not None:
        pending.scheduled_for, pending.trigger_data, pending.event = due, run.trigger_data, run.event
        pending.save(update_fields=["scheduled_for", "trigger_data", "event"])
        return pending
    run.status, run.scheduled_for = Run.Status.QUEUED, due
    run.save()
    return run


def _execute(rule: Workflow, run: Run, subject, account, payload: dict, extra: dict, batch: Batch) -> None:
    _run_actions(rule, run, subject, account, payload, extra, batch)
    batch.last_run[rule.pk] = max(run.started_at, batch.last_run.get(rule.pk, run.started_at))
    if run.status == Run.Status.FAILED:
        _schedule_retry(rule, run)
        if not run.manual:
            after_failure(rule, run, batch)


def retry_delay(rule: Workflow, attempt: int) -> timedelta | None:
    """Seed 003's retry_configuration: delay_minutes * backoff_multiplier^(attempt-1), capped; None when
    retries are off or used up."""
    config = rule.retry_configuration or {}
    if not rule.allow_retries or attempt > int(config.get("max_retries", 3)):
        return None
    minutes = float(config.get("delay_minutes", 15)) * float(config.get("backoff_multiplier", 2)) ** (attempt - 1)
    return min(timedelta(minutes=minutes), timedelta(hours=float(config.get("max_delay_hours", 24))))


def _schedule_retry(rule: Workflow, run: Run) -> None:
    delay = retry_delay(rule, run.attempt)
    failed = run.result.get("failed_steps") or []
    if delay is None or not failed:
        return
    Run.objects.create(
        tenant_id=run.tenant_id, workflow=rule, event=run.event, account=run.account, depth=run.depth,
        subject_model=run.subject_model, subject_id=run.subject_id, trigger_data=run.trigger_data,
        status=Run.Status.QUEUED, scheduled_for=timezone.now() + delay, attempt=run.attempt + 1, retry_of=run,
        workflow_version=run.workflow_version,  # waiting_at: an action's own delay was waited already
        start_position=failed[0], result={"extra": run.result.get("extra", {}), "waiting_at": failed[0]},
    )


def run_due_runs(tenant_id, now=None, limit: int = 100) -> list[Run]:
    """Execute queued (delayed or retried) runs of one tenant that are due; safe with several workers."""
    now = now or timezone.now()
    tenant = Tenant.objects.get(pk=tenant_id)
    done = []
    with tenant_context(tenant), transaction.atomic(), open_batch() as batch:
        due = (Run.objects.for_tenant(tenant).select_related("workflow", "workflow__tenant", "account")
               .filter(status=Run.Status.QUEUED, scheduled_for__lte=now).order_by("scheduled_for")
               .select_for_update(skip_locked=True, of=("self",))[:limit])
        for run in due:
            rule = run.workflow
            subject = None
            if run.subject_model in WATCHED and run.subject_id:
                subject = model_for(run.subject_model).objects.for_tenant(tenant).filter(pk=run.subject_id).first()
            # A queued run acts with the definition live now (a draft published meanwhile included); a retry
            # resumes at its failed action only if that definition is still the one that failed.
            if run.retry_of_id and run.workflow_version != rule.version:
                run.start_position = 0
            run.status, run.started_at, run.workflow_version = Run.Status.RUNNING, now, rule.version
            run.save(update_fields=["status", "started_at", "workflow_version", "start_position"])
            batch.add(run)
            payload = (run.trigger_data or {}).get("payload", {})
            _execute(rule, run, subject, run.account, payload, (run.result or {}).get("extra", {}), batch)
            done.append(run)
    return done


def _run_actions(rule: Workflow, run: Run, subject, account, payload: dict, extra: dict, batch: Batch) -> None:
    ctx = ActionContext(tenant=rule.tenant, workflow=rule, run=run, account=account, subject=subject,
                        event_payload=payload, extra=extra, batch=batch, fire=fire)
    resuming = "waiting_at" in (run.result or {})  # after a wait: what failed before it still counts
    failed = list(run.result.get("failed_steps") or []) if resuming else []
    errors = [run.error] if resuming and run.error else []
    by_person = run.manual and not run.depth  # run now, replay: their writes start a chain of their own
    with actions_running(run.depth, batch, None if by_person else chain_of(run.event)):
        for position, spec in enumerate(rule.actions):
            if position < run.start_position:
                continue
            delay = waits.wait_before(run, position, spec)
            if delay is not None:
                waits.wait(run, position, delay, {"steps": len(rule.actions), "failed_steps": failed, "extra": extra})
                run.error = "; ".join(errors)
                return
            ctx.position = position
            started, mark = time.perf_counter(), batch.mark()
            step = RunStep(tenant_id=rule.tenant_id, run=run, position=position, action_type=spec["type"])
            try:
                # A failing action leaves none of its own writes behind: its savepoint, or, in a batch that
                # runs without them (actions rarely fail), a rollback and the work again with them (_process).
                with transaction.atomic() if batch.savepoints == "action" else nullcontext():
                    step.output = actions.get(spec["type"]).run(spec.get("config") or {}, ctx) or {}
                step.status = RunStep.Status.SUCCESS
            except Exception as exc:  # ActionError, or a bug in an action: it must not lose the run record
                if batch.savepoints != "action" and not isinstance(exc, ActionRefused):
                    if isinstance(exc, (OperationalError, SoftTimeLimitExceeded)):
                        raise  # the database or the worker is in trouble, not the action: no second try here
                    raise Redo(f"action {spec['type']} failed") from exc
                step.status = RunStep.Status.FAILED
                step.error = str(exc) if isinstance(exc, ActionError) else f"{type(exc).__name__}: {exc}"
                batch.rewind(mark)  # runs a failed trigger_workflow recorded were rolled back with it
            step.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            ctx.steps.append(step)
            messages = ctx.take_messages()  # a failed step's messages were rolled back: link none
            batch.add_step(step, messages=messages if step.status == RunStep.Status.SUCCESS else [])
            if step.status == RunStep.Status.FAILED:
                failed.append(position)
                errors.append(step.error)
                if not rule.continue_on_error:
                    break
    run.status = Run.Status.FAILED if failed else Run.Status.SUCCESS
    run.error = "; ".join(errors)
    run.result = {"steps": len(rule.actions), "failed_steps": failed, "extra": extra}
    run.finished_at = timezone.now()
