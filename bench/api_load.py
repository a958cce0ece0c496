"""Load benchmark: the API and the cockpit under gunicorn (2 sync workers) with 10 and 50 concurrent users.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/api_load.py   # --accounts 10000 --duration 60 --users 10,50 --think-ms 0,1000 --runs 1
    # a quick check of one scenario: --only list --users 10 --duration 10 --think-ms 0

Needs ``wrk`` (the load generator; Debian: ``apt-get install -y wrk``): the script says so and stops when it
is missing. It never touches the database DATABASE_URL names: it creates a throwaway database next to it
(``bench_api_<pid>``, migrated, row-level security on), fills one tenant with ``--accounts`` accounts and their
history (``cockpit_bench.populate``: weekly health scores, ``--usage-days`` of usage, notes, tasks, runs,
outbox messages …), starts ``gunicorn -c gunicorn.conf.py`` on 127.0.0.1 with ``GUNICORN_WORKERS=2``, as
production runs behind a TLS proxy (``X-Forwarded-Proto: https``), and for each scenario and number of users
runs ``wrk`` (one connection per user) for ``--duration`` seconds, once for each ``--think-ms``:

* ``0``, a closed loop: each user sends its next request as soon as the last one answered, so the server is
  always busy and latency is about ``users / requests per second`` (a queue, not the time of one request);
* ``1000`` (or any other value), a user who thinks: after each answer a user waits that long (uniformly
  between half and one and a half times it, so the users do not fall into step) before the next request, as a
  person reading a page does; latency is then the server's time plus whatever queue the users make.

The scenarios (``--only`` picks some, by the short name in brackets):

* ``GET /api/accounts/?page_size=50`` (``list``) and ``GET /api/accounts/<id>/`` (``detail``, 100 accounts in
  turn), token auth;
* ``POST /api/health-scores/`` (``health``: a new score for one of 100 accounts: events, rules, the on-commit
  hand-over to celery through REDIS_URL; nothing consumes them, the bench empties those queues at the end);
* the customer 360 page ``/admin/accounts/account/<id>/360/`` (``360``) with a logged-in session.

It prints p50/p99 latency, requests/s and errors per scenario, the machine's calibration before and after,
and requests/s as ratios to it. Goal: p99 < 150 ms for reads at 10 users. The API's per-user throttle
(``API_THROTTLE_USER``) is lifted for the run: one token is every simulated user here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")
os.environ.setdefault("DJANGO_ALLOW_GENERATED_SECRET", "true")

READ_SCENARIOS = {"accounts list", "account detail", "customer 360"}
SHORT_NAMES = {"list": "accounts list", "detail": "account detail", "health": "health score", "360": "customer 360"}
LUA = """
local paths = {%(paths)s}
local n = 0
wrk.method = "%(method)s"
wrk.headers["X-Forwarded-Proto"] = "https"
%(headers)s
request = function()
  n = n + 1
  local path = paths[(n %% #paths) + 1]
  local body = nil
  if wrk.method == "POST" then body = string.format('%(body)s', path) ; path = "%(post_path)s" end
  return wrk.format(nil, path, nil, body)
end
%(think)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "status_errors": %%d, "socket_errors": %%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--usage-days", type=int, default=30)
    parser.add_argument("--duration", type=int, default=60, help="seconds per scenario and number of users")
    parser.add_argument("--users", default="10,50")
    parser.add_argument("--runs", type=int, default=1, help="repeat the scenarios on the same data")
    parser.add_argument("--think-ms", default="0,1000",
                        help="comma-separated think times in ms, each a set of rows; 0: closed loop (no think time)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated scenarios, by short name ({', '.join(SHORT_NAMES)}) (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()
    try:
        args.users = [int(u) for u in args.users.split(",")]
        args.think_ms = [int(t) for t in args.think_ms.split(",")]
    except ValueError:
        parser.error("--users and --think-ms take comma-separated whole numbers")
    if min(args.users) < 1 or min(args.think_ms) < 0:
        parser.error("--users must be positive and --think-ms 0 or more")
    args.only = [SHORT_NAMES.get(name.strip(), name.strip()) for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(SHORT_NAMES.values())
    if unknown:
        parser.error(f"--only: unknown scenario {', '.join(sorted(unknown))} (known: {', '.join(SHORT_NAMES)})")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("set DATABASE_URL (a PostgreSQL server; a throwaway database is created next to it)")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: it is the load generator of this benchmark (Debian/Ubuntu: "
                 "`sudo apt-get install -y wrk`; macOS: `brew install wrk`)")

    from throwaway_db import run_in_throwaway_database  # bench/ is the script's directory

    run_in_throwaway_database("bench_api", lambda: run(args), keep=args.keep)


def run(args) -> None:
    from calibration import calibrate
    from cockpit_bench import populate_analyzed
    from django.db import connection

    from csplatform.tenancy import system_context

    with system_context("benchmark set-up"):
        tenant, admin, _csm, _busy = populate_analyzed(args.accounts, args.usage_days)
        token, session, account_ids = credentials(tenant, admin)
    database_url = urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + connection.settings_dict["NAME"]))
    connection.close()  # gunicorn's workers are the ones working now

    before = calibrate()
    results = []
    with Gunicorn(database_url) as server:
        scenarios = build_scenarios(tenant, token, session, account_ids)
        if args.only:
            scenarios = {k: v for k, v in scenarios.items() if k in args.only}
        for run_no in range(1, args.runs + 1):
            for name, scenario in scenarios.items():
                probe(server.url, scenario)
                for think in args.think_ms:
                    for users in args.users:
                        result = wrk(server.url, lua_of(scenario, think), users, args.duration)
                        result.update(run=run_no, scenario=name, users=users, think=think)
                        results.append(result)
                        print(f"  run {run_no} {name:<16} {users:>3} users, {load_words(think)}: {line(result, before)}",
                              flush=True)
    after = calibrate()
    purge_celery_queues()
    print(f"\nAPI and cockpit under gunicorn (2 sync workers, {args.accounts:,} accounts, {args.duration}s per row)")
    print(f"before: {before.line()}\nafter:  {after.line()}")
    for think in args.think_ms:
        print(f"\n{load_words(think)}: " + (
            "each user sends its next request as soon as the last one answered (latency ~ users / req/s)" if not think
            else f"each user waits {think // 2}-{think * 3 // 2} ms after an answer before its next request"))
        print(f"{'run':>3} {'scenario':<16} {'users':>5} {'req/s':>7} {'ratio to machine':>26} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'errors':>6}  goal")
        for r in (r for r in results if r["think"] == think):
            goal = ""
            if r["scenario"] in READ_SCENARIOS and r["users"] == 10:
                goal = "ok (p99 < 150 ms)" if r["p99_ms"] < 150 else "MISSED (p99 >= 150 ms)"
            print(f"{r['run']:>3} {r['scenario']:<16} {r['users']:>5} {r['rps']:>7.1f} {before.ratio(r['rps']):>26} "
                  f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['errors']:>6}  {goal}")


def load_words(think_ms: int) -> str:
    return f"think {think_ms} ms" if think_ms else "closed loop"


def line(r: dict, calibration) -> str:
    return (f"{r['rps']:.1f} req/s ({calibration.ratio(r['rps'])}), p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"{r['errors']} errors")


def credentials(tenant, admin):
    """An API token and a logged-in session of the tenant admin, and 100 account ids to spread requests over."""
    from django.conf import settings
    from django.test import Client
    from accounts.models import Account
    from accounts.tokens import api_token_issue

    _, key = api_token_issue(user=admin, name="api load benchmark")
    client = Client()
    client.force_login(admin)
    ids = list(Account.objects.for_tenant(tenant).values_list("pk", flat=True))
    return key, client.cookies[settings.SESSION_COOKIE_NAME].value, [str(i) for i in random.Random(1).sample(ids, 100)]


def build_scenarios(tenant, token, session, account_ids) -> dict[str, dict]:
    """name -> {method, paths (in turn), headers, body (a format with the account id, for POST), post_path}."""
    from django.conf import settings

    api = {"Authorization": f"Token {token}", "X-Tenant-ID": str(tenant.pk)}
    post_body = ('{"account": "%s", "usage_score": 71, "engagement_score": 64, "support_sentiment_score": 80, '
                 '"adoption_score": 58}')
    return {
        "accounts list": {"paths": ["/api/accounts/?page_size=50"], "headers": api},
        "account detail": {"paths": [f"/api/accounts/{i}/" for i in account_ids], "headers": api},
        "health score": {"method": "POST", "paths": account_ids, "body": post_body, "post_path": "/api/health-scores/",
                         "headers": {**api, "Content-Type": "application/json"}},
        "customer 360": {"paths": [f"/admin/accounts/account/{i}/360/" for i in account_ids],
                         "headers": {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"}},
    }


def lua_of(scenario: dict, think_ms: int = 0) -> str:
    """The wrk script of a scenario; with ``think_ms``, wrk's ``delay()`` holds each connection that long (half to
    one and a half times, at random per request) after an answer, before its next request."""
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in scenario["headers"].items())
    think = ""
    if think_ms:
        think = ("local threads = 0\n"  # each wrk thread its own seed: their users do not think in step
                 "setup = function(thread) threads = threads + 1; thread:set('seed', threads) end\n"
                 "init = function(args) math.randomseed(os.time() * 100 + seed) end\n"
                 f"delay = function() return math.random({think_ms // 2}, {think_ms * 3 // 2}) end")
    return LUA % {"paths": ", ".join(f'"{p}"' for p in scenario["paths"]), "method": scenario.get("method", "GET"),
                  "headers": headers, "body": scenario.get("body", ""), "post_path": scenario.get("post_path", ""),
                  "think": think}


def probe(url: str, scenario: dict) -> None:
    """One request as wrk will send it: stop with the answer if it is not a success (a wrong header, a 500)."""
    method = scenario.get("method", "GET")
    path, body = scenario["paths"][0], None
    if method == "POST":
        path, body = scenario["post_path"], (scenario["body"] % scenario["paths"][0]).encode()
    request = urllib.request.Request(url + path, data=body, method=method,
                                     headers={**scenario["headers"], "X-Forwarded-Proto": "https"})
    try:
        urllib.request.urlopen(request, timeout=30).read()
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{method} {path} answered {exc.code}: {exc.read()[:1000]!r}") from None


def wrk(url: str, lua: str, users: int, duration: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(["wrk", "-t", str(min(users, 2)), "-c", str(users), "-d", f"{duration}s", "--timeout", "10s",
                              "-s", script.name, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    data = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    return {"rps": data["requests"] / (data["duration_us"] / 1e6), "p50_ms": data["p50_us"] / 1000,
            "p99_ms": data["p99_us"] / 1000, "errors": data["status_errors"] + data["socket_errors"]}


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py`` on a free loopback port with 2 workers, on the throwaway database."""

    def __init__(self, database_url: str):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": database_url, "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                    "GUNICORN_WORKERS": "2", "API_THROTTLE_USER": "100000000/minute",
                    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https", "CELERY_TASK_ALWAYS_EAGER": "false"}
        self.proc = None

    def __enter__(self) -> "Gunicorn":
        gunicorn = shutil.which("gunicorn", path=str(ROOT / ".venv" / "bin")) or "gunicorn"
        # Without DEBUG static names carry a content hash from collectstatic's manifest, as a deploy runs it.
        self.static = tempfile.TemporaryDirectory(prefix="bench_api_static_")
        self.env["DJANGO_STATIC_ROOT"] = self.static.name
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=self.env,
                       check=True)
        self.log = open(os.devnull, "w")  # the access log: one line per request, as in production, not kept
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([gunicorn, "-c", "gunicorn.conf.py"], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=self.errors, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None:
                    self.errors.seek(0)
                    sys.exit(f"gunicorn did not start:\n{self.errors.read().decode()[-3000:]}")
                time.sleep(0.5)
        raise RuntimeError("gunicorn did not answer /healthz within 60 s")

    def __exit__(self, *exc) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()
        self.errors.close()
        self.static.cleanup()


def purge_celery_queues() -> None:
    """The events and deliveries the health-score posts handed to celery: no worker ran, drop them."""
    from django.conf import settings

    from csplatform.celery import app

    if settings.CELERY_BROKER_URL.startswith("memory"):
        return
    names = {settings.CELERY_TASK_DEFAULT_QUEUE} | {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    with app.connection_for_write() as conn:
        for name in names:
            try:
                conn.default_channel.queue_purge(name)
            except Exception:  # a queue nothing was sent to
                pass


if __name__ == "__main__":
    main()
