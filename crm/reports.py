"""What the CRM tells the rest of the platform about its journeys' results (registered in ``CrmConfig.ready``)."""

from __future__ import annotations

from .models import CRMPlaybookExecution, CRMStepExecution


def converted_messages(tenant_id, message_ids: list[str]) -> set[str]:
    """Of these outbox messages, those a journey step sent whose execution converted (delivery's A/B results)."""
    if not message_ids:
        return set()
    return set(CRMStepExecution.objects.for_tenant(tenant_id)
               .filter(outbox_message_id__in=message_ids, execution__status=CRMPlaybookExecution.Status.CONVERTED)
               .values_list("outbox_message_id", flat=True))
