"""A rule's messages are about the account of the run that wrote them (``Outbox.run_id``), for
``delivery.message_accounts``."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Q

from delivery.message_accounts import MessageAccounts, message_accounts

from .models import Run


class RunMessages(MessageAccounts):
    def accounts_of(self, messages):
        runs_by_tenant = defaultdict(set)
        for message in messages:
            if message.run_id:
                runs_by_tenant[message.tenant_id].add(message.run_id)
        account_of_run = {}
        for tenant_id, run_ids in runs_by_tenant.items():
            runs = Run.objects.for_tenant(tenant_id).filter(pk__in=run_ids, account__isnull=False)
            account_of_run.update((run.pk, run.account) for run in runs.select_related("account"))
        return {m.pk: account_of_run[m.run_id] for m in messages if m.run_id in account_of_run}

    def about(self, accounts):
        return Q(run_id__in=Run.objects.filter(account__in=accounts).values("pk"))


message_accounts.register("automation")(RunMessages())
