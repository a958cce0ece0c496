"""Delivery in batches: one hand-over per transaction, one write of a batch's results, the guarantees kept."""

import pytest
from celery.signals import task_prerun
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import Tag
from delivery import services
from delivery.models import Outbox
from delivery.signals import outbox_message_finished

pytestmark = pytest.mark.django_db
S = Outbox.Status


def enqueue(tenant, url, n=0, **kwargs):
    return services.outbox_enqueue(tenant=tenant, channel="webhook", target=url, payload={"n": n}, **kwargs)


@pytest.fixture
def tasks_run():
    """The delivery tasks celery ran (eager here), each with the ids it was handed."""
    runs = []

    def count(sender=None, args=None, **kwargs):
        if sender.name == services.DELIVER_MESSAGES_TASK:
            runs.append(list(args[0]))

    task_prerun.connect(count)
    yield runs
    task_prerun.disconnect(count)


def test_it_hands_the_messages_of_one_transaction_to_one_task(tenant, receiver, on_commit, tasks_run):
    with on_commit():
        messages = [enqueue(tenant, receiver.url, n) for n in range(5)]
    assert tasks_run == [[m.pk for m in messages]]
    assert {m.status for m in Outbox.objects.all()} == {S.DELIVERED} and len(receiver.requests) == 5


def test_it_hands_over_large_transactions_in_chunks(tenant, receiver, on_commit, tasks_run):
    with on_commit():
        messages = [enqueue(tenant, receiver.url, n, dispatch=False) for n in range(services.DISPATCH_CHUNK + 3)]
        services.dispatch_on_commit([m.pk for m in messages])
    assert [len(ids) for ids in tasks_run] == [services.DISPATCH_CHUNK, 3]
    assert Outbox.objects.filter(status=S.DELIVERED).count() == len(messages)


def test_it_still_hands_over_the_messages_around_a_rolled_back_savepoint(tenant, receiver, on_commit, tasks_run):
    class Undo(Exception):
        pass

    with on_commit():
        first = enqueue(tenant, receiver.url, 1)
        with pytest.raises(Undo), transaction.atomic():
            enqueue(tenant, receiver.url, 2)
            raise Undo
        last = enqueue(tenant, receiver.url, 3)
    assert Outbox.objects.count() == 2
    assert {m.status for m in Outbox.objects.all()} == {S.DELIVERED}
    assert sorted(r["body"] for r in receiver.requests) == [b'{"n":1}', b'{"n":3}']
    assert sorted(pk for ids in tasks_run for pk in ids if pk in (first.pk, last.pk)) == sorted([first.pk, last.pk])


def test_it_hands_nothing_over_when_the_transaction_rolls_back(tenant, receiver, on_commit, tasks_run):
    with on_commit(), pytest.raises(RuntimeError), transaction.atomic():
        enqueue(tenant, receiver.url)
        raise RuntimeError("the run failed")
    assert tasks_run == [] and receiver.requests == [] and Outbox.objects.count() == 0


def test_it_writes_the_results_of_a_batch_in_one_statement(tenant, receiver):
    def writes_for(count):
        for n in range(count):
            enqueue(tenant, receiver.url, n, dispatch=False)
        with CaptureQueriesContext(connection) as queries:
            stats = services.deliver(batch_size=count)
        assert stats.delivered == count
        return [q["sql"] for q in queries if q["sql"].lstrip().startswith("UPDATE")]

    assert len(writes_for(2)) == len(writes_for(20)) == 2  # the claim and the results, whatever the batch size


def test_it_records_mixed_outcomes_of_one_batch(tenant, receiver):
    receiver.respond(200, 500, 404)
    messages = [enqueue(tenant, receiver.url, n, dispatch=False) for n in range(3)]
    stats = services.deliver(batch_size=3, now=None)
    assert (stats.delivered, stats.failed, stats.dead) == (1, 1, 1)
    statuses = [(m.status, m.last_status_code) for m in Outbox.objects.filter(pk__in=[m.pk for m in messages])
                .order_by("id")]
    assert statuses == [(S.DELIVERED, 200), (S.FAILED, 500), (S.DEAD, 404)]
    failed = Outbox.objects.get(status=S.FAILED)
    assert failed.next_attempt_at > failed.last_attempt_at and failed.claim_token is None


def test_a_result_of_a_batch_whose_claim_was_lost_is_not_written(tenant, receiver):
    first, second = (enqueue(tenant, receiver.url, n, dispatch=False) for n in range(2))
    claimed = services.claim()
    Outbox.objects.filter(pk=second.pk).update(status=S.FAILED, claim_token=None)  # the sweeper took it back
    statuses = services.record_many([(m, services.Result(True, 200)) for m in claimed])
    assert statuses == [S.DELIVERED, ""]
    second.refresh_from_db()
    assert second.status == S.FAILED


def test_a_failing_receiver_of_a_batch_loses_only_its_own_writes(tenant, receiver):
    def tag_it(sender, message, status, **kwargs):
        Tag.objects.create(tenant_id=message.tenant_id, name=f"finished {message.payload['n']}")
        if message.payload["n"] == 1:
            raise RuntimeError("boom")

    messages = [enqueue(tenant, receiver.url, n, dispatch=False) for n in range(3)]
    outbox_message_finished.connect(tag_it)
    try:
        services.deliver(batch_size=3)
    finally:
        outbox_message_finished.disconnect(tag_it)
    assert {m.status for m in Outbox.objects.filter(pk__in=[m.pk for m in messages])} == {S.DELIVERED}
    assert sorted(Tag.objects.for_tenant(tenant).values_list("name", flat=True)) == ["finished 0", "finished 2"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the index is checked in PostgreSQL's catalogue")
def test_the_outbox_has_an_index_by_tenant_and_age():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'outbox_tenant_created_idx'")
        [(definition,)] = cursor.fetchall()
    assert "(tenant_id, created_at)" in definition
