"""Actions on the flow of rules: run another rule now."""

from __future__ import annotations

from csplatform import json_schema as js

from ..models import Workflow
from ..triggers import ConfigError
from .base import Action, ActionError, check_json_templates, register, render_json


@register
class TriggerWorkflow(Action):
    """Runs another rule of the tenant now, one level deeper (cycles are refused when rules are saved).
    ``context`` (seed 003, may use {{ }}): rendered and given to that run as its custom data."""

    type = "trigger_workflow"
    required = ("workflow_id",)
    known = ("context",)
    settings_schema = {"workflow_id": js.integer(minimum=1, description="The id of the rule to run."),
                       "context": js.json_object()}

    def validate_config(self, config):
        config = super().validate_config(config)
        target = config["workflow_id"]
        if isinstance(target, bool) or not (isinstance(target, int) or (isinstance(target, str) and target.isascii() and target.isdigit())):
            raise ConfigError("workflow_id", "must be a rule's id")
        config["workflow_id"] = int(target)
        if not isinstance(config.get("context", {}), dict):
            raise ConfigError("context", "must be an object")
        check_json_templates(config.get("context") or {}, "context")
        return config

    def check_for_rule(self, config, rule):
        if not Workflow.objects.for_tenant(rule.tenant_id).filter(pk=config["workflow_id"]).exists():
            raise ConfigError("workflow_id", f"rule {config['workflow_id']} does not exist in this tenant")

    def run(self, config, ctx):
        target = Workflow.objects.for_tenant(ctx.tenant).filter(pk=config["workflow_id"]).first()
        if target is None:
            raise ActionError(f"workflow {config['workflow_id']} does not exist")
        if ctx.fire is None:
            raise ActionError("trigger_workflow runs only inside the engine")
        context = render_json(config.get("context") or {}, ctx)
        run = ctx.fire(target, event=ctx.run.event, subject=ctx.subject, account=ctx.account, depth=ctx.run.depth + 1,
                       manual=True, extra={**ctx.extra, **context}, batch=ctx.batch)
        return {"run_id": run.pk, "status": run.status}
