"""Tasks a rule made (``workflow:<id>``, the circuit breaker's ``workflow:<id>:failing``) name that rule, or the
SuccessPlay or journey that keeps it (``automation.managed``), for ``accounts.task_sources``."""

from __future__ import annotations

from accounts.task_sources import TaskSource, admin_url, task_sources

from .managed import owner_of
from .models import Workflow


@task_sources.register("workflow")
def rule(tenant_id, pk: int) -> TaskSource | None:
    found = Workflow.objects.for_tenant(tenant_id).filter(pk=pk).first()
    if found is None:
        return None
    owner = owner_of(found)
    kept_by = owner.locate(found) if owner is not None else None
    if kept_by is not None:
        ident, name = kept_by
        return TaskSource(owner.kind, name, admin_url(owner.admin_url_name, ident) if owner.admin_url_name else "")
    return TaskSource("Rule", found.name, admin_url("admin:automation_workflow_change", found.pk))
