"""What playbooks registers into the automation engine (``automation`` never imports ``playbooks``).

* trigger ``playbook_trigger``: a PlaybookTrigger type fired (the ``playbook_trigger_fired`` event that
  evaluate-all emits), optionally only for some types: ``{"playbook_types": ["voc", "sla"]}``;
* action ``record_playbook_execution``: the last action of every SuccessPlay's rule. It writes the
  ``PlaybookExecution`` of the firing (account, reason, who started it, the engine Run, and the
  outcome of the play's other actions, which have run before it in the same Run).

Registered from ``PlaybooksConfig.ready``.
"""

from __future__ import annotations

from django.utils import timezone

from accounts.models.customers import RiskLevel
from automation.actions import Action, ActionContext, ActionError, actions
from automation.models import RunStep
from automation.triggers import ConfigError, Trigger, triggers
from csplatform import json_schema as js

from .models import Playbook, PlaybookExecution, PlaybookType

FIRED_EVENT = "playbook_trigger_fired"
RECORD_ACTION = "record_playbook_execution"
PLAYBOOK_TRIGGER = "playbook_trigger"
MANUAL_TRIGGER = "manual_trigger"


class PlaybookTriggerFired(Trigger):
    """A playbook trigger setting (voc, activation, sla, renewal, expansion) started an execution."""

    type = PLAYBOOK_TRIGGER
    event_types = (FIRED_EVENT,)
    settings = {"playbook_types": js.many(js.enum(PlaybookType.values), description="Empty = any type.")}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        types = config.get("playbook_types") or []
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or any(t not in PlaybookType.values for t in types):
            raise ConfigError("playbook_types", f"must be a list of {', '.join(PlaybookType.values)} (empty = any)")
        config["playbook_types"] = types
        return config, ""

    def listens_to(self, config, model_type):
        return [(FIRED_EVENT, "account")]

    def matches(self, config, model_type, event):
        types = config.get("playbook_types") or []
        return event.type == FIRED_EVENT and (not types or event.payload.get("playbook_type") in types)


def _num(value) -> str:
    if value is None:
        return "none"
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def describe_trigger(trigger_data: dict, rule) -> str:
    """Why the play fired, readable by a CSM, from what the engine recorded on the Run."""
    kind = (trigger_data or {}).get("type") or ""
    payload = (trigger_data or {}).get("payload") or {}
    if kind == "health_score_change":
        current, previous = payload.get("current_score"), payload.get("previous_score")
        try:
            risk = RiskLevel(payload.get("risk_level")).label
        except ValueError:
            risk = payload.get("risk_level") or ""
        threshold = (rule.trigger_config or {}).get("threshold")
        text = (f"Health score dropped from {_num(previous)} to {_num(current)}" if previous is not None
                else f"Health score recorded at {_num(current)}")
        if threshold is not None:
            text += f" (below {_num(threshold)})"
        return text + (f", risk level {risk}" if risk else "")
    if kind == "stage_change":
        return f"Journey stage moved from {payload.get('from_stage') or 'none'} to {payload.get('to_stage')}"
    if kind == "status_change":
        return f"Status changed from {payload.get('from_status') or 'none'} to {payload.get('to_status')}"
    if kind == FIRED_EVENT:
        try:
            label = PlaybookType(payload.get("playbook_type")).label
        except ValueError:
            label = payload.get("playbook_type") or "A playbook trigger"
        reasons = payload.get("reasons") or []
        return f"{label} fired" + (f": {'; '.join(reasons)}" if reasons else "")
    if kind == "catch_up":
        return payload.get("reason") or "Already in the trigger state when the play was enabled"
    if kind:
        return f"{kind.replace('_', ' ')} event"
    return "Started by the automation engine"


class RecordPlaybookExecution(Action):
    """Writes the SuccessPlay's ``PlaybookExecution`` for this Run (added by ``playbook_save``, never by hand)."""

    type = RECORD_ACTION
    needs_account = True

    def validate_config(self, config):
        if config:
            raise ConfigError(next(iter(config)), "record_playbook_execution takes no settings")
        return {}

    def run(self, config, ctx: ActionContext):
        play = Playbook.objects.for_tenant(ctx.tenant).filter(workflow_id=ctx.workflow.pk).first()
        if play is None:
            raise ActionError("record_playbook_execution: this rule is not a SuccessPlay")
        if ctx.account is None:
            raise ActionError("record_playbook_execution: the event has no account")
        run = ctx.run
        steps = [s for s in ctx.steps if s.position < (ctx.position or 0)]
        failed = [s for s in steps if s.status == RunStep.Status.FAILED]
        outcome = "; ".join(_step_outcome(s) for s in steps) or "Nothing to do"
        manual = bool(ctx.extra.get("playbook_manual"))
        reason = ctx.extra.get("playbook_reason") or describe_trigger(run.trigger_data, ctx.workflow)
        payload = (run.trigger_data or {}).get("payload") or {}
        execution = PlaybookExecution.objects.create(
            tenant=ctx.tenant, playbook=play, account=ctx.account, reason=reason, reasons=[reason],
            metrics=payload.get("metrics") or {},
            playbook_type=(payload.get("playbook_type") or "") if (run.trigger_data or {}).get("type") == FIRED_EVENT
            else "",
            status=PlaybookExecution.Status.FAILED if failed else PlaybookExecution.Status.COMPLETED,
            source=PlaybookExecution.Source.MANUAL if manual else PlaybookExecution.Source.EVENT,
            started_by_id=ctx.extra.get("playbook_started_by") if manual else None,
            started_at=run.started_at or timezone.now(), finished_at=timezone.now(), outcome=outcome, run=run,
            forced=bool(ctx.extra.get("playbook_forced")),
        )
        return {"execution_id": execution.pk, "status": execution.status}


def _step_outcome(step) -> str:
    if step.status != "success":
        return f"{step.action_type} failed: {step.error}"
    out = step.output or {}
    if step.action_type == "webhook":
        return f"webhook queued for {out.get('url', '')}"
    if step.action_type == "create_task":
        return f"task #{out.get('task_id')} {'created' if out.get('created') else 'updated'}"
    if step.action_type == "send_email":
        return f"{len(out.get('messages') or [])} email(s) queued"
    if step.action_type == "add_to_cadence":
        return f"journey {out.get('journey')} started" if not out.get("already_active") else \
            f"journey {out.get('journey')} already active"
    return f"{step.action_type} done"


_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    triggers.register(PLAYBOOK_TRIGGER)(PlaybookTriggerFired())
    actions.register(RECORD_ACTION)(RecordPlaybookExecution())
    _registered = True
