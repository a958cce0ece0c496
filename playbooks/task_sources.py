"""A task about a SuccessPlay's dead message (``dead-delivery:successplay:<id>:<day>``) names the play, for
``accounts.task_sources``; tasks its rule made are named by ``automation.task_sources``."""

from __future__ import annotations

from accounts.task_sources import TaskSource, admin_url, task_sources

from .models import Playbook


@task_sources.register("successplay")
def play(tenant_id, pk: int) -> TaskSource | None:
    found = Playbook.objects.for_tenant(tenant_id).filter(pk=pk).values_list("pk", "name").first()
    if found is None:
        return None
    return TaskSource("SuccessPlay", found[1], admin_url("admin:playbooks_playbook_change", found[0]))
