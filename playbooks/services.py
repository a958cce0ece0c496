"""Writes and business rules of the playbook trigger settings (seed 000).

* ``playbook_triggers_ensure(tenant)``: the five settings rows, created disabled with the defaults;
* ``playbook_trigger_save(...)``: a partial update of one type's thresholds (+ auto_trigger_enabled);
* ``playbook_trigger_test(...)``: evaluate thresholds without saving or counting anything;
* ``playbook_triggers_evaluate_all(...)``: every enabled trigger of a tenant, with counters, an
  evaluation log row, one ``PlaybookExecution`` per newly affected account and, when an automation
  rule listens, one ``playbook_trigger_fired`` event per execution (SuccessPlays can react to it).

Every function works on one tenant and expects to run in its tenancy context (API requests do;
the ``evaluate_playbook_triggers`` command enters it per tenant).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Account

from .evaluators import EVALUATORS, SettingsError, get_evaluator
from .models import PlaybookExecution, PlaybookTrigger, PlaybookTriggerEvaluation, PlaybookType

log = logging.getLogger("playbooks")

FIRED_EVENT = "playbook_trigger_fired"
EXECUTION_BATCH = 2000


def playbook_trigger_validate_config(playbook_type: str, config: Any, base: dict | None = None) -> dict:
    """The complete config of ``playbook_type``: ``base`` (or the defaults) updated with ``config``.
    Raises ``SettingsError`` naming the offending keys."""
    return get_evaluator(playbook_type).validate(config, base)


def playbook_trigger_defaults() -> dict[str, dict]:
    return {playbook_type: evaluator.defaults() for playbook_type, evaluator in EVALUATORS.items()}


def playbook_triggers_ensure(tenant) -> dict[str, PlaybookTrigger]:
    """The tenant's five trigger settings by type; missing ones are created disabled with the defaults
    (idempotent and safe under concurrency: a unique constraint backs it)."""
    found = {t.playbook_type: t for t in PlaybookTrigger.objects.for_tenant(tenant)}
    missing = [playbook_type for playbook_type in PlaybookType.values if playbook_type not in found]
    if missing:
        PlaybookTrigger.objects.bulk_create(
            [PlaybookTrigger(tenant_id=getattr(tenant, "pk", tenant), playbook_type=playbook_type,
                             trigger_config=EVALUATORS[playbook_type].defaults(), auto_trigger_enabled=False)
             for playbook_type in missing],
            ignore_conflicts=True,
        )
        found = {t.playbook_type: t for t in PlaybookTrigger.objects.for_tenant(tenant)}
    return {playbook_type: found[playbook_type] for playbook_type in PlaybookType.values}


def _split_enabled(changes: Any) -> tuple[dict, bool | None]:
    if not isinstance(changes, dict):
        raise SettingsError({"triggers": ["must be an object of settings"]})
    changes = dict(changes)
    enabled = changes.pop("auto_trigger_enabled", None)
    if enabled is not None and not isinstance(enabled, bool):
        raise SettingsError({"auto_trigger_enabled": ["must be true or false"]})
    return changes, enabled


@transaction.atomic
def playbook_trigger_save(*, tenant, playbook_type: str, changes: Any) -> PlaybookTrigger:
    """Update one type's settings: keys given replace the saved ones, the others are kept."""
    evaluator = get_evaluator(playbook_type)
    changes, enabled = _split_enabled(changes)
    playbook_triggers_ensure(tenant)
    trigger = PlaybookTrigger.objects.for_tenant(tenant).select_for_update().get(playbook_type=playbook_type)
    trigger.trigger_config = evaluator.validate(changes, trigger.trigger_config)
    if enabled is not None:
        trigger.auto_trigger_enabled = enabled
    trigger.save(update_fields=["trigger_config", "auto_trigger_enabled", "updated_at"])
    log.info("saved %s trigger settings of tenant %s", playbook_type, getattr(tenant, "pk", tenant))
    return trigger


def playbook_trigger_test(*, tenant, playbook_type: str, changes: Any = None, now: datetime | None = None) -> dict:
    """Evaluate the saved settings overridden by ``changes``; nothing is saved, counted or started."""
    evaluator = get_evaluator(playbook_type)
    changes, _ = _split_enabled(changes if changes is not None else {})
    saved = PlaybookTrigger.objects.for_tenant(tenant).filter(playbook_type=playbook_type).first()
    config = evaluator.validate(changes, saved.trigger_config if saved else None)
    return evaluator.evaluate(tenant, config, now=now)


def playbook_triggers_evaluate_all(*, tenant, source: str = PlaybookExecution.Source.SCHEDULE, user=None,
                                   now: datetime | None = None) -> dict:
    """Evaluate every enabled trigger of ``tenant`` (seed 000's evaluate-all). Each trigger is
    evaluated in its own transaction under a lock on its row, so two concurrent runs do not
    interleave their counters and executions."""
    now = now or timezone.now()
    triggers = playbook_triggers_ensure(tenant)
    results = []
    for playbook_type, trigger in triggers.items():
        if not trigger.auto_trigger_enabled:
            continue
        result = _evaluate_one(trigger.pk, tenant=tenant, source=source, user=user, now=now)
        if result is not None:
            results.append(result)
    return {
        "evaluation_time": now,
        "results": results,
        "total_triggers_evaluated": len(results),
        "total_triggered": sum(1 for r in results if r["triggered"]),
    }


@transaction.atomic
def _evaluate_one(trigger_id, *, tenant, source, user, now) -> dict | None:
    trigger = PlaybookTrigger.objects.for_tenant(tenant).select_for_update().filter(pk=trigger_id).first()
    if trigger is None or not trigger.auto_trigger_enabled:
        return None  # disabled meanwhile
    started = time.monotonic()
    evaluator = EVALUATORS[trigger.playbook_type]
    config = evaluator.validate({}, trigger.trigger_config)
    result = evaluator.evaluate(tenant, config, now=now)
    created = _executions_start(trigger, result["affected_accounts"], source=source, user=user, now=now)
    trigger.last_evaluated = now
    update = ["last_evaluated"]
    if result["triggered"]:
        trigger.last_triggered = now
        trigger.trigger_count = F("trigger_count") + 1
        update += ["last_triggered", "trigger_count"]
    trigger.save(update_fields=update)
    trigger.refresh_from_db(fields=["trigger_count"])
    summary = result["details"]["summary"]
    PlaybookTriggerEvaluation.objects.create(
        tenant_id=trigger.tenant_id, trigger=trigger, evaluated_at=now, triggered=result["triggered"],
        accounts_evaluated=summary["accounts_evaluated"], accounts_affected=len(result["affected_accounts"]),
        executions_created=len(created), duration_ms=int((time.monotonic() - started) * 1000), source=source,
        started_by=user, message=result["message"][:255], config=config,
    )
    _emit_fired(trigger, created)
    log.info("evaluated %s triggers of tenant %s: %s (%d executions started)", trigger.playbook_type,
             trigger.tenant_id, result["message"], len(created))
    return {
        "playbook_type": trigger.playbook_type,
        "triggered": result["triggered"],
        "message": result["message"],
        "details": result["details"],
        "affected_accounts": result["affected_accounts"],
        "executions_created": len(created),
        "trigger_count": trigger.trigger_count,
    }


def _executions_start(trigger: PlaybookTrigger, affected: list[dict], *, source, user, now) -> list[PlaybookExecution]:
    """One execution per affected account without an open one for this trigger. The partial unique
    constraint backs the check; the caller holds the trigger's row lock, so runs do not race."""
    if not affected:
        return []
    open_ids = {str(pk) for pk in PlaybookExecution.objects.for_tenant(trigger.tenant_id).filter(
        trigger=trigger, status__in=PlaybookExecution.OPEN_STATUSES).values_list("account_id", flat=True)}
    rows = [
        PlaybookExecution(
            tenant_id=trigger.tenant_id, trigger=trigger, playbook_type=trigger.playbook_type,
            account_id=account["account_id"], reason="; ".join(account["triggers"]), reasons=account["triggers"],
            metrics=account.get("metrics", {}), status=PlaybookExecution.Status.TRIGGERED, source=source,
            started_by=user, started_at=now,
        )
        for account in affected if account["account_id"] not in open_ids
    ]
    return PlaybookExecution.objects.bulk_create(rows, batch_size=EXECUTION_BATCH)


def _emit_fired(trigger: PlaybookTrigger, executions: list[PlaybookExecution]) -> None:
    """``playbook_trigger_fired`` per new execution, only when a live automation rule listens."""
    if not executions:
        return
    from automation import rule_index
    from automation.events import emit

    if not rule_index.interested(trigger.tenant_id, FIRED_EVENT, "account"):
        return
    for execution in executions:
        emit(
            tenant_id=trigger.tenant_id, type=FIRED_EVENT, object_id=execution.account_id,
            account=Account(pk=execution.account_id, tenant_id=trigger.tenant_id),
            payload={
                "playbook_type": trigger.playbook_type, "trigger_id": trigger.pk, "execution_id": execution.pk,
                "reasons": execution.reasons, "metrics": execution.metrics,
            },
        )


@transaction.atomic
def playbook_execution_update(*, execution: PlaybookExecution, changes: dict) -> PlaybookExecution:
    """Move an open execution along (status, outcome); finishing it stamps ``finished_at``. A finished
    execution keeps its status (its outcome may still be written down)."""
    from django.core.exceptions import ValidationError

    execution = PlaybookExecution.objects.for_tenant(execution.tenant_id).select_for_update().get(pk=execution.pk)
    new_status = changes.get("status", execution.status)
    if execution.status in PlaybookExecution.CLOSED_STATUSES and new_status != execution.status:
        raise ValidationError({"status": f"The execution is already {execution.get_status_display().lower()}; "
                                         "it cannot be reopened or changed."})
    for field, value in changes.items():
        setattr(execution, field, value)
    if execution.status in PlaybookExecution.CLOSED_STATUSES and execution.finished_at is None:
        execution.finished_at = timezone.now()
    if execution.status in PlaybookExecution.OPEN_STATUSES:
        execution.finished_at = None
    execution.clean()
    execution.save()
    return execution
