"""A task about a journey's dead message (``dead-delivery:journey:<id>:<day>``) names the journey, for
``accounts.task_sources``; tasks its rules made are named by ``automation.task_sources``, with the journey that
keeps the rule (``owner_columns`` below)."""

from __future__ import annotations

from django.db.models import OuterRef, Q, Subquery

from accounts.task_sources import TaskSource, admin_url, task_sources
from automation.task_sources import register_owner_columns

from .models import CRMPlaybook, journeys_labelled
from .rules import SOURCE


@task_sources.register("journey")
def journeys(tenant_id, pks: list[int]) -> dict[int, TaskSource]:
    rows = journeys_labelled(CRMPlaybook.objects.for_tenant(tenant_id).filter(pk__in=pks)).values_list("pk", "label")
    return {pk: TaskSource("CRM journey", label, admin_url("admin:crm_crmplaybook_change", pk)) for pk, label in rows}


def _owner_columns(tenant_id):
    keeping = journeys_labelled(CRMPlaybook.objects.for_tenant(tenant_id).filter(
        Q(workflow_id=OuterRef("pk")) | Q(conversion_workflow_id=OuterRef("pk")))).order_by("pk")
    return Subquery(keeping.values("pk")[:1]), Subquery(keeping.values("label")[:1])


register_owner_columns(SOURCE, _owner_columns)
