"""Tasks a rule made (``workflow:<id>``, the circuit breaker's ``workflow:<id>:failing``) name that rule, or the
SuccessPlay or journey that keeps it (``automation.managed``: each owner's ``columns`` name it in SQL, so naming
any number of rules, kept or free, is one query), for ``accounts.task_sources``."""

from __future__ import annotations

from accounts.task_sources import TaskSource, admin_url, task_sources

from .managed import owners
from .models import Workflow


@task_sources.register("workflow")
def rules(tenant_id, pks: list[int]) -> dict[int, TaskSource]:
    keepers = owners()
    slot = {owner.source: index for index, owner in enumerate(keepers)}
    annotations = {}
    for index, owner in enumerate(keepers):
        annotations[f"owner_{index}_id"], annotations[f"owner_{index}_name"] = owner.columns(tenant_id)
    found = {}
    for row in Workflow.objects.for_tenant(tenant_id).filter(pk__in=pks).values("pk", "name", "source", **annotations):
        index = slot.get(row["source"])
        ident = row[f"owner_{index}_id"] if index is not None else None
        if ident is not None:
            owner = keepers[index]
            url = admin_url(owner.admin_url_name, ident) if owner.admin_url_name else ""
            found[row["pk"]] = TaskSource(owner.kind, row[f"owner_{index}_name"], url)
        else:
            found[row["pk"]] = TaskSource("Rule", row["name"], admin_url("admin:automation_workflow_change", row["pk"]))
    return found
