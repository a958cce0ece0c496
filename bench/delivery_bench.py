"""Delivery benchmark: webhook deliveries per second to a local receiver, and commit-to-delivery latency.

Runs against the PostgreSQL database named by ``DATABASE_URL`` (migrated; row-level security on, so
connect as the application role). It creates a throw-away tenant ``bench-<pid>``, signs and sends
real webhooks through the outbox (claim with SKIP LOCKED, httpx, record) to a receiver process on
127.0.0.1, and deletes its tenant at the end.

It first measures the machine (``bench/calibration.py``) and the receiver's own ceiling (2 processes with a
keep-alive httpx client each, TCP_NODELAY as the delivery workers, hammering it for ``--ceiling-seconds``
with nothing else running), then, for 1 and 2 workers:

* throughput: N messages committed up front, then the workers drain the queue -> deliveries/s;
* latency: M messages committed one per transaction at a steady rate while the workers run ->
  p50/p99 from the commit to the receiver reading the request.

Modes (``--mode``):

* ``poll`` (default): worker *processes* running the delivery loop, polling the queue every
  ``--idle`` seconds when it is empty (what ``deliver_outbox`` / the periodic pass do, continuously);
* ``celery`` (needs ``REDIS_URL``): the production path. Each commit hands its message ids to celery in
  ``transaction.on_commit`` (one task per 50); ``celery worker -c 1`` / ``-c 2`` (prefork) deliver them.

``--batch`` is the claim size (``OUTBOX_BATCH_SIZE`` of the celery workers). The machine is measured again at
the end; every rate is also printed as a ratio to the first calibration and to the receiver's ceiling.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform .venv/bin/python bench/delivery_bench.py
    DATABASE_URL=… REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/delivery_bench.py --mode celery
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- the receiver (own process) -------------------------------------------------------------------

def _receiver(port_out, hits, stop):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real receiver
        disable_nagle_algorithm = True  # else every reply waits for a delayed ACK (~40 ms)
        wbufsize = 1 << 16  # status line, headers and body in one write

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hits.put((self.headers.get("webhook-id"), time.time()))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.timeout = 0.2
    port_out.put(server.server_port)
    while not stop.is_set():
        server.handle_request()


def _hammer(url, seconds, counts):
    """A keep-alive client alone against the receiver: what it can take, with no database in the way."""
    import socket

    import httpx

    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    body = b'{"n":0,"pad":"' + b"x" * 200 + b'"}'
    sent = 0
    with httpx.Client(transport=transport) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            client.post(url, content=body, headers={"webhook-id": "ceiling", "content-type": "application/json"})
            sent += 1
    counts.put(sent)


def receiver_ceiling(url, hits, seconds, clients=2) -> float:
    """Requests per second the receiver answers to ``clients`` keep-alive client processes."""
    counts = mp.Queue()
    procs = [mp.Process(target=_hammer, args=(url, seconds, counts), daemon=True) for _ in range(clients)]
    for p in procs:
        p.start()
    total = sum(counts.get(timeout=seconds + 30) for _ in procs)
    for p in procs:
        p.join(5)
    drained = 0
    while drained < total:  # the receiver reported every hit: empty the queue before the real runs
        try:
            hits.get(timeout=2)
            drained += 1
        except queue.Empty:
            break
    return total / seconds


# --- Django ---------------------------------------------------------------------------------------

def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")
    os.environ.setdefault("DJANGO_ALLOW_GENERATED_SECRET", "true")
    os.environ["OUTBOUND_ALLOW_LOOPBACK"] = "true"
    import django

    django.setup()


def _poll_worker(stop, idle, batch):
    setup_django()
    from django.db import connections

    from delivery import services

    try:
        while not stop.is_set():
            if not services.deliver(batch_size=batch).claimed:
                time.sleep(idle)
    finally:
        connections.close_all()


class PollWorkers:
    def __init__(self, n, idle, batch):
        self.stop = mp.Event()
        self.procs = [mp.Process(target=_poll_worker, args=(self.stop, idle, batch), daemon=True) for _ in range(n)]

    def start(self):
        from django.db import connections

        connections.close_all()  # a forked child must never inherit an open connection
        for p in self.procs:
            p.start()

    def close(self):
        self.stop.set()
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()


class CeleryWorkers:
    def __init__(self, n, queue_name, batch):
        celery = shutil.which("celery", path=str(ROOT / ".venv" / "bin")) or shutil.which("celery")
        env = {**os.environ, "OUTBOUND_ALLOW_LOOPBACK": "true", "CELERY_TASK_ALWAYS_EAGER": "false",
               "OUTBOX_BATCH_SIZE": str(batch)}
        self.cmd = [celery, "-A", "csplatform", "worker", "-c", str(n), "-P", "prefork", "-Q", queue_name,
                    "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING",
                    "--prefetch-multiplier", "4"]
        self.env = env
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=ROOT)
        time.sleep(4)  # worker boot (Django setup, broker connection)

    def close(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --- measuring ------------------------------------------------------------------------------------

def drain(hits, until_count, seen, timeout):
    deadline = time.monotonic() + timeout
    while len(seen) < until_count and time.monotonic() < deadline:
        try:
            msg_id, at = hits.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.setdefault(msg_id, []).append(at)
    return seen


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run(workers_n, args, tenant, url, hits):
    from django.db import transaction

    from delivery import services
    from delivery.models import Outbox
    from csplatform.tenancy import system_context, tenant_context

    dispatch = args.mode == "celery"
    workers = (CeleryWorkers(workers_n, args.queue, args.batch) if dispatch else PollWorkers(workers_n, args.idle, args.batch))

    # throughput: N committed before the workers start (celery: N tasks already queued)
    with tenant_context(tenant), transaction.atomic():
        batch = [services.outbox_enqueue(tenant=tenant, channel="webhook", target=url, payload={"n": n, "pad": "x" * 200},
                                         dispatch=dispatch) for n in range(args.messages)]
    ids = {m.message_id for m in batch}
    seen: dict = {}
    workers.start()
    try:
        drain(hits, args.messages, seen, timeout=600)
        # from the first delivery to the last: worker start-up (fork, celery boot) is not delivery time
        first = min(at for ats in seen.values() for at in ats)
        elapsed = max(at for ats in seen.values() for at in ats) - first
        rate = (len(seen) - 1) / elapsed if elapsed > 0 else float("nan")
        duplicates = sum(len(v) - 1 for v in seen.values())
        assert set(seen) == ids, f"lost {len(ids - set(seen))} messages"

        # latency: one message per transaction, paced, while the workers run
        commits: dict = {}
        lat_seen: dict = {}
        for n in range(args.latency_messages):
            with tenant_context(tenant), transaction.atomic():
                holder = {}
                transaction.on_commit(lambda h=holder: h.setdefault("t", time.time()))  # runs before the dispatch
                message = services.outbox_enqueue(tenant=tenant, channel="webhook", target=url, payload={"n": n},
                                                  dispatch=dispatch)
            commits[message.message_id] = holder["t"]
            time.sleep(1.0 / args.rate)
            while True:  # collect as we go, so the queue never backs up
                try:
                    msg_id, at = hits.get_nowait()
                except queue.Empty:
                    break
                lat_seen.setdefault(msg_id, []).append(at)
        drain(hits, len(commits), lat_seen, timeout=120)
        latencies = [(lat_seen[i][0] - t) * 1000 for i, t in commits.items() if i in lat_seen]
    finally:
        workers.close()
    with system_context("bench: check"):
        undelivered = Outbox.objects.filter(tenant=tenant).exclude(status="delivered").count()
    return {"workers": workers_n, "rate": rate, "duplicates": duplicates, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "latency_n": len(latencies), "undelivered": undelivered}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["poll", "celery"], default="poll")
    parser.add_argument("--messages", type=int, default=2000, help="messages for the throughput phase")
    parser.add_argument("--latency-messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100.0, help="commits per second in the latency phase")
    parser.add_argument("--batch", type=int, default=50, help="rows per SKIP LOCKED claim (OUTBOX_BATCH_SIZE)")
    parser.add_argument("--idle", type=float, default=0.005, help="poll interval of an idle worker (poll mode)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--ceiling-seconds", type=float, default=5.0, help="how long to hammer the receiver alone")
    parser.add_argument("--calibration-seconds", type=int, default=10)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a migrated PostgreSQL database (see the module docstring)")
    if args.mode == "celery" and not os.environ.get("REDIS_URL"):
        sys.exit("--mode celery needs REDIS_URL")
    args.queue = f"bench-delivery-{os.getpid()}"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false" if args.mode == "celery" else "true"
    setup_django()
    from calibration import calibrate  # bench/ is the script's directory
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from accounts.models import Tenant
    from csplatform.celery import app
    from csplatform.tenancy import system_context

    if MigrationExecutor(connection).migration_plan(MigrationExecutor(connection).loader.graph.leaf_nodes()):
        sys.exit("the database has unapplied migrations: run `python manage.py migrate` first")
    with system_context("bench: anything else due?"):
        from delivery.models import Outbox

        others = Outbox.objects.filter(status__in=["pending", "failed", "sending"]).count()
    if others:  # e.g. left by a killed run: the workers would spend their time on them (to a dead port)
        sys.exit(f"the database has {others} undelivered outbox messages of other tenants; use a database without")
    app.conf.task_default_queue = args.queue
    app.conf.task_routes = {}  # every task on the bench's own queue, not on the lanes of CELERY_TASK_ROUTES

    port_out, hits, stop = mp.Queue(), mp.Queue(), mp.Event()
    receiver = mp.Process(target=_receiver, args=(port_out, hits, stop), daemon=True)
    receiver.start()
    url = f"http://127.0.0.1:{port_out.get(timeout=10)}/bench"
    before = calibrate(args.calibration_seconds)
    ceiling = receiver_ceiling(url, hits, args.ceiling_seconds)
    print(f"receiver ceiling: {ceiling:,.0f} requests/s (2 keep-alive client processes, nothing else)", flush=True)

    slug = f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    with system_context("bench: set up"):
        tenant = Tenant.objects.create(slug=slug, name="Delivery bench")
    results = []
    try:
        for n in [int(w) for w in args.workers.split(",")]:
            results.append(run(n, args, tenant, url, hits))
            with system_context("bench: reset"):
                from delivery.models import Outbox

                Outbox.objects.filter(tenant=tenant).delete()
    finally:
        with system_context("bench: clean up"):
            Tenant.objects.filter(pk=tenant.pk).delete()
        stop.set()
        receiver.join(5)
        if args.mode == "celery":  # leftover no-op tasks of messages another task already delivered
            with app.connection_for_write() as conn:
                channel = conn.default_channel
                channel.queue_purge(args.queue)
                channel.queue_delete(args.queue)
                channel.exchange_delete(args.queue)
                channel.client.delete(f"_kombu.binding.{args.queue}", f"_kombu.binding_permanent.{args.queue}")

    after = calibrate(args.calibration_seconds)
    print(f"delivery bench ({args.mode} mode; {args.messages} messages for throughput, {args.latency_messages} at "
          f"{args.rate:g}/s for latency; batch {args.batch}"
          + (f", idle poll {args.idle * 1000:g} ms" if args.mode == "poll" else "") + ")")
    print(f"before: {before.line()}\nafter:  {after.line()}")
    print(f"receiver ceiling {ceiling:,.0f}/s = {before.ratio(ceiling)}")
    print(f"{'workers':>8} {'deliveries/s':>13} {'ratio to machine':>26} {'of ceiling':>11} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'dupes':>6} {'left':>5}")
    for r in results:
        print(f"{r['workers']:>8} {r['rate']:>13.1f} {before.ratio(r['rate']):>26} {r['rate'] / ceiling:>11.2f} "
              f"{r['p50']:>8.1f} {r['p99']:>8.1f} {r['duplicates']:>6} {r['undelivered']:>5}")
    if len(results) > 1:
        print(f"{results[-1]['workers']} workers / {results[0]['workers']}: {results[-1]['rate'] / results[0]['rate']:.2f}x")


if __name__ == "__main__":
    main()
