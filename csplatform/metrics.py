"""``/metrics``: every registered prometheus_client metric in the Prometheus text format.

Generic: apps define their counters with prometheus_client (e.g. ``crm.metrics``) and they show up
here. With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn workers + celery workers), the counters of all
processes are collected from that directory. ``METRICS_TOKEN`` (setting or environment), when set,
must be sent as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest


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


# Included at ``path("metrics", include("csplatform.metrics"))`` in csplatform/urls.py.
urlpatterns = [path("", metrics_view, name="metrics")]
