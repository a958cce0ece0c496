"""The floor under the event engine (issue 17 §2): what one run must write, with raw psycopg. Prints numbers.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform .venv/bin/python bench/floor_bench.py
        (options: --events 5000  --batch 50  --connections 1 2)

A run of the note rule writes, in one transaction per batch of events: the events claimed (``FOR UPDATE SKIP
LOCKED``) and marked processed, the run, its step, the note; the note + webhook rule also a second step
and the outbox row. This bench writes exactly those rows into the same tables (same indexes, row-level
security on, as the runtime role with a signed tenant scope) with plain SQL: one claim, one multi-row INSERT
per table and one UPDATE per batch, no ORM, no Python per row beyond building the parameters. The rows are
copies of rows the real engine wrote (one change processed in-process first), so their sizes match.

Standalone it creates a throwaway database (``bench_floor_<pid>``) and prints the calibration and ratios;
``bench/e2e_bench.py --floor`` calls ``measure`` on its own database to put the engine figures as a
percentage of the floor in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from calibration import threaded_rate  # noqa: E402

# The engine's tables (delivery's Outbox kept its automation_ table when it moved apps).
TABLES = {"run": "automation_run", "step": "automation_runstep", "note": "accounts_note", "outbox": "automation_outbox",
          "event": "automation_event"}


def _connect(role: str):
    """A psycopg connection to Django's database as ``role``, scoped to nothing yet."""
    import psycopg
    from django.db import connection

    s = connection.settings_dict
    return psycopg.connect(host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, dbname=s["NAME"], user=role,
                           password=s.get("PASSWORD") or None)


def _scope(conn, tenant_id: str) -> None:
    """The signed tenant scope row-level security trusts (what csplatform.tenancy applies for Django)."""
    from csplatform.rls_key import sign

    conn.execute("SELECT set_config('app.tenant_ids', %s, false), set_config('app.bypass_rls', 'off', false),"
                 " set_config('app.user_id', '', false), set_config('app.rls_sig', %s, false)",
                 [tenant_id, sign(conn.info.backend_pid, tenant_id, "off", "")])
    conn.commit()


def _row(conn, table: str, pk) -> dict:
    cursor = conn.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])
    return dict(zip([c.name for c in cursor.description], cursor.fetchone()))


def _adapt(value):
    from psycopg.types.json import Jsonb

    return Jsonb(value) if isinstance(value, (dict, list)) else value


class Templates:
    """One row of each table as the engine wrote it, for a run of ``webhook`` rule or not."""

    def __init__(self, conn, run_id: int):
        self.run = _row(conn, TABLES["run"], run_id)
        steps = conn.execute(f"SELECT id FROM {TABLES['step']} WHERE run_id = %s ORDER BY position", [run_id]).fetchall()
        self.steps = [_row(conn, TABLES["step"], pk) for (pk,) in steps]
        note_id = self.steps[0]["output"]["note_id"]
        self.note = _row(conn, TABLES["note"], note_id)
        outbox = conn.execute(f"SELECT id FROM {TABLES['outbox']} WHERE run_id = %s", [run_id]).fetchone()
        self.outbox = _row(conn, TABLES["outbox"], outbox[0]) if outbox else None
        self.event = _row(conn, TABLES["event"], self.run["event_id"])


def _insert(cur, table: str, template: dict, rows: list[dict]) -> list[int]:
    """One multi-row INSERT of copies of ``template`` with each row's overrides; the new ids, in order."""
    columns = [c for c in template if c != "id"]
    values = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
    params = [_adapt(row.get(c, template[c])) for row in rows for c in columns]
    cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} RETURNING id", params)
    return [r[0] for r in cur.fetchall()]


def _one_batch(conn, templates: Templates, tenant_id: str, batch: int) -> int:
    """Claim up to ``batch`` pending events and write what their runs write; the number of runs."""
    from datetime import datetime, timezone

    with conn.transaction(), conn.cursor() as cur:
        cur.execute(f"SELECT id, account_id FROM {TABLES['event']} WHERE tenant_id = %s AND processed_at IS NULL "
                    "AND failed_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", [tenant_id, batch])
        events = cur.fetchall()
        if not events:
            return 0
        now = datetime.now(timezone.utc)
        notes = _insert(cur, TABLES["note"], templates.note,
                        [{"account_id": account, "created_at": now, "updated_at": now} for _, account in events])
        runs = _insert(cur, TABLES["run"], templates.run,
                       [{"event_id": pk, "account_id": account, "created_at": now, "started_at": now,
                         "finished_at": now} for pk, account in events])
        steps = [{**template, "run_id": run, "output": {"note_id": note} if n == 0 else template["output"]}
                 for run, note in zip(runs, notes) for n, template in enumerate(templates.steps)]
        step_ids = _insert(cur, TABLES["step"], templates.steps[0], steps)
        if templates.outbox is not None:
            webhook_steps = step_ids[len(templates.steps) - 1::len(templates.steps)]
            _insert(cur, TABLES["outbox"], templates.outbox, [
                {"run_id": run, "run_step_id": step, "message_id": uuid.uuid4().hex,
                 "idempotency_key": f"run:{run}:1:webhook", "created_at": now, "next_attempt_at": now}
                for run, step in zip(runs, webhook_steps)])
        cur.execute(f"UPDATE {TABLES['event']} SET processed_at = %s, attempts = attempts + 1 WHERE id = ANY(%s)",
                    [now, [pk for pk, _ in events]])
        return len(events)


def _pending_events(conn, templates: Templates, tenant_id: str, count: int) -> None:
    """``count`` pending events like the template's, each for one of the tenant's accounts (round robin)."""
    accounts = [r[0] for r in conn.execute("SELECT id FROM accounts_account WHERE tenant_id = %s ORDER BY id",
                                           [tenant_id]).fetchall()]
    template = {**templates.event, "processed_at": None, "attempts": 0}
    with conn.cursor() as cur:
        for start in range(0, count, 500):
            _insert(cur, TABLES["event"], template, [
                {"account_id": accounts[n % len(accounts)], "object_id": str(accounts[n % len(accounts)])}
                for n in range(start, min(start + 500, count))])
    conn.commit()


def measure(tenant_id: str, run_id: int, *, role: str, events: int, batch: int, connections: int) -> float:
    """Runs per second writing like the run ``run_id`` did, over ``connections`` connections."""
    with _connect(role) as setup:
        _scope(setup, tenant_id)
        templates = Templates(setup, run_id)
        _pending_events(setup, templates, tenant_id, events)
    conns = [_connect(role) for _ in range(connections)]
    try:
        return _drain(conns, templates, tenant_id, batch)
    finally:
        for conn in conns:
            conn.close()


def _drain(conns: list, templates: Templates, tenant_id: str, batch: int) -> float:
    for conn in conns:
        _scope(conn, tenant_id)

    def drain(slot: int) -> int:
        done = 0
        while written := _one_batch(conns[slot], templates, tenant_id, batch):
            done += written
        return done

    return threaded_rate(drain, len(conns))


def template_runs(tenant, url: str) -> dict:
    """One run of each rule, processed in-process (eager celery): ``{"note": run_id, "note + webhook": run_id}``."""
    from django.db import transaction

    from accounts import services
    from accounts.models import Account
    from automation import engine
    from automation.models import Event, Run, Workflow
    from automation.services import workflow_save

    runs = {}
    note = {"type": "create_note", "config": {"body": "{{ account.name }} moved to {{ account.industry }}"}}
    for n, (label, actions) in enumerate((("note", [note]),
                                          ("note + webhook", [note, {"type": "webhook", "config": {"url": url}}]))):
        rule = workflow_save(rule=Workflow(tenant=tenant), data={
            "name": f"floor {label}", "status": "active", "trigger_type": "field_changed", "model_type": "account",
            "trigger_config": {"field": "industry"}, "actions": actions})
        account = Account.objects.for_tenant(tenant).order_by("pk")[n]
        with transaction.atomic():
            services.account_save(account=account, changes={"industry": f"Floor {label}"})
        event = Event.objects.for_tenant(tenant).order_by("-pk").first()
        engine.process_event(str(tenant.pk), event.pk)  # eager celery did already: then a no-op
        runs[label] = Run.objects.for_tenant(tenant).get(event=event).pk
        workflow_save(rule=rule, data={"status": "paused"})
    return runs


def floor_table(tenant, runs: dict, *, role: str, events: int, batch: int, connections: list[int]) -> dict:
    """``{(rule, connections): runs/s}``, printed as it goes."""
    results = {}
    for label, run_id in runs.items():
        for n in connections:
            rate = measure(str(tenant.pk), run_id, role=role, events=events, batch=batch, connections=n)
            results[(label, n)] = rate
            print(f"   floor, {label:<15} {n} connection(s): {rate:,.0f} runs/s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--calibration-seconds", type=int, default=10)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL (PostgreSQL; a throwaway database is created next to it)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")
    os.environ.setdefault("DJANGO_ALLOW_GENERATED_SECRET", "true")
    os.environ.setdefault("DATABASE_APP_ROLE", "csplatform_app")
    os.environ["OUTBOUND_ALLOW_LOOPBACK"] = "true"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"  # the template runs' deliveries fail fast (port 9): no matter
    os.environ["CRM_DEFAULT_JOURNEYS"] = "false"
    os.environ.pop("REDIS_URL", None)

    from calibration import calibrate
    from throwaway_db import run_in_throwaway_database

    cal_before = calibrate(args.calibration_seconds)

    def work() -> None:
        from django.conf import settings

        from accounts import services
        from accounts.models import Account
        from csplatform.tenancy import system_context, tenant_context

        with system_context("floor bench set-up"):
            tenant = services.tenant_create(slug=f"floor-{uuid.uuid4().hex[:6]}", name="Floor bench")
        with tenant_context(tenant):
            Account.objects.bulk_create([Account(tenant=tenant, name=f"Floor {n:05d}") for n in range(2000)])
            runs = template_runs(tenant, "http://127.0.0.1:9/floor")
        results = floor_table(tenant, runs, role=settings.DATABASE_APP_ROLE, events=args.events, batch=args.batch,
                              connections=args.connections)
        cal_after = calibrate(args.calibration_seconds)
        base = (cal_before.base + cal_after.base) / 2
        print(f"\nfloor (raw psycopg, batches of {args.batch}, RLS on, as {settings.DATABASE_APP_ROLE}); yardstick: "
              f"mean of {cal_before.base:,.0f} and {cal_after.base:,.0f} = {base:,.0f} {cal_before.base_name}")
        for (label, n), rate in results.items():
            print(f"   {label:<15} {n} connection(s): {rate:>7,.0f} runs/s = {rate / base:.2f}x")

    run_in_throwaway_database("bench_floor", work)


if __name__ == "__main__":
    main()
