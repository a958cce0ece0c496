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

from accounts.audit import audit_record, audit_snapshot
from accounts.models import Account, HealthScore, JourneyHistory
from automation import engine, rule_index
from automation.events import emit
from automation.models import Run, Workflow
from automation.services import workflow_delete, workflow_save, workflow_validate
from csplatform.conflicts import StateConflict

from .engine_hooks import RECORD_ACTION
from .evaluators import EVALUATORS, SettingsError, get_evaluator
from .evaluators.base import AffectedAccounts
from .executions import StartedExecution, executions_insert
from .models import Playbook, PlaybookExecution, PlaybookTrigger, PlaybookTriggerEvaluation, PlaybookType
from .selectors import SignalStore

log = logging.getLogger("playbooks")

FIRED_EVENT = "playbook_trigger_fired"


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
def playbook_trigger_save(*, tenant, playbook_type: str, changes: Any, actor=None) -> PlaybookTrigger:
    """Update one type's settings: keys given replace the saved ones, the others are kept. The change goes
    to the audit trail (seed 000: "an audit trail of all trigger configuration changes")."""
    evaluator = get_evaluator(playbook_type)
    changes, enabled = _split_enabled(changes)
    playbook_triggers_ensure(tenant)
    trigger = PlaybookTrigger.objects.for_tenant(tenant).select_for_update().get(playbook_type=playbook_type)
    before = audit_snapshot(trigger, fields=AUDITED_TRIGGER_FIELDS)
    trigger.trigger_config = evaluator.validate(changes, trigger.trigger_config)
    if enabled is not None:
        trigger.auto_trigger_enabled = enabled
    trigger.save(update_fields=["trigger_config", "auto_trigger_enabled", "updated_at"])
    playbook_trigger_audit(trigger, actor=actor, before=before)
    log.info("saved %s trigger settings of tenant %s", playbook_type, getattr(tenant, "pk", tenant))
    return trigger


AUDITED_TRIGGER_FIELDS = ("trigger_config", "auto_trigger_enabled")


def playbook_trigger_audit(trigger: PlaybookTrigger, *, actor, before: dict) -> None:
    """Record a settings change of ``trigger`` (the API and the admin both save through here)."""
    audit_record(tenant=trigger.tenant_id, actor=actor, action="update", obj=trigger, before=before,
                 after=audit_snapshot(trigger, fields=AUDITED_TRIGGER_FIELDS))


def playbook_trigger_test(*, tenant, playbook_type: str, changes: Any = None, now: datetime | None = None) -> dict:
    """Evaluate the saved settings overridden by ``changes``; nothing is saved, counted or started."""
    evaluator = get_evaluator(playbook_type)
    changes, _ = _split_enabled(changes if changes is not None else {})
    saved = PlaybookTrigger.objects.for_tenant(tenant).filter(playbook_type=playbook_type).first()
    config = evaluator.validate(changes, saved.trigger_config if saved else None)
    return evaluator.evaluate(tenant, config, now=now)


def playbook_triggers_evaluate_all(*, tenant, source: str = PlaybookExecution.Source.SCHEDULE, user=None,
                                   now: datetime | None = None) -> dict:
    """Evaluate every enabled trigger of ``tenant`` (seed 000's evaluate-all) in one transaction, under a lock
    on the enabled triggers' rows (taken in one order, so two concurrent runs queue instead of interleaving
    their counters and executions). The evaluators share the signal families' queries (``SignalStore``)."""
    now = now or timezone.now()
    playbook_triggers_ensure(tenant)
    results = []
    with transaction.atomic():
        triggers = list(PlaybookTrigger.objects.for_tenant(tenant).select_for_update()
                        .filter(auto_trigger_enabled=True).order_by("pk"))
        store = SignalStore()
        for trigger in sorted(triggers, key=lambda t: PlaybookType.values.index(t.playbook_type)):
            results.append(_evaluate_one(trigger, store=store, tenant=tenant, source=source, user=user, now=now))
        store.close()  # on an error the rollback drops them
    return {
        "evaluation_time": now,
        "results": results,
        "total_triggers_evaluated": len(results),
        "total_triggered": sum(1 for r in results if r["triggered"]),
    }


def _evaluate_one(trigger: PlaybookTrigger, *, store: SignalStore, tenant, source, user, now) -> dict:
    """Evaluate one locked trigger, start its executions, count and log it (the caller's transaction)."""
    started = time.monotonic()
    evaluator = EVALUATORS[trigger.playbook_type]
    config = evaluator.validate({}, trigger.trigger_config)
    result = evaluator.evaluate(tenant, config, now=now, store=store)
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


def _executions_start(trigger: PlaybookTrigger, affected: AffectedAccounts, *, source, user,
                      now) -> list[StartedExecution]:
    """One execution per affected account without an open one for this trigger (only those accounts' reasons
    are phrased). The partial unique constraint backs the check; the caller holds the trigger's row lock, so
    runs do not race."""
    if not affected:
        return []
    open_ids = set(PlaybookExecution.objects.for_tenant(trigger.tenant_id).filter(
        trigger=trigger, status__in=PlaybookExecution.OPEN_STATUSES).values_list("account_id", flat=True))
    starting = [affected[index] for index, row in enumerate(affected.rows) if row["id"] not in open_ids]
    if not starting:
        return []
    return executions_insert(trigger, starting, source=source, user=user, now=now)


def _emit_fired(trigger: PlaybookTrigger, executions: list[StartedExecution]) -> None:
    """``playbook_trigger_fired`` per new execution, only when a live automation rule listens."""
    if not executions:
        return
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
    execution keeps its status (its outcome may still be written down); changing a finished one's status is a
    ``StateConflict`` (a 409 on the API)."""
    execution = PlaybookExecution.objects.for_tenant(execution.tenant_id).select_for_update().get(pk=execution.pk)
    new_status = changes.get("status", execution.status)
    if execution.status in PlaybookExecution.CLOSED_STATUSES and new_status != execution.status:
        raise StateConflict({"status": f"The execution is already {execution.get_status_display().lower()}; "
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


# --- SuccessPlays (seed 004): a front door onto one automation rule ---------------------------------------

PLAYBOOK_FIELDS = ("name", "description", "is_active", "trigger_type", "trigger_config", "conditions", "webhook_url",
                   "actions", "cooldown_minutes")
MAX_COOLDOWN_MINUTES = 30 * 24 * 60
PLAYBOOK_SOURCE = "playbook"


class PlaybookCooldown(Exception):
    """A manual trigger inside the play's cooldown for the account (force it, with a reason, to override)."""

    def __init__(self, message: str, until=None):
        super().__init__(message)
        self.message, self.until = message, until


def _check_playbook_fields(playbook) -> None:
    from django.core.exceptions import ValidationError

    errors = {}
    if not isinstance(playbook.name, str) or not playbook.name.strip():
        errors["name"] = "is required"
    elif len(playbook.name) > 200:
        errors["name"] = "must be at most 200 characters"
    if not isinstance(playbook.is_active, bool):
        errors["is_active"] = "must be true or false"
    cooldown = playbook.cooldown_minutes
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or not 0 <= cooldown <= MAX_COOLDOWN_MINUTES:
        errors["cooldown_minutes"] = f"must be a whole number of minutes from 0 to {MAX_COOLDOWN_MINUTES}"
    if not isinstance(playbook.webhook_url, str):
        errors["webhook_url"] = "must be a URL or empty"
    if not isinstance(playbook.trigger_type, str) or not playbook.trigger_type:
        errors["trigger_type"] = "is required"
    if not isinstance(playbook.actions, list):
        errors["actions"] = "must be a list of {type, config}"
    else:
        for index, spec in enumerate(playbook.actions):
            if isinstance(spec, dict) and spec.get("type") == RECORD_ACTION:
                errors[f"actions[{index}].type"] = f"{RECORD_ACTION} is added by the SuccessPlay itself"
    if not errors and not playbook.webhook_url and not playbook.actions:
        errors["actions"] = "a SuccessPlay needs a webhook_url or at least one action"
    if errors:
        raise ValidationError(errors)


def _rule_data(playbook) -> dict:
    """The automation rule a SuccessPlay stands for."""
    steps = [{"type": "webhook", "config": {"url": playbook.webhook_url.strip(), "method": "POST"}}] \
        if playbook.webhook_url else []
    return {
        "name": playbook.name.strip(), "description": playbook.description or "",
        "status": Workflow.Status.ACTIVE if playbook.is_active else Workflow.Status.DRAFT, "enabled": True,
        "trigger_type": playbook.trigger_type, "model_type": "", "trigger_config": playbook.trigger_config or {},
        "conditions": playbook.conditions or {},
        "actions": [*steps, *playbook.actions, {"type": RECORD_ACTION, "config": {}}],
        "cooldown_minutes": playbook.cooldown_minutes or None, "continue_on_error": True, "allow_retries": False,
        "scope_all_accounts": True, "source": PLAYBOOK_SOURCE,
    }


def _playbook_error(exc, playbook):
    """Rule field names -> SuccessPlay field names (the webhook step is ``webhook_url``)."""
    import re

    from django.core.exceptions import ValidationError

    offset = 1 if playbook.webhook_url else 0
    errors = {}
    for key, messages in exc.message_dict.items():
        match = re.match(r"^actions\[(\d+)\](.*)$", key)
        if match:
            index = int(match.group(1))
            key = "webhook_url" if index < offset else f"actions[{index - offset}]{match.group(2)}"
        errors[key] = messages
    return ValidationError(errors)


def playbook_validate(*, playbook, data) -> Playbook:
    """Apply ``data`` to ``playbook`` in memory and validate it like the engine validates rules (every
    trigger, condition and action checked and normalised); raises ValidationError naming the field."""
    from django.core.exceptions import ValidationError

    unknown = sorted(set(data) - set(PLAYBOOK_FIELDS))
    if unknown:
        raise ValidationError({unknown[0]: f"unknown field; known: {', '.join(PLAYBOOK_FIELDS)}"})
    for name, value in data.items():
        setattr(playbook, name, value)
    _check_playbook_fields(playbook)
    clash = Playbook.objects.for_tenant(playbook.tenant_id).filter(name=playbook.name.strip())
    if playbook.pk:
        clash = clash.exclude(pk=playbook.pk)
    if clash.exists():
        raise ValidationError({"name": "A SuccessPlay with this name already exists."})
    rule = Workflow(tenant_id=playbook.tenant_id, pk=playbook.workflow_id) if playbook.workflow_id else \
        Workflow(tenant_id=playbook.tenant_id)
    try:
        workflow_validate(rule=rule, data=_rule_data(playbook))
    except ValidationError as exc:
        raise _playbook_error(exc, playbook) from None
    offset = 1 if playbook.webhook_url else 0
    playbook.name = playbook.name.strip()
    playbook.webhook_url = playbook.webhook_url.strip()
    playbook.trigger_config, playbook.conditions = rule.trigger_config, rule.conditions
    playbook.actions = rule.actions[offset:-1]
    return playbook


@transaction.atomic
def playbook_save(*, playbook, data, actor=None):
    """Create or update a SuccessPlay and the automation rule it stands for (through ``workflow_save``,
    so the rule is validated, audited and the tenant's rule index refreshed)."""
    playbook_validate(playbook=playbook, data=data)
    if playbook.workflow_id:
        rule = Workflow.objects.for_tenant(playbook.tenant_id).select_related("tenant").get(pk=playbook.workflow_id)
    else:
        rule = Workflow(tenant_id=playbook.tenant_id, created_by=actor)
    workflow_save(rule=rule, data=_rule_data(playbook), actor=actor)
    playbook.workflow = rule
    if playbook.pk is None and actor is not None:
        playbook.created_by = actor
    playbook.save()
    log.info("saved SuccessPlay %s of tenant %s (rule %s)", playbook.name, playbook.tenant_id, rule.pk)
    return playbook


def playbook_create_draft(*, tenant, data):
    """A validated inactive draft whose rule is compiled on its first save (tenant defaults)."""
    playbook = playbook_validate(playbook=Playbook(tenant=tenant), data={**data, "is_active": False})
    playbook.save()
    return playbook


def playbook_rule(playbook):
    """The play's automation rule, compiled now if the play is an untouched default draft."""
    if playbook.workflow_id is None:
        playbook_save(playbook=playbook, data={})
    return playbook.workflow


@transaction.atomic
def playbook_delete(*, playbook, actor=None) -> None:
    """Delete a SuccessPlay with its rule; its executions stay as history (``playbook`` emptied)."""
    if playbook.workflow_id is None:
        playbook.delete()
        return
    workflow_delete(rule=playbook.workflow, actor=actor)


def trigger_playbook_manually(playbook, account, reason: str = "", *, user=None, force: bool = False):
    """Seed 004's ``trigger_playbook_manually``: run the play for ``account`` now, through the engine
    (a manual Run: conditions are the caller's call, the play does not need to be active). The cooldown
    applies unless ``force`` (which needs a ``reason``). Returns the ``PlaybookExecution``; raises
    ``PlaybookCooldown`` or ValidationError."""
    from django.core.exceptions import ValidationError

    reason = (reason or "").strip() if isinstance(reason, str) else reason
    if not isinstance(reason, str):
        raise ValidationError({"reason": "must be a text"})
    if force and not reason:
        raise ValidationError({"reason": "is required to force a play past its cooldown"})
    if len(reason) > 2000:
        raise ValidationError({"reason": "must be at most 2000 characters"})
    if account.tenant_id != playbook.tenant_id:
        raise ValidationError({"account_id": "no such account in this tenant"})
    who = user.email if user is not None and getattr(user, "pk", None) else "automation"
    with transaction.atomic():
        playbook_rule(playbook)
        # The engine checks limits under this lock too, so two CSMs clicking at once fire once.
        rule = Workflow.objects.select_related("tenant").select_for_update(of=("self",)).get(pk=playbook.workflow_id)
        if not force and engine.limit_reason(rule, account):
            until = engine.cooldown_until(rule, account)
            when = f" until {until:%Y-%m-%d %H:%M} UTC" if until else ""
            raise PlaybookCooldown(f"'{playbook.name}' ran for {account.name} less than {rule.cooldown_minutes} "
                                   f"minutes ago: it is cooling down{when}. Force it with a reason to run it now.",
                                   until)
        text = reason or f"Triggered manually by {who}"
        if force:
            text = f"{text} (cooldown overridden by {who})"
        run = engine.fire(rule, subject=account, account=account, manual=True, conditions_checked=True, extra={
            "playbook_manual": True, "playbook_reason": text, "playbook_forced": bool(force),
            "playbook_started_by": user.pk if user is not None and getattr(user, "pk", None) else None,
        }, trigger_data={"type": "manual_trigger", "payload": {"reason": text, "forced": bool(force), "by": who}})
        execution = PlaybookExecution.objects.for_tenant(playbook.tenant_id).filter(run=run).first()
        if execution is None:
            raise ValidationError({"non_field_errors": f"the play did not run: {run.error or run.skip_reason or run.status}"})
    log.info("SuccessPlay %s triggered manually for %s by %s (forced=%s, run %s)", playbook.pk, account.pk, who,
             force, run.pk)
    if run.status == Run.Status.FAILED:
        log.warning("SuccessPlay %s run %s failed: %s", playbook.pk, run.pk, run.error)
    return execution


def playbook_catch_up(playbook) -> list:
    """Fire a live play for the accounts that are already in its trigger state (score below its threshold,
    in its target stage) and never ran it: what happens when a play is switched on after the fact (the
    demo). Each goes through the engine like the live event would (conditions, cooldown, Run, delivery),
    with the same trigger data. Other trigger types have nothing to catch up on."""
    if playbook.workflow_id is None:
        return []  # an untouched draft
    rule = Workflow.objects.for_tenant(playbook.tenant_id).select_related("tenant").get(pk=playbook.workflow_id)
    if not rule.is_live:
        return []
    config = rule.trigger_config or {}
    accounts = Account.objects.for_tenant(playbook.tenant_id).exclude(
        pk__in=PlaybookExecution.objects.for_tenant(playbook.tenant_id).filter(playbook=playbook).values("account_id"))
    found = []
    if rule.trigger_type == "health_score_change" and config.get("threshold") is not None \
            and config.get("direction") in ("decrease", "both"):
        for account in accounts.filter(health_score__lt=config["threshold"]).order_by("name"):
            score = HealthScore.objects.for_tenant(playbook.tenant_id).filter(account=account).order_by(
                "-calculated_at", "-id").first()
            if score is not None:
                found.append((account, {"type": "health_score_change", "payload": {
                    "current_score": float(score.overall_score),
                    "previous_score": float(score.previous_score) if score.previous_score is not None else None,
                    "risk_level": score.risk_level, "health_score_id": score.pk, "catch_up": True}}))
    elif rule.trigger_type == "stage_change" and config.get("to_stage"):
        for account in accounts.filter(current_stage__name__iexact=config["to_stage"]).order_by("name"):
            entry = JourneyHistory.objects.for_tenant(playbook.tenant_id).filter(account=account).select_related(
                "stage", "from_stage").order_by("-entered_at", "-id").first()
            found.append((account, {"type": "stage_change", "payload": {
                "from_stage": entry.from_stage.name if entry and entry.from_stage else None,
                "to_stage": account.current_stage.name, "catch_up": True}}))
    runs = []
    for account, trigger_data in found:
        with transaction.atomic():
            runs.append(engine.fire(rule, subject=account, account=account, trigger_data=trigger_data))
    return runs
