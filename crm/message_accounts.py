"""A journey step's message is about the account of the journey's execution (the step records the message's
``message_id``), for ``delivery.message_accounts``."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Q

from delivery.message_accounts import MessageAccounts, message_accounts

from .models import CRMStepExecution


class JourneyMessages(MessageAccounts):
    def accounts_of(self, messages):
        ids_by_tenant = defaultdict(set)
        for message in messages:
            if message.idempotency_key.startswith("crm:"):
                ids_by_tenant[message.tenant_id].add(message.message_id)
        account_of_message = {}
        for tenant_id, message_ids in ids_by_tenant.items():
            steps = (CRMStepExecution.objects.for_tenant(tenant_id).filter(outbox_message_id__in=message_ids)
                     .select_related("execution__account"))
            account_of_message.update((step.outbox_message_id, step.execution.account) for step in steps)
        return {m.pk: account_of_message[m.message_id] for m in messages if m.message_id in account_of_message}

    def about(self, accounts):
        return Q(message_id__in=CRMStepExecution.objects.filter(execution__account__in=accounts)
                 .exclude(outbox_message_id="").values("outbox_message_id"))


message_accounts.register("crm")(JourneyMessages())
