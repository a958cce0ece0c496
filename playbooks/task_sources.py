"""A task about a SuccessPlay's dead message (``dead-delivery:successplay:<id>:<day>``) names the play, for
``accounts.task_sources``; tasks its rule made are named by ``automation.task_sources``, with the play that keeps
the rule (``owner_columns`` below)."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery

from accounts.task_sources import TaskSource, admin_url, task_sources
from automation.task_sources import register_owner_columns

from .models import Playbook
from .services import PLAYBOOK_SOURCE


@task_sources.register("successplay")
def plays(tenant_id, pks: list[int]) -> dict[int, TaskSource]:
    rows = Playbook.objects.for_tenant(tenant_id).filter(pk__in=pks).values_list("pk", "name")
    return {pk: TaskSource("SuccessPlay", name, admin_url("admin:playbooks_playbook_change", pk)) for pk, name in rows}


def _owner_columns(tenant_id):
    keeping = Playbook.objects.for_tenant(tenant_id).filter(workflow_id=OuterRef("pk")).order_by("pk")
    return Subquery(keeping.values("pk")[:1]), Subquery(keeping.values("name")[:1])


register_owner_columns(PLAYBOOK_SOURCE, _owner_columns)
