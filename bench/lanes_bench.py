"""Benchmark: webhook latency on the fast lanes while evaluate-all over 100,000 accounts runs on the bulk lane.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/lanes_bench.py          (options: --accounts 100000  --usage-days 7  --keep)

It never touches the database DATABASE_URL names: it creates a throwaway database next to it
(``bench_lanes_<pid>``, migrated), fills one tenant with ``bench/playbooks_bench.py``'s book of business
(accounts, health scores, usage, surveys, notes, tickets), enables the five playbook triggers and makes the
daily evaluation due. Then, as in production, one real celery worker consumes ``bulk`` and one
``events,delivery,default`` (queues of the bench's own in Redis, routed like CELERY_TASK_ROUTES:
tests/e2e/celery_workers.py), the daily evaluate-all task is sent to the bulk lane, and while it runs one
account change a second (a rule "status -> at_risk: webhook") travels to a local receiver. Prints how long the
evaluation held the bulk lane and the commit-to-webhook latency of the changes made meanwhile. Nothing is
asserted; tests/e2e/test_priority_lanes.py asserts the same thing on a small tenant.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings_test")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
os.environ["CRM_DEFAULT_JOURNEYS"] = "false"  # only the bench's rule reacts to changes


class Receiver:
    def __init__(self):
        self.arrivals: dict[str, float] = {}
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                arrivals[body["account"]] = time.time()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/bench"


def start_workers(logs: Path) -> tuple[list[subprocess.Popen], dict[str, str]]:
    """A worker on the bulk lane and one on the others, on queues of this run (the e2e tests' launcher)."""
    from django.conf import settings

    from csplatform.celery import app
    from tests.e2e.celery_workers import LANES, WORKER, _use_routes, database_url

    prefix = f"bench-lanes-{os.getpid()}-{uuid.uuid4().hex[:6]}-"
    queues = {lane: prefix + lane for lane in LANES}
    routes = {task: {**route, "queue": queues[route["queue"]]} for task, route in settings.CELERY_TASK_ROUTES.items()}
    _use_routes(routes, queues["default"])
    env = {**os.environ, "DATABASE_URL": database_url(), "OUTBOUND_ALLOW_LOOPBACK": "true"}
    processes = []
    for name, lanes in (("fast", ("events", "delivery", "default")), ("bulk", ("bulk",))):
        spec = json.dumps({"queues": [queues[lane] for lane in lanes], "routes": routes, "default": queues["default"],
                           "preload": None})
        log = open(logs / f"{name}.log", "w")
        processes.append(subprocess.Popen([sys.executable, "-c", WORKER, spec, f"{name}-{prefix}@%h"], cwd=ROOT,
                                          env=env, stdout=log, stderr=subprocess.STDOUT))
    app.conf.task_always_eager = False
    return processes, queues


def evaluation_running(tenant) -> bool:
    from django.db import DatabaseError, transaction

    from playbooks.models import PlaybookSchedule

    try:
        with transaction.atomic():
            list(PlaybookSchedule.objects.for_tenant(tenant).select_for_update(nowait=True))
    except DatabaseError:
        return True
    return False


def run(args) -> None:
    from django.db import connection

    from accounts.models import Account
    from automation.models import Workflow
    from automation.services import workflow_save
    from csplatform.celery import app
    from csplatform.tenancy import system_context
    from playbooks.models import PlaybookSchedule, PlaybookTrigger, PlaybookTriggerEvaluation
    from playbooks.tasks import evaluate_due_tenants_task
    from playbooks_bench import populate

    receiver = Receiver()
    with system_context("benchmark"):
        started = time.monotonic()
        tenant = populate(args.accounts, args.usage_days)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would have by now: the planner needs the new rows' statistics
        PlaybookTrigger.objects.for_tenant(tenant).update(auto_trigger_enabled=True)
        PlaybookSchedule.objects.update_or_create(tenant=tenant, defaults={
            "evaluate_at": datetime.time(0, 0), "enabled": True, "last_run_on": None})
        watched = [Account.objects.create(tenant=tenant, name=f"Watched {n:03d}") for n in range(args.changes)]
        workflow_save(rule=Workflow(tenant=tenant), data={
            "name": "At-risk webhook", "status": "active", "trigger_type": "field_changed", "model_type": "account",
            "trigger_config": {"field": "status", "to": "at_risk"},
            "actions": [{"type": "webhook", "config": {"url": receiver.url, "payload": {"account": "{{ account.name }}"}}}]})
        print(f"{args.accounts:,} accounts: data created in {time.monotonic() - started:.0f} s", flush=True)

        logs = Path(tempfile.mkdtemp(prefix="bench-lanes-"))
        processes, queues = start_workers(logs)
        try:
            warm_up = watched.pop()
            warm_up.status = Account.Status.AT_RISK
            warm_up.save()
            deadline = time.monotonic() + 60
            while warm_up.name not in receiver.arrivals and time.monotonic() < deadline:
                time.sleep(0.05)
            if warm_up.name not in receiver.arrivals:
                sys.exit(f"the warm-up webhook never arrived; worker logs in {logs}")

            sent = time.monotonic()
            evaluate_due_tenants_task.delay()
            while not evaluation_running(tenant):
                time.sleep(0.05)
            began = time.monotonic()
            committed: dict[str, float] = {}
            while evaluation_running(tenant):
                if watched:
                    account = watched.pop()
                    account.status = Account.Status.AT_RISK
                    committed[account.name] = time.time()
                    account.save()
                time.sleep(1.0)
            held = time.monotonic() - began
            time.sleep(2)  # the last changes' webhooks
            evaluations = PlaybookTriggerEvaluation.objects.for_tenant(tenant).count()
            print(f"  evaluate-all on the bulk lane: {held:.1f} s (picked up {began - sent:.2f} s after it was "
                  f"sent; {evaluations} trigger evaluations recorded)")
            latencies = sorted((receiver.arrivals[name] - at) * 1000 for name, at in committed.items()
                               if name in receiver.arrivals)
            missing = len(committed) - len(latencies)
            if latencies:
                p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
                print(f"  {len(committed)} account changes meanwhile, commit -> webhook: p50 "
                      f"{statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms"
                      + (f", {missing} not delivered" if missing else ""), flush=True)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
            with app.connection_for_write() as conn:
                for queue in queues.values():
                    conn.default_channel.queue_delete(queue)
            receiver.server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--usage-days", type=int, default=7)
    parser.add_argument("--changes", type=int, default=300, help="watched accounts (one change a second at most)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        parser.error("set DATABASE_URL (PostgreSQL; a throwaway database is created next to it) and REDIS_URL")

    from throwaway_db import run_in_throwaway_database  # bench/ is the script's directory

    run_in_throwaway_database("bench_lanes", lambda: run(args), keep=args.keep)


if __name__ == "__main__":
    main()
