"""A task about a SuccessPlay's dead message (``dead-delivery:successplay:<id>:<day>``) names the play, for
``accounts.task_sources``; tasks its rule made are named by ``automation.task_sources``, with the play that keeps
the rule (the owner ``playbooks.apps`` registers)."""

from __future__ import annotations

from accounts.task_sources import TaskSource, admin_url, task_sources

from .models import Playbook


@task_sources.register("successplay")
def plays(tenant_id, pks: list[int]) -> dict[int, TaskSource]:
    rows = Playbook.objects.for_tenant(tenant_id).filter(pk__in=pks).values_list("pk", "name")
    return {pk: TaskSource("SuccessPlay", name, admin_url("admin:playbooks_playbook_change", pk)) for pk, name in rows}
