"""Celery tasks: thin, ids in, service call."""

from celery import shared_task

from accounts.models import Tenant

from . import scheduler, triggers


@shared_task(name="crm.tasks.execute_pending_steps_task", ignore_result=True)
def execute_pending_steps_task() -> dict:
    return scheduler.execute_pending_steps()


@shared_task(name="crm.tasks.run_execution_steps", ignore_result=True)
def run_execution_steps(tenant_id: str, execution_id: int) -> dict:
    """Run the due steps of one just-started execution (its first step "at once")."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return {}
    return scheduler.execute_pending_steps(tenant=tenant, execution_ids=[execution_id])


@shared_task(name="crm.tasks.daily_triggers_task", ignore_result=True)
def daily_triggers_task() -> dict:
    return triggers.daily_scan()
