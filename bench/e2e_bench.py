"""The event engine end to end with real celery workers (issue 17 §1). Prints numbers; asserts nothing.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/e2e_bench.py      (options: --changes 2000  --latency-seconds 8  --configs …)

It never touches the database DATABASE_URL names: it creates a throwaway database next to it
(``bench_e2e_<pid>``, migrated as the tables' owner, row-level security on), and then the bench (the "web
process") and the workers connect as the runtime role ``DATABASE_APP_ROLE`` (default ``csplatform_app``), as
in production. One tenant, two rules on an account's ``industry`` changing: (a) a note; (b) a note and a
webhook to a receiver process on 127.0.0.1 (``bench/delivery_bench.py``'s). Only one is active at a time.

Each change is committed through the public service (``accounts.services.account_save`` in the tenant's
context and a transaction, as the API does), so ``transaction.on_commit`` hands the event to celery on Redis.
The workers are real ``celery -A csplatform worker -P prefork -Q events,delivery`` processes, in three
shapes (``--configs``): one process ``-c 1``, one process ``-c 2``, two processes ``-c 1``. For each rule
and shape:

* **drain**: N changes committed while no worker runs (N tasks wait in Redis), then the workers start:
  executions/s from the first run's start to the last run becoming visible (and, for the webhook rule, to
  the last webhook's arrival); worker boot is not counted.
* **latency**: at half the drain rate, one change per transaction, paced: p50/p99 from each commit to its
  run becoming visible to another connection (polled every 5 ms: the run's commit, within the poll
  interval) and to its webhook reaching the receiver.

The workers run with the project's settings: each keeps its database session across tasks (``CONN_MAX_AGE``,
``CELERY_DB_REUSE_MAX``; ``DATABASE_CONN_MAX_AGE=0`` in the environment measures a session per task). Every run prints the machine's calibration (``bench/calibration.py``) before and after, and ratios to it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")
os.environ.setdefault("DJANGO_ALLOW_GENERATED_SECRET", "true")
os.environ.setdefault("DATABASE_APP_ROLE", "csplatform_app")
os.environ["OUTBOUND_ALLOW_LOOPBACK"] = "true"
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
os.environ["CRM_DEFAULT_JOURNEYS"] = "false"  # only the bench's rules react to changes

from delivery_bench import percentile  # noqa: E402  (bench/ is on the path: the receiver comes from there too)

QUEUES = ("events", "delivery")
CONFIGS = {"1x1": [1], "1x2": [2], "2x1": [1, 1]}  # worker processes and each one's -c
LABELS = {"1x1": "1 process -c 1", "1x2": "1 process -c 2", "2x1": "2 processes -c 1"}
POLL = 0.005


# --- workers ----------------------------------------------------------------------------------------

class Workers:
    """Celery worker processes on the events and delivery queues of the bench's Redis database."""

    def __init__(self, shape: list[int], database_url: str, logs: Path):
        self.shape, self.database_url, self.logs = shape, database_url, logs
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        env = {**os.environ, "DATABASE_URL": self.database_url, "CELERY_BROKER_URL": os.environ["REDIS_URL"]}
        celery = shutil.which("celery", path=str(ROOT / ".venv" / "bin")) or shutil.which("celery")
        for n, concurrency in enumerate(self.shape):
            name = f"e2e{n}-{os.getpid()}@%h"
            cmd = [celery, "-A", "csplatform", "worker", "-P", "prefork", "-c", str(concurrency), "-Q",
                   ",".join(QUEUES), "-n", name, "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "-l", "WARNING"]
            log = open(self.logs / f"worker{n}.log", "a")
            self.processes.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the worker processes and their pool children so far (/proc)."""
        pids = {p.pid for p in self.processes}
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat.parent.name) in pids or int(fields[1]) in pids:  # fields[1]: the parent's pid
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


def broker():
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"])


def purge_queues() -> None:
    client = broker()
    for name in (*QUEUES, "default", "bulk"):
        client.delete(name)
    client.delete("unacked", "unacked_index")


def queued_tasks() -> int:
    client = broker()
    return sum(client.llen(name) for name in QUEUES) + client.zcard("unacked_index")


# --- measuring --------------------------------------------------------------------------------------

class RunWatcher(threading.Thread):
    """Polls, every ``POLL`` s on its own connection, for the runs of the accounts it awaits: when a run is
    visible, its transaction has committed. Records ``{account_id: seen_at}``. (Not "ids above the last seen":
    workers reserve run ids ahead, so ids do not commit in order.)"""

    def __init__(self, tenant, after: int, awaiting):
        super().__init__(daemon=True)
        self.tenant, self.after, self.awaiting = tenant, after, set(awaiting)
        self.seen: dict = {}
        self.stop = threading.Event()

    def expect(self, account_id: str) -> None:
        self.awaiting.add(account_id)

    def run(self) -> None:
        from django.db import connection

        from automation.models import Run
        from csplatform.tenancy import tenant_context

        try:
            with tenant_context(self.tenant):
                while not self.stop.is_set():
                    wanted = list(self.awaiting - self.seen.keys())
                    if wanted:
                        found = Run.objects.for_tenant(self.tenant).filter(pk__gt=self.after, account_id__in=wanted) \
                            .values_list("account_id", flat=True)
                        now = time.time()
                        for account_id in found:
                            self.seen.setdefault(str(account_id), now)
                    time.sleep(POLL)
        finally:
            connection.close()


def wait_until(predicate, timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    print(f"   !! timed out after {timeout:.0f} s waiting for {what}", flush=True)
    return False


def collect(hits, into: dict) -> dict:
    """Webhook arrivals so far, ``{message_id: first arrival}``."""
    while True:
        try:
            message_id, at = hits.get_nowait()
        except queue.Empty:
            return into
        into.setdefault(message_id, at)


def arrivals_by_account(tenant, arrivals: dict) -> dict:
    """``{account_id: arrival}`` for the webhooks received (message -> its run -> the run's account)."""
    from automation.models import Run
    from delivery.models import Outbox

    runs = dict(Outbox.objects.for_tenant(tenant).filter(message_id__in=list(arrivals)).values_list("message_id", "run_id"))
    accounts = dict(Run.objects.for_tenant(tenant).filter(pk__in=list(runs.values())).values_list("pk", "account_id"))
    return {str(accounts[runs[m]]): at for m, at in arrivals.items() if runs.get(m) in accounts}


class Bench:
    def __init__(self, args, tenant, url: str, hits, database_url: str, logs: Path):
        self.args, self.tenant, self.url, self.hits, self.database_url, self.logs = \
            args, tenant, url, hits, database_url, logs
        self.phase = 0

    def accounts(self, count: int) -> list:
        from accounts.models import Account

        return list(Account.objects.for_tenant(self.tenant).order_by("pk")[:count])

    def change(self, account) -> float:
        """One committed change, as the API makes it; returns the commit time (before the on-commit dispatch)."""
        from django.db import transaction

        from accounts import services

        holder: dict = {}
        with transaction.atomic():
            transaction.on_commit(lambda: holder.setdefault("t", time.time()))  # runs before the event's dispatch
            services.account_save(account=account, changes={"industry": f"Bench {self.phase}"})
        return holder["t"]

    def processed_all(self) -> bool:
        from automation.models import Event

        return not Event.objects.for_tenant(self.tenant).filter(processed_at__isnull=True).exists()

    def last_run_id(self) -> int:
        from automation.models import Run

        return Run.objects.for_tenant(self.tenant).order_by("-pk").values_list("pk", flat=True).first() or 0

    def drain(self, workers: Workers, webhook: bool) -> dict:
        """From the first run's start to the last batch's commit (its events' ``processed_at``, stamped just
        before the batch writes its runs and commits: a poller over thousands of awaited runs would load the
        machine it measures)."""
        from django.db.models import Max, Min

        from automation.models import Event, Run

        self.phase += 1
        after = self.last_run_id()
        first_event = Event.objects.for_tenant(self.tenant).order_by("-pk").values_list("pk", flat=True).first() or 0
        for account in self.accounts(self.args.changes):
            self.change(account)
        arrivals: dict = {}
        workers.start()
        runs = Run.objects.for_tenant(self.tenant).filter(pk__gt=after)
        wait_until(runs.exists, 120, "the first run")
        cpu = workers.cpu_seconds()  # boot done: from here, the CPU the drain costs (the first batch aside)
        wait_until(self.processed_all, 600, "the events to be processed")
        cpu = workers.cpu_seconds() - cpu
        wait_until(lambda: queued_tasks() == 0, 300, "the tasks left in the queue")
        queue_empty = time.time()  # every event brought a task: all consumed is what a steady load must keep up with
        if webhook:
            wait_until(lambda: len(collect(self.hits, arrivals)) >= self.args.changes, 300, "the webhooks")
        first_start = runs.aggregate(at=Min("started_at"))["at"].timestamp()
        last_commit = Event.objects.for_tenant(self.tenant).filter(pk__gt=first_event) \
            .aggregate(at=Max("processed_at"))["at"].timestamp()
        result = {"runs": runs.count(), "rate": runs.count() / (last_commit - first_start),
                  "sustained": runs.count() / (max(queue_empty, last_commit) - first_start),
                  "cpu_ms": cpu * 1000 / runs.count()}
        if webhook:
            result["delivered"] = len(arrivals)
            result["delivery_rate"] = len(arrivals) / (max(arrivals.values()) - first_start)
        wait_until(lambda: queued_tasks() == 0, 120, "the leftover tasks")
        return result

    def latency(self, rate: float, webhook: bool) -> dict:
        self.phase += 1
        count = max(200, min(int(rate * self.args.latency_seconds), self.args.changes))
        accounts = self.accounts(count)
        watcher = RunWatcher(self.tenant, self.last_run_id(), [])
        watcher.start()
        commits, arrivals = {}, {}
        started = time.monotonic()

        def commit_share(first: int) -> None:  # one web process's worth of requests, paced
            from django.db import connection

            from csplatform.tenancy import tenant_context

            with tenant_context(self.tenant):
                for n in range(first, len(accounts), self.args.committers):
                    delay = started + n / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    commits[str(accounts[n].pk)] = self.change(accounts[n])
                    watcher.expect(str(accounts[n].pk))
            connection.close()

        committers = [threading.Thread(target=commit_share, args=(k,)) for k in range(self.args.committers)]
        for thread in committers:
            thread.start()
        for thread in committers:
            thread.join()
        achieved = len(accounts) / (time.monotonic() - started)
        wait_until(lambda: len(watcher.seen) >= len(commits), 300, "the latency phase's runs")
        if webhook:
            wait_until(lambda: len(collect(self.hits, arrivals)) >= len(commits), 300, "the latency phase's webhooks")
        watcher.stop.set()
        watcher.join()
        to_run = [(watcher.seen[a] - t) * 1000 for a, t in commits.items() if a in watcher.seen]
        result = {"rate": rate, "achieved": achieved, "n": len(to_run), "run_p50": percentile(to_run, 0.5),
                  "run_p99": percentile(to_run, 0.99)}
        if webhook:
            by_account = arrivals_by_account(self.tenant, arrivals)
            to_hook = [(by_account[a] - t) * 1000 for a, t in commits.items() if a in by_account]
            result.update(hook_p50=percentile(to_hook, 0.5), hook_p99=percentile(to_hook, 0.99), hooks=len(to_hook))
        wait_until(lambda: queued_tasks() == 0, 120, "the leftover tasks")
        return result

    def config(self, label: str, shape: list[int], webhook: bool) -> dict:
        workers = Workers(shape, self.database_url, self.logs)
        try:
            drained = self.drain(workers, webhook)
            latency = self.latency(drained["rate"] / 2, webhook)
        finally:
            workers.stop()
            purge_queues()
        return {"label": label, **drained, "latency": latency}


# --- set-up and report ------------------------------------------------------------------------------

def make_rules(tenant, url: str) -> dict:
    from automation.models import Workflow
    from automation.services import workflow_save

    trigger = {"trigger_type": "field_changed", "model_type": "account", "trigger_config": {"field": "industry"}}
    note = {"type": "create_note", "config": {"body": "{{ account.name }} moved to {{ account.industry }}"}}
    rules = {}
    for label, actions in (("note", [note]), ("note + webhook", [note, {"type": "webhook", "config": {"url": url}}])):
        rules[label] = workflow_save(rule=Workflow(tenant=tenant), data={
            "name": label, "status": "paused", **trigger, "actions": actions})
    return rules


def set_status(rule, status: str) -> None:
    from automation.services import workflow_save

    workflow_save(rule=rule, data={"status": status})


def measure_floor(tenant, rules: dict, args) -> dict:
    """bench/floor_bench.py on this database, with rows copied from a run of each rule measured here."""
    from django.conf import settings

    from automation.models import Run
    from csplatform.tenancy import tenant_context
    from floor_bench import floor_table

    with tenant_context(tenant):
        runs = {label: Run.objects.for_tenant(tenant).filter(workflow=rule).order_by("-pk")
                .values_list("pk", flat=True).first() for label, rule in rules.items()}
    return floor_table(tenant, {label: pk for label, pk in runs.items() if pk}, role=settings.DATABASE_APP_ROLE,
                       events=args.floor, batch=50, connections=[1, 2])


def as_runtime_role(database_url: str) -> str:
    """The throwaway database's URL for the runtime role; this process reconnects as that role too."""
    from django.conf import settings
    from django.db import connection

    role = settings.DATABASE_APP_ROLE
    connection.close()
    connection.settings_dict["USER"] = role
    s = connection.settings_dict
    return f"postgres://{role}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def report(results: list[dict], cal_before, cal_after, args) -> None:
    base = (cal_before.base + cal_after.base) / 2

    def ratio(value: float) -> str:
        return f"{value / base:.2f}x"

    print("\nexec/s: drain of pre-committed changes (to the last event processed); queue/s: the same runs over the time"
          " until every task the changes queued was consumed; cpu ms: the workers' CPU per execution during it; hooks/s: "
          "webhooks received per second of the drain; at/s, got/s: the latency phase's wanted and achieved commit rate")
    print(f"results ({args.changes} changes drained per shape; latency at half the drain rate; "
          f"workers: celery -A csplatform worker, CONN_MAX_AGE {os.environ.get('DATABASE_CONN_MAX_AGE', 'default')})")
    print(f"yardstick: mean of {cal_before.base:,.0f} and {cal_after.base:,.0f} = {base:,.0f} {cal_before.base_name}")
    print(f"{'rule':<15} {'workers':<17} {'exec/s':>7} {'ratio':>6} {'queue/s':>7} {'cpu ms':>6} {'hooks/s':>8} {'at/s':>6} {'got/s':>6} "
          f"{'run p50':>8} {'run p99':>8} {'hook p50':>9} {'hook p99':>9}")
    by = {}
    for r in results:
        lat = r["latency"]
        by[(r["rule"], r["shape"])] = r["rate"]
        print(f"{r['rule']:<15} {r['label']:<17} {r['rate']:>7.0f} {ratio(r['rate']):>6} {r['sustained']:>7.0f} "
              f"{r['cpu_ms']:>6.2f} "
              f"{r.get('delivery_rate', float('nan')):>8.0f} {lat['rate']:>6.0f} {lat['achieved']:>6.0f} "
              f"{lat['run_p50']:>8.0f} {lat['run_p99']:>8.0f} {lat.get('hook_p50', float('nan')):>9.0f} "
              f"{lat.get('hook_p99', float('nan')):>9.0f}")
    print("goals (issue 17 §1), with 2 worker processes:")
    note, hook = by.get(("note", "2x1")), by.get(("note + webhook", "2x1"))
    if note:
        print(f"   note rule {note:.0f}/s = {ratio(note)} (goal >= 0.50x)")
    if hook:
        print(f"   note + webhook {hook:.0f}/s = {ratio(hook)} (goal >= 0.40x)")
    for rule in ("note", "note + webhook"):
        one, two = by.get((rule, "1x1")), by.get((rule, "2x1"))
        if one and two:
            print(f"   {rule}: 2 processes / 1 process = {two / one:.2f} (goal >= 1.70)")
    worst = max((r["latency"]["run_p99"] for r in results), default=float("nan"))
    print(f"   worst p99 commit->run at half the drain rate: {worst:.0f} ms (goal < 500 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=2000, help="changes drained per rule and worker shape")
    parser.add_argument("--latency-seconds", type=float, default=8.0, help="length of each paced latency phase")
    parser.add_argument("--configs", default="1x1,1x2,2x1", help=f"worker shapes: {', '.join(CONFIGS)}")
    parser.add_argument("--rules", default="note,note + webhook")
    parser.add_argument("--committers", type=int, default=3,
                        help="threads committing changes in the latency phase (the web processes)")
    parser.add_argument("--calibration-seconds", type=int, default=10)
    parser.add_argument("--floor", type=int, default=0, metavar="EVENTS",
                        help="also measure bench/floor_bench.py's floor over EVENTS events, in the same run")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("set DATABASE_URL (PostgreSQL; a throwaway database is created next to it) and REDIS_URL")

    from calibration import calibrate
    from delivery_bench import _receiver
    from throwaway_db import run_in_throwaway_database

    logs = Path(f"/tmp/e2e_bench_{os.getpid()}")
    logs.mkdir(exist_ok=True)
    print(f"worker logs: {logs}")
    cal_before = calibrate(args.calibration_seconds)

    def work() -> None:
        from django.db import connection

        from accounts import services
        from accounts.models import Account
        from csplatform.tenancy import system_context, tenant_context

        port_out, hits, stop = mp.Queue(), mp.Queue(), mp.Event()
        owner = connection.settings_dict["USER"]
        connection.close()  # a forked child must not inherit the connection
        receiver = mp.Process(target=_receiver, args=(port_out, hits, stop), daemon=True)
        receiver.start()
        url = f"http://127.0.0.1:{port_out.get(timeout=10)}/e2e"
        database_url = as_runtime_role(os.environ["DATABASE_URL"])
        with system_context("bench set-up"):
            tenant = services.tenant_create(slug=f"e2e-{uuid.uuid4().hex[:6]}", name="E2E bench")
        purge_queues()
        results = []
        try:
            with tenant_context(tenant):
                Account.objects.bulk_create([Account(tenant=tenant, name=f"E2E {n:05d}")
                                             for n in range(args.changes)], batch_size=2000)
                rules = make_rules(tenant, url)
                bench = Bench(args, tenant, url, hits, database_url, logs)
                for rule_label in args.rules.split(","):
                    set_status(rules[rule_label], "active")
                    for shape in args.configs.split(","):
                        print(f"-- {rule_label}, {LABELS[shape]}", flush=True)
                        result = bench.config(LABELS[shape], CONFIGS[shape], rule_label != "note")
                        result.update(rule=rule_label, shape=shape)
                        print(f"   {result}", flush=True)
                        results.append(result)
                    set_status(rules[rule_label], "paused")
            floor = measure_floor(tenant, rules, args) if args.floor else {}
        finally:
            stop.set()
            receiver.join(5)
            purge_queues()
            connection.close()
            connection.settings_dict["USER"] = owner  # the owner drops the database
        cal_after = calibrate(args.calibration_seconds)
        report(results, cal_before, cal_after, args)
        for (rule_label, n), rate in floor.items():
            engine = max((r["rate"] for r in results if r["rule"] == rule_label), default=float("nan"))
            print(f"   floor, {rule_label:<15} {n} connection(s): {rate:,.0f} runs/s; the best engine figure "
                  f"({engine:.0f}/s) is {engine / rate:.0%} of it")

    run_in_throwaway_database("bench_e2e", work, keep=args.keep)


if __name__ == "__main__":
    main()
