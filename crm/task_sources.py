"""A task about a journey's dead message (``dead-delivery:journey:<id>:<day>``) names the journey, for
``accounts.task_sources``; tasks its rules made are named by ``automation.task_sources``."""

from __future__ import annotations

from accounts.task_sources import TaskSource, admin_url, task_sources

from .models import CRMPlaybook


@task_sources.register("journey")
def journey(tenant_id, pk: int) -> TaskSource | None:
    found = CRMPlaybook.objects.for_tenant(tenant_id).filter(pk=pk).values_list("pk", "title", "name").first()
    if found is None:
        return None
    return TaskSource("CRM journey", found[1] or found[2], admin_url("admin:crm_crmplaybook_change", found[0]))
