"""Automation engine benchmark (issue 4). Prints numbers; asserts nothing.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform REDIS_URL=redis://127.0.0.1:6379/14 \
        .venv/bin/python bench/engine_bench.py [--accounts 100000] [--runs 2000]

It creates a throwaway database (Django's test database machinery), so it never touches real data.
Measures: (1) the added cost of an account save with 0, 10 and 100 live rules in the tenant, none
listening to account updates; (2) rule executions per second from committed change to Run, RunSteps,
the actions' writes (a note; a note and a webhook's outbox row) and the event marked processed, with 1
and 2 worker processes doing what the celery task does (``--batch`` events per transaction);
(3) a time-based rule over N accounts: one compiled queryset against evaluating the same rule
object by object in Python.
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")
os.environ.setdefault("DJANGO_ALLOW_GENERATED_SECRET", "true")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"  # events stay pending; the bench processes them itself

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts import services as account_services  # noqa: E402
from accounts.models import Account  # noqa: E402
from automation import conditions, engine, events  # noqa: E402
from delivery import services as delivery_services  # noqa: E402
from automation.models import Event, Run, Workflow  # noqa: E402
from delivery.models import Outbox  # noqa: E402
from automation.services import workflow_save  # noqa: E402
from csplatform.tenancy import system_context, tenant_context  # noqa: E402

# No broker in the bench: measure the database work only (events and messages stay for the bench's workers).
events.dispatch = lambda event: None
delivery_services.dispatch = lambda ids: None


def timed_saves(account: Account, count: int) -> tuple[float, float]:
    """Median milliseconds per save and queries per save."""
    samples = []
    with CaptureQueriesContext(connection) as queries:
        for i in range(count):
            account.licensed_seats = i
            started = time.perf_counter()
            with transaction.atomic():
                account.save()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), len(queries) / count


def bench_save_cost(tenant, count: int) -> None:
    print(f"\n1. Account save cost, {count} saves each, no rule listening to account updates")
    account = Account.objects.create(tenant=tenant, name="Bench save")
    base_ms, base_q = None, None
    for rules in (0, 10, 100):
        existing = Workflow.objects.for_tenant(tenant).count()
        for i in range(existing, rules):
            workflow_save(rule=Workflow(tenant=tenant), data={
                "name": f"contact rule {i}", "status": "active", "trigger_type": "model_created",
                "model_type": "contact", "actions": [{"type": "create_note", "config": {"body": "x"}}]})
        timed_saves(account, 50)  # warm the rule index cache and the connection
        ms, q = timed_saves(account, count)
        if rules == 0:
            base_ms, base_q = ms, q
        print(f"   {rules:>3} live rules: {ms:.3f} ms/save median, {q:.2f} queries/save "
              f"(+{ms - base_ms:.3f} ms, +{q - base_q:.2f} queries over the 0-rule save)")
    print(f"   events written: {Event.objects.for_tenant(tenant).count()} (none expected)")


def _worker(tenant_id: str, batch: int, result) -> None:
    """What the celery task does for each event id it is handed (automation.tasks.process_event)."""
    connections.close_all()
    done = 0
    while True:
        with system_context("bench worker claims events"):
            ids = list(Event.objects.filter(processed_at__isnull=True).order_by("id").values_list("id", flat=True)[:50])
        if not ids:
            break
        for event_id in ids:
            done += len(engine.process_event(tenant_id, event_id, batch=batch))
    result.put(done)


RULES = {
    "note": [{"type": "create_note", "config": {"body": "{{ account.name }} changed"}}],
    "note + webhook": [{"type": "create_note", "config": {"body": "{{ account.name }} changed"}},
                       {"type": "webhook", "config": {"url": "https://hooks.example.com/bench"}}],
}


def bench_executions(tenant, count: int, batch: int) -> None:
    print(f"\n2. Rule executions end to end: {count} committed account updates -> Run + RunSteps + the actions'"
          f" writes (a note; an outbox row for the webhook) + event processed; event batch {batch}")
    accounts = iter(Account.objects.bulk_create(
        [Account(tenant=tenant, name=f"Exec {i}") for i in range(count * 2 * len(RULES))]))
    for label, rule_actions in RULES.items():
        rule = workflow_save(rule=Workflow(tenant=tenant), data={
            "name": label, "status": "active", "trigger_type": "model_updated", "model_type": "account",
            "actions": rule_actions})
        for workers in (1, 2):
            for _ in range(count):  # each change commits with its event, as a web request would
                account = Account.objects.get(pk=next(accounts).pk)
                account.industry = "Bench"
                with transaction.atomic():
                    account.save()
            connections.close_all()
            result = multiprocessing.Queue()
            started = time.perf_counter()
            procs = [multiprocessing.Process(target=_worker, args=(str(tenant.pk), batch, result))
                     for _ in range(workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            elapsed = time.perf_counter() - started
            runs = sum(result.get() for _ in procs)
            print(f"   {label:<15} {workers} worker(s): {runs} runs in {elapsed:.2f} s = {runs / elapsed:,.0f} executions/s")
        workflow_save(rule=rule, data={"status": "paused"})
    print(f"   runs recorded: {Run.objects.for_tenant(tenant).filter(status='success').count()}, "
          f"outbox rows: {Outbox.objects.for_tenant(tenant).count()}")


def bench_time_based(tenant, count: int) -> None:
    print(f"\n3. Time-based rule over {count:,} accounts: updated_at < '7 days ago' and industry = 'Retail'")
    old = timezone.now() - timedelta(days=30)
    batch = [Account(tenant=tenant, name=f"TB {i}", industry="Retail" if i % 3 == 0 else "Software")
             for i in range(count)]
    Account.objects.bulk_create(batch, batch_size=5000)
    Account.objects.for_tenant(tenant).filter(name__startswith="TB ", pk__in=[a.pk for a in batch[::2]]) \
        .update(updated_at=old)
    tree = conditions.normalize({"all": [
        {"field": "updated_at", "operator": "less_than", "value": "7 days ago"},
        {"field": "industry", "operator": "equals", "value": "Retail"}]})
    conditions.validate(tree, Account)
    scope = Account.objects.for_tenant(tenant).filter(name__startswith="TB ")
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        matched = list(scope.filter(conditions.to_q(tree, Account)).values_list("pk", flat=True))
    set_based = time.perf_counter() - started
    started = time.perf_counter()
    slow = [a.pk for a in scope.iterator(chunk_size=5000) if conditions.evaluate(tree, a)]
    one_by_one = time.perf_counter() - started
    assert len(slow) == len(matched)
    print(f"   set-based: {len(matched):,} matches in {set_based * 1000:.0f} ms ({len(queries)} queries)")
    print(f"   object by object in Python: {one_by_one * 1000:.0f} ms -> {one_by_one / set_based:.0f}x slower")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--saves", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=settings.AUTOMATION_EVENT_BATCH,
                        help="events per worker transaction (AUTOMATION_EVENT_BATCH; 1 = one event each)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a PostgreSQL database (the bench creates its own throwaway copy)")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with system_context("bench set-up"):
            tenant = account_services.tenant_create(slug="bench", name="Bench")
        with tenant_context(tenant):
            bench_save_cost(tenant, args.saves)
            bench_executions(tenant, args.runs, args.batch)
            bench_time_based(tenant, args.accounts)
    finally:
        connections.close_all()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
