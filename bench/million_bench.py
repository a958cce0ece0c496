"""Benchmark: a tenant of 1,000,000 accounts: a time-based rule, a nightly health-score import, and the sweeper
and the schedulers with 10 million processed events in the table.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform .venv/bin/python bench/million_bench.py
    (options: --accounts 1000000  --usage-days 30  --events 10000000  --import-accounts N  --keep)

It never touches the database DATABASE_URL names: it creates a throwaway database next to it (``bench_million_<pid>``,
migrated, row-level security on) and fills one tenant with raw ``INSERT … SELECT … FROM generate_series`` (in a
system context): ``--accounts`` accounts (renewal dates spread over a year, seats, a health score) with
``--usage-days`` days of usage each. Then, in the tenant's context, each measured three times:

1. a time-based rule ("renewing within 30 days", ``automation.scheduling.candidates``: the conditions compiled to
   one queryset) evaluated: the SELECT of the matching ids, and the subjects loaded as ``fire_slot`` loads them;
2. a health score recorded for ``--import-accounts`` accounts (default: 100,000 per run) through
   ``accounts.health_import.health_scores_import`` (the bulk path of ``health_score_record``) while a
   ``health_score_change`` rule and a ``field_changed`` rule on the health score listen (so events are written,
   by automation's receiver of ``health_scores_imported``; once per-row, with the receiver disconnected, to compare);
3. ``--events`` processed events inserted (raw SQL) plus 10 pending: one sweep (``sweep_events``), one tick of
   the scheduled rules and one of the CRM journey scheduler, with the ``EXPLAIN ANALYZE`` of their queries.

Every figure is printed with the machine's calibration (``bench/calibration.py``, measured at the start and at
the end) and as a ratio to it. The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings_test")
# Events go to the broker (REDIS_URL) after commit, as in production, and wait there: processing them is the
# workers' part (bench/engine_bench.py), not the import's. The queue is purged at the end.
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "false")

RUNS = 3
RENEWING = [{"field": "renewal_date", "operator": "gte", "value": "today"},
            {"field": "renewal_date", "operator": "lte", "value": "in 30 days"}]
NOTE = [{"type": "create_note", "config": {"body": "Renewal in 30 days: {{ account.name }}"}}]
BULK_RECEIVER = "automation.signals.health_scores_imported"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--usage-days", type=int, default=30)
    parser.add_argument("--events", type=int, default=10_000_000, help="processed events in the table")
    parser.add_argument("--import-accounts", type=int, default=100_000, help="accounts scored per import run")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("set DATABASE_URL to a PostgreSQL server (a throwaway database is created next to it)")

    from calibration import calibrate  # bench/ is the script's directory
    from throwaway_db import run_in_throwaway_database

    def work() -> None:
        before = calibrate()
        try:
            run(args, before)
        finally:
            print(f"purged {_purge_broker():,} messages the benchmark left on the broker")
        after = calibrate()
        print(f"calibration moved {after.base / before.base - 1:+.0%} over the run ({before.base_name})")

    run_in_throwaway_database("bench_million", work, keep=args.keep)


def _purge_broker() -> int:
    """Empty the queues the benchmark's events went to (REDIS_URL's database: give the benchmark its own)."""
    from django.conf import settings

    from csplatform.celery import app

    queues = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        return sum(channel.queue_purge(queue) or 0 for queue in sorted(queues))


def run(args, cal) -> None:
    from django.db import connection

    from accounts.services import tenant_create
    from csplatform.tenancy import system_context

    with system_context("million benchmark: set-up"):
        tenant = tenant_create(slug="bench-million", name="Bench million")
        started = time.monotonic()
        populate(tenant.pk, args.accounts, args.usage_days)
        at = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        print(f"  VACUUM ANALYZE in {time.monotonic() - at:.1f} s", flush=True)
        print(f"{args.accounts:,} accounts with {args.usage_days} days of usage created in "
              f"{time.monotonic() - started:.0f} s", flush=True)
    time_based_rule(tenant, cal)
    health_import(tenant, args.import_accounts, cal)
    sweeper_and_schedulers(tenant, args.events, cal)


def _sql(sql: str, params=None) -> int:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def populate(tenant_id, accounts: int, usage_days: int) -> None:
    """Accounts, then their usage (``usage_days`` rows each), with raw INSERT … SELECT FROM generate_series."""
    at = time.monotonic()
    # Deterministic spreads from the row number: 9 in 10 accounts have a renewal date within a year.
    n = _sql("""
        INSERT INTO accounts_account (id, tenant_id, name, status, industry, size, arr, licensed_seats, renewal_date,
                                      health_score, risk_level, created_at, updated_at)
        SELECT gen_random_uuid(), %(tenant)s, 'Account ' || lpad(i::text, 7, '0'), 'active', 'Software', '',
               (5 + i %% 500) * 1000, (ARRAY[NULL, 25, 50, 100, 250, 500])[1 + i %% 6],
               CASE WHEN i %% 10 = 0 THEN NULL ELSE current_date + ((i::bigint * 7919) %% 400 - 30)::int END,
               s, CASE WHEN s >= 80 THEN 'healthy' WHEN s >= 60 THEN 'moderate' WHEN s >= 40 THEN 'at_risk'
                       ELSE 'critical' END,
               now() - interval '400 days', now() - ((i %% 60) || ' days')::interval
        FROM generate_series(1, %(n)s) AS i, LATERAL (SELECT (15 + (i * 31) %% 84)::numeric(5, 2) AS s) AS score""",
             {"tenant": tenant_id, "n": accounts})
    print(f"  accounts: {n:,} rows in {time.monotonic() - at:.1f} s", flush=True)
    at = time.monotonic()
    n = _sql("""
        INSERT INTO accounts_usagemetric (tenant_id, account_id, date, active_users, logins, dau, mau, session_minutes,
                                          features_used, created_at)
        SELECT a.tenant_id, a.id, current_date - d, u, u * 2, u / 3, greatest(u, 1), u * 10,
               '["dashboards", "reports", "api"]'::jsonb, now()
        FROM accounts_account a CROSS JOIN generate_series(0, %(days)s - 1) AS d,
             LATERAL (SELECT (coalesce(a.licensed_seats, 100) * (30 + (hashtext(a.name) & 63)) / 100
                              * (100 - d) / 100)::int AS u) AS usage
        WHERE a.tenant_id = %(tenant)s""", {"tenant": tenant_id, "days": usage_days})
    print(f"  usage metrics: {n:,} rows in {time.monotonic() - at:.1f} s", flush=True)


def _explain(sql: str, params) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        return "\n".join("      " + row[0] for row in cursor.fetchall())


def _summary(label: str, seconds: list[float], cal, unit_count: int | None = None, unit: str = "") -> None:
    times = ", ".join(f"{s:.2f}" for s in seconds)
    line = f"  {label}: {times} s (median {statistics.median(seconds):.2f} s"
    if unit_count:
        rates = [unit_count / s for s in seconds]
        line += (f"; {min(rates):,.0f} to {max(rates):,.0f} {unit}/s, median {statistics.median(rates):,.0f} = "
                 f"{cal.ratio(statistics.median(rates))}")
    else:
        line += f"; the time of {statistics.median(seconds) * cal.base:,.0f} {cal.base_name.split(' tx/s')[0]} transactions"
    print(line + ")", flush=True)


def time_based_rule(tenant, cal) -> None:
    from django.utils import timezone

    from automation import scheduling
    from automation.models import Workflow
    from automation.services import workflow_save
    from csplatform.tenancy import tenant_context

    print("\ntime-based rule: renewing within 30 days (check every 1h)", flush=True)
    with tenant_context(tenant):
        rule = workflow_save(rule=Workflow(tenant=tenant), data={
            "name": "Renewal in 30 days", "status": "active", "trigger_type": "time_based",
            "trigger_config": {"check_every": "1h"}, "conditions": RENEWING, "actions": NOTE})
        selects, loads, matched = [], [], 0
        for _ in range(RUNS):
            now = timezone.now()
            at = time.monotonic()
            qs, remainder = scheduling.candidates(rule, now)
            ids = list(qs.values_list("pk", flat=True))
            selects.append(time.monotonic() - at)
            at = time.monotonic()
            matched = sum(1 for _ in scheduling.matching_subjects(rule, now))
            loads.append(time.monotonic() - at)
        print(f"  {matched:,} accounts match ({len(ids):,} ids; in-memory remainder: {remainder})")
        _summary("evaluation (one SELECT of the matching ids)", selects, cal)
        _summary("subjects loaded as fire_slot loads them (ids, then chunks of 500)", loads, cal)
        sql, params = qs.values_list("pk", flat=True).query.sql_with_params()
        print("    EXPLAIN ANALYZE of the evaluation:\n" + _explain(sql, params), flush=True)


def _components(rng: random.Random) -> dict:
    return {"usage_score": rng.randint(0, 100), "engagement_score": rng.randint(0, 100),
            "support_sentiment_score": rng.randint(0, 100), "adoption_score": rng.randint(0, 100)}


def health_import(tenant, per_run: int, cal) -> None:
    from accounts.health_import import health_scores_import, health_scores_imported
    from accounts.models import Account, HealthScore
    from automation.models import Event, Workflow
    from automation.services import workflow_save
    from automation.signals import health_scores_imported_in_bulk
    from csplatform.tenancy import tenant_context

    print("\nnightly health-score import through accounts.health_import (rules listen: events are written)",
          flush=True)
    with tenant_context(tenant):
        for name, trigger, extra in (
                ("Score dropped", "health_score_change", {}),
                ("Score field changed", "field_changed",
                 {"model_type": "account", "trigger_config": {"fields": ["health_score"]}})):
            workflow_save(rule=Workflow(tenant=tenant), data={
                "name": name, "status": "active", "trigger_type": trigger, "actions": NOTE, **extra})
        ids = list(Account.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True))
        rng = random.Random(1)
        offset = 0

        def one_run(count: int, label: str) -> float:
            nonlocal offset
            rows = [(ids[(offset + i) % len(ids)], _components(rng)) for i in range(min(count, len(ids)))]
            offset = (offset + count) % len(ids)
            before = Event.objects.for_tenant(tenant).count()
            at = time.monotonic()
            result = health_scores_import(tenant=tenant, rows=rows)
            seconds = time.monotonic() - at
            events = Event.objects.for_tenant(tenant).count() - before
            assert result.recorded == len(rows) and not result.errors, result.errors
            print(f"    {label}: {len(rows):,} scores and {events:,} events in {seconds:.1f} s "
                  f"= {len(rows) / seconds:,.0f} accounts/s", flush=True)
            return seconds

        # For comparison: the per-row signals (automation's bulk receiver disconnected: one event per INSERT, a
        # window-score query per health_score_change, one broker message per event).
        small = min(per_run, 2000)
        health_scores_imported.disconnect(sender=HealthScore, dispatch_uid=BULK_RECEIVER)
        try:
            seconds = [one_run(small, "per-row events (bulk receiver disconnected)")]
        finally:
            health_scores_imported.connect(health_scores_imported_in_bulk, sender=HealthScore,
                                           dispatch_uid=BULK_RECEIVER)
        _summary(f"import, per-row events ({small:,} accounts)", seconds, cal, small, "accounts")
        # What runs: automation's receiver (one INSERT of a chunk's events, one window-score query, one broker
        # message per AUTOMATION_EVENT_BATCH events).
        seconds = [one_run(per_run, f"run {index + 1}, bulk events (automation's receiver)") for index in range(RUNS)]
        _summary(f"import, bulk events ({per_run:,} accounts a run)", seconds, cal, per_run, "accounts")
        Event.objects.for_tenant(tenant).delete()
        Workflow.objects.for_tenant(tenant).exclude(trigger_type="time_based").delete()


def sweeper_and_schedulers(tenant, events: int, cal) -> None:
    from django.core.cache import cache
    from django.db import connection
    from django.utils import timezone

    from automation import engine, scheduling
    from automation.models import Event
    from crm import scheduler as crm_scheduler
    from csplatform.tenancy import system_context

    print(f"\nsweeper and schedulers with {events:,} processed events", flush=True)
    with system_context("million benchmark: events"):
        at = time.monotonic()
        n = _sql("""
            INSERT INTO automation_event (tenant_id, type, model, object_id, changes, payload, depth, created_at,
                                          processed_at, attempts, last_error)
            SELECT %(tenant)s, 'model_updated', 'account', (i %% 100000)::text, '{}', '{}', 0,
                   now() - (%(n)s - i) * interval '200 ms', now() - (%(n)s - i) * interval '200 ms' + interval '1 s',
                   0, ''
            FROM generate_series(1, %(n)s) AS i""", {"tenant": tenant.pk, "n": events})
        _sql("""
            INSERT INTO automation_event (tenant_id, type, model, object_id, changes, payload, depth, created_at,
                                          attempts, last_error)
            SELECT %(tenant)s, 'bench_pending', 'account', i::text, '{}', '{}', 0, now() - interval '10 minutes', 0, ''
            FROM generate_series(1, 10) AS i""", {"tenant": tenant.pk})
        print(f"  {n:,} processed + 10 pending events inserted in {time.monotonic() - at:.0f} s", flush=True)
        at = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE automation_event")
        print(f"  VACUUM ANALYZE automation_event in {time.monotonic() - at:.0f} s", flush=True)
        now = timezone.now()
        pending = engine.pending_events(Event.objects.filter(created_at__lt=now - scheduling.SWEEP_GRACE))
        sql, params = pending.order_by("created_at").values_list("tenant_id", "pk")[:scheduling.SWEEP_BATCH] \
            .query.sql_with_params()
        print("    EXPLAIN ANALYZE of the sweeper's query:\n" + _explain(sql, params), flush=True)
        due = crm_scheduler._due(tenant, now)
        sql, params = due.values_list("tenant_id", flat=True).query.sql_with_params()
        print("    EXPLAIN ANALYZE of the CRM scheduler's due query:\n" + _explain(sql, params), flush=True)

    _claim_time_based_slots(tenant)
    sweeps, rules, steps = [], [], []
    for _ in range(RUNS):
        cache.clear()  # the sweeper remembers what it handed out for 5 minutes: each run must find the 10 again
        at = time.monotonic()
        swept = _sweep()
        sweeps.append(time.monotonic() - at)
        at = time.monotonic()
        scheduling.run_scheduled_rules(timezone.now())
        rules.append(time.monotonic() - at)
        at = time.monotonic()
        crm_scheduler.execute_pending_steps(timezone.now())
        steps.append(time.monotonic() - at)
    print(f"  the sweeper found {swept} pending events")
    _summary("one sweep (10 pending)", sweeps, cal)
    _summary("one tick of the scheduled rules", rules, cal)
    _summary("one tick of the CRM journey scheduler", steps, cal)


def _claim_time_based_slots(tenant) -> None:
    """Mark this hour's and the next hour's slot of the time-based rule as fired, so a tick measures finding the
    due rules and claims, not firing the rule for every renewing account (``time_based_rule`` times that part)."""
    from django.utils import timezone

    from automation import scheduling
    from automation.models import ScheduledSlot, Workflow
    from csplatform.tenancy import tenant_context

    with tenant_context(tenant):
        for rule in Workflow.objects.for_tenant(tenant).filter(trigger_type="time_based"):
            for hours in (0, 1):
                slot = scheduling.time_based_slot(rule.trigger_config,
                                                  timezone.now() + datetime.timedelta(hours=hours))
                ScheduledSlot.objects.get_or_create(tenant=tenant, workflow=rule, slot=slot)


def _sweep() -> int:
    """``sweep_events`` with the dispatch to celery counted, not sent (the pending events are the benchmark's own)."""
    from automation import scheduling

    found = []
    original = scheduling.dispatch_ids
    scheduling.dispatch_ids = lambda tenant_id, pk: found.append(pk)
    try:
        scheduling.sweep_events()
    finally:
        scheduling.dispatch_ids = original
    return len(found)


if __name__ == "__main__":
    main()
