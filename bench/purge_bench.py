"""Benchmark: how fast retention (``automation.retention.purge_history``) deletes history, and how long it holds
each batch.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform .venv/bin/python bench/purge_bench.py
    (options: --rows 1000000  --old 0.8  --batch 5000  --keep)

It never touches the database DATABASE_URL names: it creates a throwaway database next to it
(``bench_purge_<pid>``, migrated, row-level security on as in production) and fills one tenant with raw
``INSERT … SELECT … FROM generate_series`` (in a system context): ``--rows`` events, half as many runs each with
one step, half as many outbox messages (3 in 4 delivered, 1 in 4 dead) and a tenth as many audit log entries,
their ages spread so that about ``--old`` of each table is past the default retention; 1 event in 100 is
pending and 1 run in 100 queued (both must survive). Then it counts (``--dry-run``), purges in the tenant's
context, checks that nothing pending was deleted, and prints rows/s per table and the longest DELETE batch.
The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings_test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="events; runs, steps, outbox: half; audit: a tenth")
    parser.add_argument("--old", type=float, default=0.8, help="share of each table past its retention")
    parser.add_argument("--batch", type=int, default=5000, help="ids per DELETE (RETENTION_BATCH)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("set DATABASE_URL to a PostgreSQL server (a throwaway database is created next to it)")

    from throwaway_db import run_in_throwaway_database  # bench/ is the script's directory

    run_in_throwaway_database("bench_purge", lambda: run(args), keep=args.keep)


def run(args) -> None:
    from django.db import connection

    from accounts.services import tenant_create
    from automation import retention
    from automation.models import Event, Run, Workflow
    from csplatform.tenancy import system_context, tenant_context

    with system_context("purge benchmark: set-up"):
        tenant = tenant_create(slug="bench-purge", name="Bench purge")
        rule = Workflow.objects.create(tenant=tenant, name="bench", trigger_type="manual", status="active")
        started = time.monotonic()
        sizes = populate(tenant.pk, rule.pk, args.rows, args.old)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # as autovacuum would have: visibility map, statistics
        total = sum(sizes.values())
        seconds = time.monotonic() - started
        print(f"inserted {total:,} rows in {seconds:.1f} s ({total / seconds:,.0f} rows/s): "
              + ", ".join(f"{n:,} {table}" for table, n in sizes.items()), flush=True)
        pending = Event.objects.filter(processed_at__isnull=True).count()
        queued = Run.objects.filter(status="queued").count()

    started = time.monotonic()
    counted = retention.purge_history(tenants=[tenant], dry_run=True, now=_now())
    print(f"dry run: {sum(counted.deleted.values()):,} rows to delete, counted in {time.monotonic() - started:.1f} s: "
          + ", ".join(f"{n:,} {key}" for key, n in counted.deleted.items()), flush=True)

    now = _now()  # one instant for every table and the check, so nothing crosses a cutoff meanwhile
    timings: list[float] = []
    delete = retention._delete

    def timed(model, ids):
        at = time.monotonic()
        try:
            return delete(model, ids)
        finally:
            timings.append(time.monotonic() - at)

    retention._delete = timed
    try:
        per_table = {}
        started = time.monotonic()
        for history in retention.HISTORY:  # table by table, to time each (purge_history does all in one call)
            at = time.monotonic()
            with tenant_context(tenant):
                qs = retention.purgeable(history, tenant, days=retention.policies([tenant])[tenant.pk][history.key],
                                         now=now)
                done = retention._purge(history, qs, args.batch, None, Counter())
            per_table[history.key] = (done, time.monotonic() - at)
        seconds = time.monotonic() - started
    finally:
        retention._delete = delete

    deleted = sum(sum(done.values()) for done, _ in per_table.values())
    print(f"purged {deleted:,} rows in {seconds:.1f} s: {deleted / seconds:,.0f} rows/s (batches of {args.batch:,})")
    for key, (done, took) in per_table.items():
        rows = sum(done.values())
        print(f"  {key:<20} {rows:>11,} rows {took:>7.1f} s {rows / took if took else 0:>9,.0f} rows/s  "
              + ", ".join(f"{n:,} {k}" for k, n in done.items() if k != key))
    if timings:
        print(f"  DELETE batches: {len(timings):,}, median {statistics.median(timings) * 1000:.0f} ms, "
              f"longest {max(timings) * 1000:.0f} ms (each its own transaction)")
    with system_context("purge benchmark: check"):
        assert Event.objects.filter(processed_at__isnull=True).count() == pending, "a pending event was deleted"
        assert Run.objects.filter(status="queued").count() == queued, "a queued run was deleted"
        left = retention.purge_history(tenants=[tenant], dry_run=True, now=now)
    assert not any(left.deleted.values()), f"left behind: {dict(left.deleted)}"
    print(f"checked: {pending:,} pending events and {queued:,} queued runs kept, nothing purgeable left")


def _now():
    from django.utils import timezone

    return timezone.now()


def populate(tenant_id, workflow_id: int, rows: int, old: float) -> dict[str, int]:
    """Raw INSERT … SELECT FROM generate_series, oldest rows first (ids grow with time, as in production)."""
    from django.conf import settings
    from django.db import connection, transaction

    defaults = settings.RETENTION_DEFAULTS
    # Ages spread evenly over ``span`` days, so that ``old`` of the rows are older than the retention.
    span = {key: days / (1 - old) for key, days in defaults.items()}
    runs, outbox, audit = rows // 2, rows // 2, rows // 10
    statements = {
        "events": (rows, """
            INSERT INTO automation_event (tenant_id, type, model, object_id, changes, payload, depth, created_at,
                                          processed_at, attempts, last_error)
            SELECT %(tenant)s, 'model_updated', 'account', (i %% 5000)::text,
                   jsonb_build_object('health_score', jsonb_build_object('old', i %% 100, 'new', (i + 7) %% 100)),
                   jsonb_build_object('id', i %% 5000, 'name', 'Account ' || (i %% 5000), 'industry', 'Software',
                                      'arr', 50000 + i %% 1000, 'health_score', (i + 7) %% 100),
                   0, t, CASE WHEN i %% 100 = 0 THEN NULL ELSE t + interval '1 second' END, 0, ''
            FROM generate_series(1, %(n)s) AS i, LATERAL (SELECT now() - (%(span)s * (%(n)s - i) / %(n)s)
                                                          * interval '1 day' AS t) AS at"""),
        "runs": (runs, """
            INSERT INTO automation_run (tenant_id, workflow_id, subject_model, subject_id, status, skip_reason,
                                        trigger_data, result, trace, error, depth, manual, attempt, start_position,
                                        created_at, started_at, finished_at)
            SELECT %(tenant)s, %(workflow)s, 'account', (i %% 5000)::text,
                   CASE WHEN i %% 100 = 0 THEN 'queued' WHEN i %% 10 = 0 THEN 'skipped' ELSE 'success' END,
                   CASE WHEN i %% 10 = 0 AND i %% 100 <> 0 THEN 'conditions_not_met' ELSE '' END,
                   '{"type": "model_updated"}', '{}', '[]', '', 0, false, 1, 0, t, t, t
            FROM generate_series(1, %(n)s) AS i, LATERAL (SELECT now() - (%(span)s * (%(n)s - i) / %(n)s)
                                                          * interval '1 day' AS t) AS at"""),
        "run_steps": (runs, """
            INSERT INTO automation_runstep (tenant_id, run_id, position, action_type, status, attempts, output, error,
                                            duration_ms, created_at)
            SELECT %(tenant)s, id, 0, 'create_note', 'success', 1, '{"note_id": 1}', '', 2.5, created_at
            FROM automation_run WHERE tenant_id = %(tenant)s"""),
        "outbox": (outbox, """
            INSERT INTO automation_outbox (tenant_id, channel, target, method, headers, payload, idempotency_key,
                                           message_id, status, attempts, max_attempts, retry_policy, next_attempt_at,
                                           last_response, error, variant, created_at, updated_at, delivered_at)
            SELECT %(tenant)s, 'webhook', 'https://hooks.example.com/bench', 'POST', '{}',
                   jsonb_build_object('event', 'model_updated', 'account', i %% 5000), 'bench:' || i,
                   'msg_bench_' || i, CASE WHEN i %% 4 = 0 THEN 'dead' ELSE 'delivered' END, 1, 8, '{}', t, '', '',
                   '', t, t, CASE WHEN i %% 4 = 0 THEN NULL ELSE t + interval '1 second' END
            FROM generate_series(1, %(n)s) AS i, LATERAL (SELECT now() - (%(span)s * (%(n)s - i) / %(n)s)
                                                          * interval '1 day' AS t) AS at"""),
        "audit_log": (audit, """
            INSERT INTO accounts_auditlog (tenant_id, actor_email, action, object_type, object_id, object_repr,
                                           changes, created_at)
            SELECT %(tenant)s, 'admin@example.com', 'update', 'automation.workflow', (i %% 50)::text, 'Rule',
                   '{"status": ["paused", "active"]}', t
            FROM generate_series(1, %(n)s) AS i, LATERAL (SELECT now() - (%(span)s * (%(n)s - i) / %(n)s)
                                                          * interval '1 day' AS t) AS at"""),
    }
    spans = {"events": span["events"], "runs": span["runs"], "run_steps": span["runs"],
             "outbox": span["delivered_messages"], "audit_log": span["audit_log"]}
    sizes = {}
    for table, (n, sql) in statements.items():
        at = time.monotonic()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, {"tenant": tenant_id, "workflow": workflow_id, "n": n, "span": spans[table]})
            sizes[table] = cursor.rowcount
        print(f"  {table}: {sizes[table]:,} rows in {time.monotonic() - at:.1f} s", flush=True)
    # A run points at the event that caused it: the runs as old as the events get the latest event before them,
    # so purging events has runs to unlink (SET NULL), as in production.
    at = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("""
            UPDATE automation_run r SET event_id = (
                SELECT e.id FROM automation_event e WHERE e.tenant_id = r.tenant_id AND e.created_at <= r.created_at
                ORDER BY e.created_at DESC LIMIT 1)
            WHERE r.created_at >= (SELECT min(created_at) FROM automation_event)""")
        linked = cursor.rowcount
    print(f"  runs linked to their events: {linked:,} in {time.monotonic() - at:.1f} s", flush=True)
    return sizes


if __name__ == "__main__":
    main()
