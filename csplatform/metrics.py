"""``/metrics``: every registered prometheus_client metric in the Prometheus text format.

Generic: apps define their counters with prometheus_client (e.g. ``crm.metrics``) and they show up
here. With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn workers + celery workers), the counters of all
processes are collected from that directory. ``METRICS_TOKEN`` (setting or environment), when set,
must be sent as ``Authorization: Bearer <token>``.

Most metrics are read from the database when scraped (``DatabaseCollector``: ``automation.metrics``,
``delivery.metrics``, ``crm.metrics``), so they are right whichever process serves them; celery's queue
lengths are read from the broker (``CeleryQueueCollector``). docs/observability.md lists them all.
"""

from __future__ import annotations

import hmac
import logging
import os
from contextlib import contextmanager
from typing import Iterable, Iterator

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .tenancy import system_context

log = logging.getLogger("csplatform.metrics")
# A scrape must stay cheap: a collector's statement that takes longer is cancelled and its metrics left out.
STATEMENT_TIMEOUT_MS = 2000
# Celery's queues (csplatform.celery's routes), measured when the broker is Redis.
CELERY_QUEUES = ("events", "delivery", "bulk", "default", "celery")


_database_collectors: list = []


def register_collector(collector) -> None:
    """A collector that reads the database when scraped (e.g. ``crm.metrics``): right in every process."""
    REGISTRY.register(collector)
    _database_collectors.append(collector)


def _registry():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in _database_collectors:
            registry.register(collector)
        return registry
    return REGISTRY


@require_GET
def metrics_view(request):
    token = getattr(settings, "METRICS_TOKEN", "") or os.environ.get("METRICS_TOKEN", "")
    if token:
        sent = request.META.get("HTTP_AUTHORIZATION", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


# --- reading the database when scraped ---------------------------------------------------------------

@contextmanager
def database_read(reason: str) -> Iterator[None]:
    """A collector's queries: every tenant's rows (a system context, logged at DEBUG), in a savepoint, each
    statement cancelled after ``STATEMENT_TIMEOUT_MS`` on PostgreSQL."""
    with system_context(reason), transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(STATEMENT_TIMEOUT_MS)])
        yield


class DatabaseCollector(Collector):
    """Metrics read from the database when scraped. Subclasses implement ``read(now)``; a database error
    (a timeout, the database down) leaves this collector's metrics out of the scrape instead of failing it."""

    reason = "metrics"

    def describe(self) -> Iterable:
        return []  # names are not declared up front: registering must not query the database

    def collect(self) -> Iterator:
        try:
            with database_read(self.reason):
                families = list(self.read(timezone.now()))
        except DatabaseError as exc:
            log.warning("%s: left out of this scrape: %s", self.reason, exc)
            return
        yield from families

    def read(self, now) -> Iterable:  # pragma: no cover - abstract
        raise NotImplementedError


def window_seconds() -> int:
    """How far back the "recent" metrics (runs, steps, deliveries) count: ``METRICS_WINDOW``."""
    return int(getattr(settings, "METRICS_WINDOW", 3600))


def window_label() -> str:
    seconds = window_seconds()
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def gauge_histogram(name: str, documentation: str, qs: models.QuerySet, value, bounds: tuple[float, ...], *,
                    unit=lambda seconds: seconds, to_seconds=float, label: str | None = None) -> GaugeHistogramMetricFamily:
    """A histogram of ``value`` (an expression) over the rows of ``qs`` in one query (a conditional count per
    bucket), per ``label`` if given. ``bounds`` are in seconds; ``unit(bound)`` is a bound in ``value``'s unit
    and ``to_seconds(sum)`` the sum back in seconds. A *gauge* histogram: the rows of a window, not a counter,
    so read it with ``histogram_quantile`` directly, not over ``rate()``."""
    family = GaugeHistogramMetricFamily(name, documentation, labels=[label] if label else [])
    aggregates = {f"le_{i}": models.Count("pk", filter=models.Q(_value__lte=unit(b))) for i, b in enumerate(bounds)}
    aggregates.update(n=models.Count("pk"), total=models.Sum("_value"))
    rows = qs.annotate(_value=value)
    rows = rows.values(label).annotate(**aggregates).order_by(label) if label else [rows.aggregate(**aggregates)]
    for row in rows:
        buckets = [(f"{b:g}", row[f"le_{i}"] or 0) for i, b in enumerate(bounds)] + [("+Inf", row["n"] or 0)]
        family.add_metric([row[label]] if label else [], buckets, gsum_value=to_seconds(row["total"] or 0))
    return family


# --- celery's queues (Redis broker) ----------------------------------------------------------------------

class CeleryQueueCollector(Collector):
    """``celery_queue_length{queue}``: tasks waiting in each queue (Redis LLEN, priority sub-queues included),
    and ``celery_broker_up``. Nothing when the broker is not Redis; ``celery_broker_up 0`` when it is down."""

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterator:
        url = getattr(settings, "CELERY_BROKER_URL", "") or ""
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return
        import redis  # only with a Redis broker

        lengths = GaugeMetricFamily("celery_queue_length", "Tasks waiting in each celery queue (Redis LLEN).",
                                    labels=["queue"])
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        queues = _queue_names()
        try:
            pipe = client.pipeline(transaction=False)
            for queue in queues:
                for key in _queue_keys(queue):
                    pipe.llen(key)
            counts = iter(pipe.execute())
        except redis.RedisError as exc:
            log.warning("celery queue lengths: broker unreachable: %s", exc)
            yield GaugeMetricFamily("celery_broker_up", "1 if the celery broker (Redis) answered this scrape.", value=0)
            return
        finally:
            client.close()
        for queue in queues:
            lengths.add_metric([queue], sum(next(counts) for _ in _queue_keys(queue)))
        yield lengths
        yield GaugeMetricFamily("celery_broker_up", "1 if the celery broker (Redis) answered this scrape.", value=1)


def _queue_names() -> list[str]:
    """The known queues, plus any the settings route a task to or declare."""
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    names = [route.get("queue") for route in routes.values() if isinstance(route, dict)]
    names += [getattr(q, "name", q) for q in getattr(settings, "CELERY_TASK_QUEUES", None) or ()]
    names.append(getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None))
    return list(dict.fromkeys([*CELERY_QUEUES, *[n for n in names if isinstance(n, str) and n]]))


def _queue_keys(queue: str) -> list[str]:
    # Celery's Redis transport keeps priorities 3, 6 and 9 in their own lists next to the queue's.
    return [queue] + [f"{queue}\x06\x16{priority}" for priority in (3, 6, 9)]


register_collector(CeleryQueueCollector())


# Included at ``path("metrics", include("csplatform.metrics"))`` in csplatform/urls.py.
urlpatterns = [path("", metrics_view, name="metrics")]
