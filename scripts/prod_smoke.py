"""``make prod-smoke``: the production topology as processes on this machine, one change end to end.

gunicorn (gunicorn.conf.py, 2 workers), a celery worker on ``events,delivery,default``, one on ``bulk``, beat
(DatabaseScheduler), on a fresh PostgreSQL database (``csplatform_smoke_<pid>``: migrated,
``setup_periodic_tasks``, ``create_tenant``, as the tables' owner, DATABASE_URL's role) and a private Redis (cache, results and, unless
``CELERY_BROKER_URL`` names a RabbitMQ, the broker; a RabbitMQ gets a private vhost), so overlapping runs
never take each other's tasks. Production settings (DEBUG off, collectstatic, WhiteNoise), TLS proxy
simulated with X-Forwarded-Proto. gunicorn, the workers and beat connect as the restricted runtime role
(``DATABASE_APP_ROLE``, default ``csplatform_app``, created by scripts/services.sh, granted DML by migrate;
``DATABASE_APP_PASSWORD`` if it needs one), each with its own ``application_name``, and the script watches
pg_stat_activity to prove every one of them ran as that role and none as the owner.

Through the API with create_tenant's token: a webhook secret, a rule "status -> at_risk: webhook", an
account, the account's change. A receiver on 127.0.0.1 checks the Standard Webhooks signature with the
secret, as docs/delivery.md describes. Then everything gets SIGTERM (beat and web first, the workers once
the queues are empty) and the script checks that nothing was lost or left in flight: every process exited
cleanly, every event processed, every outbox row delivered (none claimed and unfinished), the broker's
queues empty. Processes, Redis, vhost, database and temporary files are removed however it ends.

    scripts/services.sh && .venv/bin/python scripts/prod_smoke.py
    CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// .venv/bin/python scripts/prod_smoke.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import traceback
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
QUEUES = ("events", "delivery", "default", "bulk")
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[prod-smoke {time.monotonic() - STARTED:5.1f}s] {message}", flush=True)


class Failed(Exception):
    pass


def wait_for(what: str, predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise Failed(f"{what}: not within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- the webhook receiver: verifies signatures the way docs/delivery.md says -------------------------------

def signature_ok(secret: str, headers: dict, body: bytes, tolerance: int = 300) -> bool:
    """Standard Webhooks: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``, key = the base64-decoded
    part of ``whsec_...``; any of the space-separated signatures may match; the timestamp must be recent."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    given = [part.split(",", 1)[1] for part in headers.get("webhook-signature", "").split() if part.startswith("v1,")]
    return any(hmac.compare_digest(expected, signature) for signature in given)


class Receiver:
    def __init__(self):
        self.secret = ""
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = bool(receiver.secret) and signature_ok(receiver.secret, headers, body)
                receiver.requests.append({"path": self.path, "headers": headers, "body": body, "verified": verified,
                                          "at": time.time()})
                self.send_response(200 if verified else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- processes ----------------------------------------------------------------------------------------------

class Processes:
    """Every process this script starts, each in its own session (a signal reaches gunicorn's or celery's
    children only through their parent; the clean-up kills whole groups, by their ids)."""

    def __init__(self, logs: Path, env: dict):
        self.logs, self.env, self.started = logs, env, {}

    def start(self, name: str, argv: list[str], **extra_env) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")
        process = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **extra_env}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.started[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self, names, timeout: float) -> dict[str, int | None]:
        """SIGTERM to each (the production stop), then wait; returns the exit codes (None: still running)."""
        for name in names:
            if self.started[name].poll() is None:
                self.started[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes = {}
        for name in names:
            try:
                codes[name] = self.started[name].wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[name] = None
        return codes

    def kill_all(self) -> None:
        """Whatever is left of each group this script created (the process and its children), by group id."""
        for process in self.started.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # children their parent left behind
            except ProcessLookupError:
                pass
            process.wait()


class SessionWatcher:
    """Which database role each process of the topology connects as: polls pg_stat_activity for sessions on
    the smoke database whose ``application_name`` (PGAPPNAME, set per process) says which process opened them.
    Django opens a connection per request or task and closes it after (a short task's lives ~30 ms), hence the
    tight poll, and ``wait_seen``, which gives a process not seen yet more work until it is."""

    PREFIX = "prod-smoke-"

    def __init__(self, admin_url: str, database: str):
        import psycopg

        self.conn = psycopg.connect(admin_url, autocommit=True)
        self.database, self.seen = database, {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self) -> None:
        while not self.stopping.wait(0.01):
            rows = self.conn.execute(
                "SELECT DISTINCT application_name, usename FROM pg_stat_activity "
                "WHERE datname = %s AND application_name LIKE %s", [self.database, self.PREFIX + "%"]).fetchall()
            for application, role in rows:
                self.seen.setdefault(application.removeprefix(self.PREFIX), set()).add(role)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.conn.close()

    def wait_seen(self, nudges: dict, tries: int = 10) -> None:
        """``nudges``: process name -> a callable giving it database work; called until the process is seen."""
        for _ in range(tries):
            unseen = [name for name in nudges if name not in self.seen]
            if not unseen:
                return
            for name in unseen:
                nudges[name]()
            time.sleep(2)

    def check(self, names, role: str) -> dict[str, set[str]]:
        """Every named process was seen connected, and only as ``role``."""
        unseen = [name for name in names if name not in self.seen]
        wrong = {name: roles for name, roles in self.seen.items() if roles != {role}}
        if unseen or wrong:
            raise Failed(f"processes not seen on the database: {unseen}; connected as another role than "
                         f"{role}: {wrong}")
        return self.seen


def runtime_role(admin_url: str) -> str:
    """The restricted runtime role (scripts/services.sh creates it): must exist, log in, and be neither a
    superuser nor able to bypass row-level security, or the smoke test would prove nothing about RLS."""
    import psycopg

    role = os.environ.get("DATABASE_APP_ROLE") or "csplatform_app"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT rolcanlogin, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s",
                           [role]).fetchone()
    if row is None or not row[0]:
        raise Failed(f"the runtime role {role!r} does not exist or cannot log in: run scripts/services.sh")
    if row[1]:
        raise Failed(f"the runtime role {role!r} is a superuser or bypasses row-level security")
    return role


def as_role(url: str, role: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    auth = urllib.parse.quote(role, safe="") + (f":{urllib.parse.quote(password, safe='')}" if password else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{auth}@{parts.hostname}:{parts.port or 5432}"))


def manage(env: dict, *args: str, timeout: float = 120) -> str:
    result = subprocess.run([str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode:
        raise Failed(f"manage.py {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}")
    return result.stdout


# --- the broker -------------------------------------------------------------------------------------------

def rabbitmq_vhost(url: str, name: str) -> tuple[str, str | None]:
    """A private vhost on the RabbitMQ the URL names (started with ``rabbitmq-server -detached`` when it is
    local and down); returns the URL on that vhost and the vhost to delete, or the URL as it is."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if not port_open(host, port) and host in ("127.0.0.1", "localhost") and shutil.which("rabbitmq-server"):
        say("RabbitMQ is down: rabbitmq-server -detached")
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        wait_for("RabbitMQ to accept connections", lambda: port_open(host, port), 60, 0.5)
    if not port_open(host, port):
        raise Failed(f"no RabbitMQ on {host}:{port}")
    if not shutil.which("rabbitmqctl") or host not in ("127.0.0.1", "localhost"):
        say("no rabbitmqctl for a private vhost: using the URL's vhost as it is")
        return url, None
    user = parts.username or "guest"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"], check=True,
                   capture_output=True)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(name, safe=""))), name


def queue_depths(app) -> dict[str, int]:
    """Messages waiting (or delivered but unacknowledged) in each lane's queue."""
    depths = {}
    for queue in QUEUES:
        with app.connection_for_write() as conn:
            try:
                depths[queue] = conn.default_channel.queue_declare(queue=queue, passive=True).message_count
            except Exception:  # a queue nobody declared yet holds nothing
                depths[queue] = 0
            client = getattr(conn.default_channel, "client", None)  # Redis: acks_late tasks not yet acknowledged
            if client is not None and queue == QUEUES[-1]:
                depths["unacked"] = client.hlen("unacked")
    return depths


# --- the run ------------------------------------------------------------------------------------------------

def run(state: dict) -> None:
    pid = os.getpid()
    server = os.environ.get("DATABASE_URL", "postgres://csplatform@127.0.0.1:5432/csplatform")
    server_parts = urllib.parse.urlsplit(server)
    database = f"csplatform_smoke_{pid}"
    database_url = urllib.parse.urlunsplit(server_parts._replace(path=f"/{database}"))
    admin_url = urllib.parse.urlunsplit(server_parts._replace(path="/postgres"))
    app_role = runtime_role(admin_url)
    runtime_url = as_role(database_url, app_role, os.environ.get("DATABASE_APP_PASSWORD", ""))

    import psycopg
    from cryptography.fernet import Fernet

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    state["drop_database"] = (admin_url, database)

    redis_port = free_port()
    state["redis"] = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, start_new_session=True)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    wait_for("the private Redis", lambda: port_open("127.0.0.1", redis_port), 10)

    broker = os.environ.get("CELERY_BROKER_URL", "")
    if broker.startswith("amqp"):
        broker, state["vhost"] = rabbitmq_vhost(broker, database)
    else:
        broker = redis_url
    say(f"database {database}, Redis :{redis_port}, broker {urllib.parse.urlsplit(broker).scheme} "
        f"{urllib.parse.urlsplit(broker).path or ''}")

    tmp = Path(state["tmp"])
    web_port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "CELERY_", "GUNICORN_", "PROMETHEUS_", "OUTBOX_", "AUTOMATION_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "csplatform.settings", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        "DATABASE_APP_ROLE": app_role,  # migrate grants it DML; the web, workers and beat connect as it
        "CELERY_BROKER_URL": broker, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
        "DJANGO_STATIC_ROOT": str(tmp / "static"), "OUTBOUND_ALLOW_LOOPBACK": "true", "PYTHONUNBUFFERED": "1",
        # One flow end to end: the default journeys' steps wait hours by design and would stay pending.
        "CRM_DEFAULT_JOURNEYS": "false",
        "GUNICORN_BIND": f"127.0.0.1:{web_port}", "GUNICORN_WORKERS": "2", "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    })
    os.environ.update(env)  # this process reads the database and the broker with the same settings
    import django

    django.setup()  # connects to nothing yet
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the settings log every request of this script at INFO

    collect = subprocess.Popen([str(VENV_BIN / "python"), "manage.py", "collectstatic", "--noinput"], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state["helpers"] = [collect]
    manage(env, "migrate", "--noinput")  # what compose's one-shot `migrate` service runs, in its order
    manage(env, "setup_periodic_tasks")
    if collect.wait(60):
        raise Failed(f"collectstatic failed: {collect.stderr.read()[-3000:]}")
    say("migrated, periodic tasks set up, static files collected")

    # The topology runs as the runtime role; migrate above and the operator's create_tenant below as the owner.
    procs = state["processes"] = Processes(tmp, {**env, "DATABASE_URL": runtime_url})
    watcher = state["watcher"] = SessionWatcher(admin_url, database)
    # The tenant is made while the services start (an operator's step, not part of the topology).
    tenant = subprocess.Popen([str(VENV_BIN / "python"), "manage.py", "create_tenant", "smoke", "Smoke Test Inc",
                               "--admin-email", "admin@smoke.test", "--admin-password", secrets.token_urlsafe(16)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state["helpers"].append(tenant)
    celery = [str(VENV_BIN / "celery"), "-A", "csplatform"]
    topology = {
        "web": [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"],
        "worker": celery + ["worker", "-Q", "events,delivery,default", "-n", f"events-{pid}@%h", "--concurrency", "2",
                            "--loglevel", "INFO"],
        "worker-bulk": celery + ["worker", "-Q", "bulk", "-n", f"bulk-{pid}@%h", "--concurrency", "1",
                                 "--prefetch-multiplier", "1", "--loglevel", "INFO"],
        "beat": celery + ["beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler", "--loglevel", "INFO"],
    }
    for name, argv in topology.items():
        procs.start(name, argv, PGAPPNAME=SessionWatcher.PREFIX + name)
    for name, process in procs.started.items():
        if process.poll() is not None:
            raise Failed(f"{name} exited at once:\n{procs.log(name)[-3000:]}")

    out, err = tenant.communicate(timeout=120)
    if tenant.returncode:
        raise Failed(f"create_tenant failed: {out[-1000:]}{err[-3000:]}")
    token = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("api_token:"))

    import httpx

    base = f"http://127.0.0.1:{web_port}"
    headers = {"Authorization": f"Token {token}", "X-Forwarded-Proto": "https"}

    def ready():
        try:
            return httpx.get(f"{base}/readyz", headers=headers, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("gunicorn to answer /readyz with 200", ready, 30, 0.3)
    checks = httpx.get(f"{base}/readyz", headers=headers, timeout=5).json()["checks"]
    if broker.startswith("amqp") and checks.get("broker") != "ok":  # RabbitMQ is checked, not only Redis
        raise Failed(f"/readyz did not check the RabbitMQ broker: {checks}")
    health = subprocess.run([str(VENV_BIN / "python"), "scripts/healthcheck.py", "healthz"], cwd=ROOT,
                            env={**env, "PORT": str(web_port)}, capture_output=True, text=True, timeout=30)
    if health.returncode:
        raise Failed(f"the container health check (scripts/healthcheck.py) failed: {health.stderr}")
    for name in ("worker", "worker-bulk"):
        wait_for(f"{name} to be ready", lambda name=name: " ready." in procs.log(name), 30, 0.2)
    say(f"gunicorn (2 workers), both celery workers and beat are up; /readyz: {checks}")
    check_static(base, Path(env["DJANGO_STATIC_ROOT"]))

    receiver = state["receiver"] = Receiver()
    api = httpx.Client(base_url=base, headers=headers, timeout=10)

    def call(method, path, expect, **kwargs):
        response = api.request(method, path, **kwargs)
        if response.status_code != expect:
            raise Failed(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    receiver.secret = call("POST", "/api/webhook-secrets/", 201, json={"overlap_hours": 0})["secret"]
    call("POST", "/api/admin/automation", 201, json={
        "name": "At-risk webhook", "status": "active", "trigger_type": "field_changed", "model_type": "account",
        "trigger_config": {"field": "status", "to": "at_risk"},
        "actions": [{"type": "webhook", "config": {"url": f"{receiver.url}/hooks/at-risk", "payload": {
            "account": "{{ account.name }}", "event": "{{ trigger_event }}"}}}]})
    account = call("POST", "/api/accounts/", 201, json={"name": "TechStart Solutions"})
    changed_at = time.time()
    call("PATCH", f"/api/accounts/{account['id']}/", 200, json={"status": "at_risk"})
    wait_for("the signed webhook at the receiver", lambda: receiver.requests, 30, 0.02)
    request = receiver.requests[0]
    if not request["verified"]:
        raise Failed(f"the webhook's signature did not verify: {request['headers']}")
    body = json.loads(request["body"])
    if body.get("account") != "TechStart Solutions":
        raise Failed(f"unexpected webhook body: {body}")
    say(f"account change -> signed webhook verified at the receiver in {request['at'] - changed_at:.2f} s "
        f"(webhook-id {request['headers']['webhook-id']})")

    # The bulk lane and beat: a bulk task published by this process lands on the bulk worker; beat sends its
    # first due periodic task (the outbox pass every 15 s) to the delivery lane.
    from csplatform.celery import app

    app.send_task("automation.tasks.run_scheduled_rules_task")
    wait_for("the bulk worker to run run_scheduled_rules_task", lambda: re.search(
        r"Task automation\.tasks\.run_scheduled_rules_task\[[^]]+\] succeeded", procs.log("worker-bulk")), 30, 0.2)
    wait_for("beat to send a periodic task that a worker runs", lambda: "Sending due task" in procs.log("beat")
             and re.search(r"Task automation\.delivery\.deliver_outbox\[[^]]+\] succeeded", procs.log("worker")),
             40, 0.3)
    say("bulk lane ran a bulk task; beat's outbox pass ran on the delivery lane")
    watcher.wait_seen({
        "web": lambda: api.get("/api/tenant/"),
        "worker": lambda: app.send_task("automation.delivery.deliver_outbox"),
        "worker-bulk": lambda: app.send_task("automation.tasks.run_scheduled_rules_task"),
        "beat": lambda: None,  # DatabaseScheduler reads its schedule every 5 s
    })
    watcher.close()
    roles = watcher.check(topology, app_role)
    say(f"every process connected as the runtime role {app_role} only: "
        + ", ".join(f"{name} {sorted(roles[name])}" for name in topology))

    # Stop: no new work first (beat, web), the workers once their queues are empty; all with SIGTERM.
    stopping = time.monotonic()
    codes = procs.stop(["beat", "web"], timeout=40)
    front = time.monotonic() - stopping
    wait_for("the queues to drain", lambda: not any(queue_depths(app).values()), 20, 0.3)
    stopping = time.monotonic()
    codes.update(procs.stop(["worker", "worker-bulk"], timeout=60))
    say(f"beat and web stopped in {front:.1f} s, the workers in {time.monotonic() - stopping:.1f} s")
    bad = {name: code for name, code in codes.items() if code != 0}
    if bad:
        raise Failed(f"processes that did not exit cleanly on SIGTERM (None: still running): {bad}\n"
                     + "\n".join(f"--- {n}\n{procs.log(n)[-2000:]}" for n in bad))
    say(f"SIGTERM: every process exited with 0 ({', '.join(codes)})")
    check_nothing_lost(app, receiver)


def check_static(base: str, static_root: Path) -> None:
    """WhiteNoise serves collectstatic's hashed names with a far-future cache header."""
    import httpx

    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    hashed = manifest["admin/css/base.css"]
    response = httpx.get(f"{base}/static/{hashed}", headers={"Accept-Encoding": "gzip", "X-Forwarded-Proto": "https"},
                         timeout=5)
    if response.status_code != 200 or "immutable" not in response.headers.get("cache-control", ""):
        raise Failed(f"/static/{hashed}: {response.status_code} {dict(response.headers)}")
    say(f"WhiteNoise served /static/{hashed} ({response.headers.get('content-encoding', 'identity')}, "
        f"{response.headers['cache-control']})")


def check_nothing_lost(app, receiver: Receiver) -> None:
    from automation.models import Event, Run
    from csplatform.tenancy import system_context
    from delivery.models import Outbox

    with system_context("prod-smoke: final checks"):
        events = list(Event.objects.values_list("type", "processed_at", "failed_at", "attempts"))
        messages = list(Outbox.objects.values_list("message_id", "status", "attempts", "claimed_at"))
        runs = list(Run.objects.values_list("status", flat=True))
    problems = []
    if not events or any(processed is None or failed is not None for _, processed, failed, _ in events):
        problems.append(f"events not all processed: {events}")
    if not messages or any(status != Outbox.Status.DELIVERED for _, status, _, _ in messages):
        problems.append(f"outbox rows not all delivered (sending = claimed but unfinished): {messages}")
    if set(runs) - {Run.Status.SUCCESS}:
        problems.append(f"runs not all successful: {runs}")
    delivered_ids = sorted(m[0] for m in messages)
    received_ids = sorted(r["headers"].get("webhook-id") for r in receiver.requests)
    if delivered_ids != received_ids or not all(r["verified"] for r in receiver.requests):
        problems.append(f"receiver got {received_ids}, outbox delivered {delivered_ids}")
    depths = queue_depths(app)
    if any(depths.values()):
        problems.append(f"messages left in the broker: {depths}")
    if problems:
        raise Failed("; ".join(problems))
    say(f"nothing lost: {len(events)} event(s) processed, {len(messages)} outbox row(s) delivered once, "
        f"{len(runs)} run(s) succeeded, queues empty {depths}")


def clean_up(state: dict) -> None:
    if "receiver" in state:
        state["receiver"].close()
    if "watcher" in state and not state["watcher"].stopping.is_set():
        state["watcher"].close()
    for helper in state.get("helpers", []):  # collectstatic, create_tenant: still running if interrupted
        if helper.poll() is None:
            helper.kill()
            helper.wait()
    if "processes" in state:
        state["processes"].kill_all()
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # Django was never set up
        pass
    if "redis" in state:
        state["redis"].terminate()
        try:
            state["redis"].wait(10)
        except subprocess.TimeoutExpired:
            state["redis"].kill()
    vhost = subprocess.Popen(["rabbitmqctl", "-q", "delete_vhost", state["vhost"]], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) if state.get("vhost") else None  # meanwhile: the database
    if "drop_database" in state:
        import psycopg

        admin_url, database = state["drop_database"]
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    if vhost is not None:
        vhost.wait(60)
    shutil.rmtree(state["tmp"], ignore_errors=True)


def main() -> int:
    sys.path.insert(0, str(ROOT))

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    state: dict = {"tmp": tempfile.mkdtemp(prefix="csplatform-smoke-")}
    ok = False
    try:
        run(state)
        ok = True
    except (Exception, KeyboardInterrupt) as exc:
        say(f"FAILED: {exc}" if isinstance(exc, (Failed, KeyboardInterrupt)) else f"FAILED:\n{traceback.format_exc()}")
        if "processes" in state:
            for name in state["processes"].started:
                print(f"--- last lines of {name}.log\n{state['processes'].log(name)[-1500:]}", flush=True)
    finally:
        cleaning = time.monotonic()
        clean_up(state)
        say(f"clean-up took {time.monotonic() - cleaning:.1f} s")
    say(("passed" if ok else "failed") + f" in {time.monotonic() - STARTED:.1f} s (processes, database, "
        "Redis and temporary files removed)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
