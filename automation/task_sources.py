"""Tasks a rule made (``workflow:<id>``, the circuit breaker's ``workflow:<id>:failing``) name that rule, or the
SuccessPlay or journey that keeps it (``automation.managed``), for ``accounts.task_sources``.

The apps that keep rules say what their rule's owner is called with ``owner_columns`` (from their own
``task_sources`` module): subqueries on the rule's id, so naming any number of rules, kept or free, is one query.
"""

from __future__ import annotations

from typing import Callable

from django.db.models import Expression

from accounts.task_sources import TaskSource, admin_url, task_sources

from .managed import owner_of
from .models import Workflow

#: Workflow.source of kept rules -> (tenant_id) -> (owner id, owner name): expressions over ``OuterRef("pk")``.
owner_columns: dict[str, Callable[[object], tuple[Expression, Expression]]] = {}


def register_owner_columns(source: str, columns: Callable[[object], tuple[Expression, Expression]]) -> None:
    owner_columns[source] = columns


@task_sources.register("workflow")
def rules(tenant_id, pks: list[int]) -> dict[int, TaskSource]:
    annotations = {}
    for index, columns in enumerate(owner_columns.values()):
        annotations[f"owner_{index}_id"], annotations[f"owner_{index}_name"] = columns(tenant_id)
    found = {}
    for row in Workflow.objects.for_tenant(tenant_id).filter(pk__in=pks).values("pk", "name", "source", **annotations):
        owner = owner_of(Workflow(source=row["source"]))
        index = list(owner_columns).index(row["source"]) if row["source"] in owner_columns else None
        ident = row[f"owner_{index}_id"] if index is not None else None
        if owner is not None and ident is not None:
            url = admin_url(owner.admin_url_name, ident) if owner.admin_url_name else ""
            found[row["pk"]] = TaskSource(owner.kind, row[f"owner_{index}_name"], url)
        else:
            found[row["pk"]] = TaskSource("Rule", row["name"], admin_url("admin:automation_workflow_change", row["pk"]))
    return found
