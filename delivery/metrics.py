"""Prometheus metrics of the outbox, read from the database when scraped (``/metrics``, docs/observability.md):

    delivery_outbox_backlog{channel,status}           messages still to deliver: pending, sending, failed (retrying)
    delivery_outbox_oldest_due_age_seconds            how long the oldest due message has been due (0 when none)
    delivery_outbox_dead{channel}                     dead messages kept (until retention purges them)
    delivery_messages_recent{channel,status}          messages created in the last METRICS_WINDOW, by where they are now
    delivery_latency_seconds{channel}                 a gauge histogram: created -> delivered, of those delivered

The backlog and the oldest due message come from the partial due index, the window from ``created_at``.
"""

from __future__ import annotations

import datetime

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min
from prometheus_client.core import GaugeMetricFamily

from csplatform.metrics import DatabaseCollector, gauge_histogram, window_label, window_seconds

from .models import Outbox

S = Outbox.Status
BACKLOG = (S.PENDING, S.SENDING, S.FAILED)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


class OutboxCollector(DatabaseCollector):
    reason = "metrics: outbox"

    def read(self, now):
        backlog = GaugeMetricFamily("delivery_outbox_backlog",
                                    "Outbox messages still to deliver, by channel and status (pending, sending, "
                                    "failed = waiting for a retry).", labels=["channel", "status"])
        for row in (Outbox.objects.filter(status__in=BACKLOG).values("channel", "status")
                    .annotate(n=Count("pk")).order_by("channel", "status")):
            backlog.add_metric([row["channel"], row["status"]], row["n"])
        yield backlog
        oldest = Outbox.objects.filter(status__in=(S.PENDING, S.FAILED), next_attempt_at__lte=now).aggregate(
            at=Min("next_attempt_at"))["at"]
        yield GaugeMetricFamily("delivery_outbox_oldest_due_age_seconds",
                                "How long the oldest due outbox message (pending or retrying, next attempt reached) "
                                "has waited for a worker; 0 when none is due.",
                                value=max(0.0, (now - oldest).total_seconds()) if oldest else 0)
        dead = GaugeMetricFamily("delivery_outbox_dead", "Dead outbox messages (kept until retention purges them), "
                                 "by channel.", labels=["channel"])
        for row in Outbox.objects.filter(status=S.DEAD).values("channel").annotate(n=Count("pk")).order_by("channel"):
            dead.add_metric([row["channel"]], row["n"])
        yield dead
        since = now - datetime.timedelta(seconds=window_seconds())
        recent = Outbox.objects.filter(created_at__gte=since)
        outcomes = GaugeMetricFamily(
            "delivery_messages_recent",
            f"Outbox messages created in the last {window_label()} (METRICS_WINDOW), by channel and status now "
            f"(delivered, dead, failed = retrying, pending, sending).", labels=["channel", "status"])
        for row in recent.values("channel", "status").annotate(n=Count("pk")).order_by("channel", "status"):
            outcomes.add_metric([row["channel"], row["status"]], row["n"])
        yield outcomes
        yield gauge_histogram(
            "delivery_latency_seconds",
            f"Time from writing an outbox message to its delivery, for the messages created in the last "
            f"{window_label()} (METRICS_WINDOW) and delivered; a gauge histogram of that window (no rate()).",
            recent.filter(status=S.DELIVERED, delivered_at__isnull=False),
            ExpressionWrapper(F("delivered_at") - F("created_at"), output_field=DurationField()), LATENCY_BUCKETS,
            unit=lambda seconds: datetime.timedelta(seconds=seconds), to_seconds=_seconds, label="channel")


def _seconds(total) -> float:
    return total.total_seconds() if isinstance(total, datetime.timedelta) else float(total) / 1_000_000
