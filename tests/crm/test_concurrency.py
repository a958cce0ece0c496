"""Concurrency on PostgreSQL: real threads, real transactions, real row locks."""

import datetime
import threading

import pytest
from django.core import mail
from django.db import connection

from accounts.models import Tenant
from delivery.models import Outbox
from crm.models import CRMPlaybookExecution, CRMStepExecution
from crm.scheduler import execute_pending_steps
from crm.services import JourneyRefused, start_journey
from csplatform.tenancy import tenant_context
from tests.factories import AccountFactory, ContactFactory, TenantFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


def _in_threads(count, work):
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run(index):
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            results.append(work(index))
        except Exception as exc:  # collected and asserted on by the test
            errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_it_starts_one_execution_when_two_starts_race():
    tenant = TenantFactory()
    contact = ContactFactory(account=AccountFactory(tenant=tenant))
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)

    def start(index):
        from django.db import transaction

        with tenant_context(Tenant.objects.get(pk=tenant.pk)), transaction.atomic():
            return start_journey(contact, "payment_failed_rescue", now=later).pk

    started, refused = _in_threads(4, start)
    assert len(started) == 1
    assert len(refused) == 3 and all(isinstance(e, JourneyRefused) and e.reason == "already_active" for e in refused)
    assert {e.execution.pk for e in refused} == set(started)
    assert CRMPlaybookExecution.objects.filter(status="active").count() == 1


def test_it_sends_each_step_once_when_two_schedulers_race():
    tenant = TenantFactory()
    account = AccountFactory(tenant=tenant)
    # Due in the future (by the real clock), so nothing runs until the schedulers do.
    due = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    with tenant_context(tenant):
        executions = [start_journey(ContactFactory(account=account), "churn_risk", now=due) for _ in range(30)]
    mail.outbox.clear()

    results, errors = _in_threads(3, lambda index: execute_pending_steps(now=due, batch_size=4))
    assert not errors
    assert sum(r.get("sent", 0) for r in results) == 30
    rows = CRMStepExecution.objects.filter(execution__in=[e.pk for e in executions])
    first = rows.filter(step_order=0)
    assert first.count() == 30 and set(first.values_list("status", flat=True)) == {"sent"}
    assert rows.filter(step_order=1, status="scheduled").count() == 30  # the owner step, 48 h later
    messages = Outbox.objects.filter(tenant=tenant)
    assert messages.count() == 30
    assert len(set(messages.values_list("idempotency_key", flat=True))) == 30
    # delivered after commit through the outbox, each exactly once
    assert sorted(m.to[0] for m in mail.outbox) == sorted(e.contact.email for e in executions)
