"""A task about a journey's dead message (``dead-delivery:journey:<id>:<day>``) names the journey, for
``accounts.task_sources``; tasks its rules made are named by ``automation.task_sources``, with the journey that
keeps the rule (``crm.rules.keeper_columns``)."""

from __future__ import annotations

from accounts.task_sources import TaskSource, admin_url, task_sources

from .models import CRMPlaybook, journeys_labelled


@task_sources.register("journey")
def journeys(tenant_id, pks: list[int]) -> dict[int, TaskSource]:
    rows = journeys_labelled(CRMPlaybook.objects.for_tenant(tenant_id).filter(pk__in=pks)).values_list("pk", "label")
    return {pk: TaskSource("CRM journey", label, admin_url("admin:crm_crmplaybook_change", pk)) for pk, label in rows}
