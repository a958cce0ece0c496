"""Actions on the flow of rules: run another rule now."""

from __future__ import annotations

from ..models import Workflow
from .base import Action, ActionError, register


@register
class TriggerWorkflow(Action):
    """Runs another rule of the tenant now, one level deeper (cycles are refused when rules are saved)."""

    type = "trigger_workflow"
    required = ("workflow_id",)

    def run(self, config, ctx):
        target = Workflow.objects.for_tenant(ctx.tenant).filter(pk=config["workflow_id"]).first()
        if target is None:
            raise ActionError(f"workflow {config['workflow_id']} does not exist")
        if ctx.fire is None:
            raise ActionError("trigger_workflow runs only inside the engine")
        run = ctx.fire(target, event=ctx.run.event, subject=ctx.subject, account=ctx.account, depth=ctx.run.depth + 1,
                   manual=True, extra={**ctx.extra, **(config.get("context") or {})}, batch=ctx.batch)
        return {"run_id": run.pk, "status": run.status}
