"""``/healthz`` (liveness: the process answers) and ``/readyz`` (readiness: what it needs is there).

``/readyz`` checks PostgreSQL (a query), Redis when one is configured (a PING with a short timeout; advisory), the
celery broker when it is another server (RabbitMQ, or a Redis elsewhere: a kombu connection, no retry; advisory)
and that every migration is applied, and answers 200 with each check's result, or 503 naming what is down, so a
load balancer stops sending traffic and an operator sees why. Neither needs a login or reveals more than up/down.

Apps add checks with ``register_check`` (from their ``AppConfig.ready``). An *advisory* check is reported but
does not make the process unready: automation's ``scheduler`` (beat or ``tick`` silent) says the background
clock stopped, ``redis`` and ``broker`` that work is not being handed to the workers; taking every web process out of
the load balancer would mend neither.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _database() -> str:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _migrations() -> str:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return "ok" if not pending else f"{len(pending)} not applied"


def _redis() -> str:
    if not settings.REDIS_URL:
        return "not used (embedded mode)"
    import redis  # only when a Redis is configured

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


BROKER_TIMEOUT = 1.0  # seconds: a load balancer asks often, and a broker that slow is as good as down


def _same_server(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _broker() -> str | None:
    """The broker web processes hand events and messages to; None (no line in the answer) when it is the
    in-memory one of embedded mode or a database of the Redis server already checked."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://") or (settings.REDIS_URL and _same_server(url, settings.REDIS_URL)):
        return None
    from kombu import Connection  # celery's own client, whatever the transport (amqp://, redis://, ...)

    with Connection(url, connect_timeout=BROKER_TIMEOUT) as connection:
        connection.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT)
    return "ok"


CHECKS = {"database": _database, "redis": _redis, "broker": _broker, "migrations": _migrations}
# A Redis or broker outage degrades, it does not stop the API: changes still commit and their events wait for
# the sweeper, the cache and throttles fail open (tests/security/test_redis_down.py). Taking every web process
# out of the load balancer would turn that into an outage, so either being down is reported, not a 503.
ADVISORY: set[str] = {"redis", "broker"}


def register_check(name: str, check, *, advisory: bool = False) -> None:
    """Add a readiness check: a callable returning "ok" (or "not used ...") when fine, None when it does not
    apply to this deployment, else what is wrong."""
    if name in CHECKS:
        raise ValueError(f"readiness check '{name}' is already registered")
    CHECKS[name] = check
    if advisory:
        ADVISORY.add(name)


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    results, ready = {}, True
    for name, check in CHECKS.items():
        try:
            result = check()
        except Exception as exc:  # anything a dependency raises means "not ready", never a 500
            result = f"down: {type(exc).__name__}"
        if result is None:
            continue
        results[name] = result
        if results[name] != "ok" and not results[name].startswith("not used") and name not in ADVISORY:
            ready = False
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503)


urlpatterns = [path("healthz", healthz, name="healthz"), path("readyz", readyz, name="readyz")]
