"""Benchmark: rule executions and webhook deliveries per second with 1, 2 and 4 celery worker processes, and how
much of the machine PostgreSQL takes meanwhile.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/worker_scaling.py   (options: --changes 2000  --concurrency 1 2 4  --conn-max-age 0  --keep)

It never touches the database DATABASE_URL names: it creates a throwaway database next to it
(``bench_workers_<pid>``, migrated). One tenant with two live rules on account updates, a note and a webhook to
a receiver on 127.0.0.1, so each change is two runs, a note and one outbox message. For each concurrency, with
no worker running, N account changes are committed through the public service (``account_save``), each with
its event and its ``process_event`` task handed to the broker on commit, as a web request does; then one real
``celery -A csplatform worker -Q events,delivery,default --concurrency C`` (the production command, prefork
pool: C processes, connected as the runtime role ``DATABASE_APP_ROLE``) drains the queues: the events into runs,
notes and outbox rows, and the outbox into webhooks.

REDIS_URL is the broker and the queues are the real ``events``, ``delivery`` and ``default``: use a Redis
database of your own (the script empties those three queues there first).

Printed per concurrency, rates from the rows' own timestamps (so the workers' start-up does not count):
executions/s (runs finished), deliveries/s (outbox rows delivered), and over the same window the CPU used by
PostgreSQL's backends for this database and by the worker processes (from /proc/<pid>/stat), as a share of the
machine's cores, the machine's total busy share (other users included), and what the active backends were
waiting on (pg_stat_activity, sampled every 0.2 s; "CPU" = active with no wait event). A calibration before and
after (bench/calibration.py), and each rate as a ratio to it. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings_test")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
os.environ["CRM_DEFAULT_JOURNEYS"] = "false"  # only the bench's rules react to the changes
os.environ["OUTBOUND_ALLOW_LOOPBACK"] = "true"
# One key for this process and the workers: the row-level-security signatures are derived from it.
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))

LANES = ("events", "delivery", "default")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
SAMPLE_EVERY = 0.2


# --- CPU and wait-event sampling ------------------------------------------------------------------------------

def process_ticks(pid: int) -> int | None:
    """utime + stime of one process, in clock ticks (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5), counted after "(comm)"


def descendants(pid: int) -> list[int]:
    """The process and its children (celery's prefork pool), from /proc/<pid>/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except FileNotFoundError:
                continue
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class CumulativeCpu:
    """CPU seconds used by a changing set of processes since the first sample (a process seen later counts
    from its birth: everything it did belongs to the run)."""

    def __init__(self):
        self.baseline: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.first_sample = True

    def add(self, pids) -> float:
        for pid in pids:
            ticks = process_ticks(pid)
            if ticks is None:
                continue
            if pid not in self.baseline:
                self.baseline[pid] = ticks if self.first_sample else 0
            self.last[pid] = ticks
        self.first_sample = False
        return sum(self.last[pid] - self.baseline[pid] for pid in self.last) / CLOCK_TICKS


def stats_connection():
    """A connection that sees every session's state and wait event: PostgreSQL shows them for other roles'
    sessions (the workers' runtime role) only to a superuser or pg_read_all_stats, so PGADMIN (default
    postgres, as scripts/services.sh) first, else DATABASE_URL's role (then the waits of other roles are blank)."""
    import psycopg

    from calibration import _server

    server = _server()
    for user in (os.environ.get("PGADMIN", "postgres"), server["user"]):
        try:
            return psycopg.connect(host=server["host"], port=server["port"], user=user, dbname="postgres",
                                   autocommit=True)
        except psycopg.OperationalError:
            continue
    raise SystemExit("cannot connect to PostgreSQL to sample pg_stat_activity")


@dataclass
class Sample:
    at: float  # time.time()
    postgres: float  # CPU seconds so far
    workers: float
    machine_busy: float  # seconds of all cores
    machine_total: float


@dataclass
class Sampler:
    database: str
    worker_pid: int
    samples: list[Sample] = field(default_factory=list)
    waits: list[tuple[float, collections.Counter]] = field(default_factory=list)

    def __post_init__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        postgres, workers = CumulativeCpu(), CumulativeCpu()
        with stats_connection() as conn:
            own = conn.info.backend_pid
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                    [self.database, own]).fetchall()
                now = time.time()
                busy, total = machine_ticks()
                self.samples.append(Sample(now, postgres.add(pid for pid, _, _ in rows),
                                           workers.add(descendants(self.worker_pid)),
                                           busy / CLOCK_TICKS, total / CLOCK_TICKS))
                self.waits.append((now, collections.Counter(
                    wait or "CPU" for _, state, wait in rows if state == "active")))
                self.stop.wait(SAMPLE_EVERY)

    def between(self, start: float, end: float) -> dict:
        """CPU shares and average active backends by wait type over [start, end]."""
        def at(moment: float) -> Sample:  # the last sample at or before the moment (or the first one)
            before = [s for s in self.samples if s.at <= moment]
            return before[-1] if before else self.samples[0]

        first, last = at(start), at(end)
        seconds = max(last.at - first.at, 1e-9)
        waits = collections.Counter()
        inside = [counter for moment, counter in self.waits if start <= moment <= end]
        for counter in inside:
            waits.update(counter)
        return {
            "seconds": seconds,
            "postgres_seconds": last.postgres - first.postgres,
            "workers_seconds": last.workers - first.workers,
            "postgres": (last.postgres - first.postgres) / seconds / CORES,
            "workers": (last.workers - first.workers) / seconds / CORES,
            "machine": (last.machine_busy - first.machine_busy) / max(last.machine_total - first.machine_total, 1e-9),
            "waits": {name: count / max(len(inside), 1) for name, count in waits.most_common()},
        }


# --- the run --------------------------------------------------------------------------------------------------

def runtime_database_url(conn_max_age: int) -> str:
    """The throwaway database, as the runtime role when one is configured (what production workers use);
    ``conn_max_age`` > 0 keeps each worker process's connection between tasks (django-environ's URL option)."""
    from django.conf import settings
    from django.db import connection

    s = connection.settings_dict
    user = settings.DATABASE_APP_ROLE or s["USER"]
    auth = user + (f":{s['PASSWORD']}" if s.get("PASSWORD") and user == s["USER"] else "")
    query = f"?conn_max_age={conn_max_age}" if conn_max_age else ""
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}{query}"


def empty_queues() -> None:
    from csplatform.celery import app

    with app.connection_for_write() as conn:
        for queue in LANES:
            conn.default_channel.queue_purge(queue)


def commit_changes(tenant, accounts) -> float:
    """One ``account_save`` per account, each its own transaction (its event's task goes to the broker on commit)."""
    from accounts.services import account_save
    from csplatform.tenancy import tenant_context

    started = time.monotonic()
    with tenant_context(tenant):
        for account in accounts:
            account_save(account=account, changes={"industry": "Scaling bench"})
    return time.monotonic() - started


def wait_until_drained(tenant, since, expected_runs: int, expected_messages: int, worker, timeout: float) -> None:
    from automation.models import Run
    from csplatform.tenancy import tenant_context
    from delivery.models import Outbox

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with tenant_context(tenant):
            runs = Run.objects.for_tenant(tenant).filter(created_at__gte=since, finished_at__isnull=False).count()
            delivered = Outbox.objects.for_tenant(tenant).filter(
                created_at__gte=since, status=Outbox.Status.DELIVERED).count()
        if runs >= expected_runs and delivered >= expected_messages:
            return
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with {worker.returncode}")
        time.sleep(0.5)
    raise SystemExit(f"not drained within {timeout:.0f} s: {runs}/{expected_runs} runs, "
                     f"{delivered}/{expected_messages} delivered")


def window(tenant, since) -> dict:
    """First and last finished run and delivered message of this round, from the rows."""
    from django.db.models import Count, Max, Min

    from automation.models import Run
    from csplatform.tenancy import tenant_context
    from delivery.models import Outbox

    with tenant_context(tenant):
        runs = Run.objects.for_tenant(tenant).filter(created_at__gte=since).aggregate(
            n=Count("id"), first=Min("created_at"), last=Max("finished_at"))
        sent = Outbox.objects.for_tenant(tenant).filter(created_at__gte=since).aggregate(
            n=Count("id"), first=Min("delivered_at"), last=Max("delivered_at"))
    return {"runs": runs, "sent": sent}


def one_round(tenant, accounts, concurrency: int, logs: Path, conn_max_age: int) -> dict:
    from django.utils import timezone

    empty_queues()
    since = timezone.now()
    committing = commit_changes(tenant, accounts)
    print(f"  {concurrency} worker process(es): {len(accounts)} changes committed in {committing:.1f} s "
          f"({len(accounts) / committing:,.0f}/s); starting the worker", flush=True)
    env = {**os.environ, "DATABASE_URL": runtime_database_url(conn_max_age), "CELERY_BROKER_URL": os.environ["REDIS_URL"]}
    log = open(logs / f"worker-{concurrency}.log", "w")
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "csplatform", "worker", "-Q", ",".join(LANES),
         "--concurrency", str(concurrency), "-n", f"scaling-{os.getpid()}-{concurrency}@%h", "--without-gossip",
         "--without-mingle", "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    sampler = Sampler(database=tenant_database(), worker_pid=worker.pid)
    sampler.thread.start()
    try:
        wait_until_drained(tenant, since, 2 * len(accounts), len(accounts), worker, timeout=60 + len(accounts) * 0.5)
    finally:
        sampler.stop.set()
        sampler.thread.join()
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    rows = window(tenant, since)
    runs, sent = rows["runs"], rows["sent"]
    start, end = runs["first"].timestamp(), max(runs["last"], sent["last"]).timestamp()
    return {
        "concurrency": concurrency,
        "executions_per_s": runs["n"] / (runs["last"] - runs["first"]).total_seconds(),
        "deliveries_per_s": sent["n"] / max((sent["last"] - sent["first"]).total_seconds(), 1e-3),
        "changes_per_s": len(accounts) / (end - start),
        "cpu": sampler.between(start, end),
        "changes": len(accounts), "runs": runs["n"], "delivered": sent["n"],
    }


def tenant_database() -> str:
    from django.db import connection

    return connection.settings_dict["NAME"]


def set_up(receiver, count: int, rounds: int):
    from accounts.models import Account
    from accounts.services import tenant_create
    from automation.models import Workflow
    from automation.services import workflow_save
    from csplatform.tenancy import system_context, tenant_context

    with system_context("benchmark set-up"):
        tenant = tenant_create(slug="scaling", name="Worker scaling bench")
    with tenant_context(tenant):
        # Accounts first: no rule listens yet, so making them writes no events.
        accounts = Account.objects.bulk_create([Account(tenant=tenant, name=f"Scaling {n:06d}")
                                                for n in range(count * rounds)], batch_size=2000)
        for name, action in (("note", {"type": "create_note", "config": {"body": "{{ account.name }} changed"}}),
                             ("webhook", {"type": "webhook", "config": {
                                 "url": receiver.url, "payload": {"account": "{{ account.name }}"}}})):
            workflow_save(rule=Workflow(tenant=tenant), data={
                "name": f"Scaling {name}", "status": "active", "trigger_type": "model_updated",
                "model_type": "account", "actions": [action]})
    return tenant, [accounts[i * count:(i + 1) * count] for i in range(rounds)]


def report(results: list[dict], calibration, conn_max_age: int) -> None:
    print(f"\nworkers' CONN_MAX_AGE {conn_max_age}" + ("" if conn_max_age else
          " (the production default: a connection per task; backends that live less than the 0.2 s sampling "
          "interval are missed, so PostgreSQL's CPU is a lower bound)"))
    print("| worker processes | executions/s | deliveries/s | changes/s end to end | PostgreSQL CPU | workers CPU "
          "| machine busy | CPU ms per change: PostgreSQL / workers | active backends by wait |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        cpu = r["cpu"]
        waits = ", ".join(f"{name} {value:.2f}" for name, value in cpu["waits"].items()) or "-"
        print(f"| {r['concurrency']} | {r['executions_per_s']:,.0f} ({calibration.ratio(r['executions_per_s'])}) "
              f"| {r['deliveries_per_s']:,.0f} | {r['changes_per_s']:,.0f} | {cpu['postgres']:.0%} "
              f"| {cpu['workers']:.0%} | {cpu['machine']:.0%} | {cpu['postgres_seconds'] * 1000 / r['changes']:.2f} / "
              f"{cpu['workers_seconds'] * 1000 / r['changes']:.2f} | {waits} |")
    base = results[0]
    for r in results[1:]:
        print(f"  {r['concurrency']} vs {base['concurrency']}: executions x{r['executions_per_s'] / base['executions_per_s']:.2f},"
              f" deliveries x{r['deliveries_per_s'] / base['deliveries_per_s']:.2f}")
    print(f"  (CPU shares are of {CORES} cores over the round's window, from the first run created to the last run "
          "finished or message delivered; 'machine busy' includes everything else running on the machine)")
    pg = sum(r["cpu"]["postgres_seconds"] for r in results)
    workers = sum(r["cpu"]["workers_seconds"] for r in results)
    if pg:
        print(f"  a change costs {workers / pg:.1f}x more CPU in the workers than in PostgreSQL: one PostgreSQL core "
              f"keeps up with about {workers / pg:.0f} busy worker processes, each on a core of its own")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=2000, help="account changes per worker count")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--conn-max-age", type=int, default=0,
                        help="the workers' CONN_MAX_AGE (0, the default settings: a new connection per task)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        parser.error("set DATABASE_URL (PostgreSQL; a throwaway database is created next to it) and REDIS_URL")

    from calibration import calibrate
    from lanes_bench import Receiver  # answers 200, records each webhook's account (bench/ is on the path)
    from throwaway_db import run_in_throwaway_database

    print(f"broker: Redis database {urllib.parse.urlsplit(os.environ['REDIS_URL']).path.lstrip('/') or '0'}; "
          f"{CORES} cores; load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    calibration = calibrate()

    def work() -> None:
        from django.db import connections

        receiver = Receiver()
        tenant, batches = set_up(receiver, args.changes, len(args.concurrency))
        connections.close_all()
        logs = Path(tempfile.mkdtemp(prefix="bench-workers-"))
        results = [one_round(tenant, accounts, concurrency, logs, args.conn_max_age)
                   for accounts, concurrency in zip(batches, args.concurrency)]
        receiver.server.shutdown()
        report(results, calibration, args.conn_max_age)
        print(json.dumps([{k: v for k, v in r.items() if k != "cpu"} | {"cpu": r["cpu"]} for r in results],
                         default=str), flush=True)
        print(f"  the receiver got webhooks for {len(receiver.arrivals)} accounts; worker logs in {logs}")
        connections.close_all()

    run_in_throwaway_database("bench_workers", work, keep=args.keep)
    print("after the rounds:", flush=True)
    calibrate()
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
