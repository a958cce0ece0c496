"""Prometheus metrics of the event path, read from the database when scraped (``/metrics``, docs/observability.md):

    automation_events_pending                          events waiting to be processed
    automation_events_failed                           events set aside after failing (admin: "Process again")
    automation_event_oldest_pending_age_seconds        age of the oldest pending event (0 when none)
    automation_runs_recent{trigger_type,source,status} runs created in the last METRICS_WINDOW (1 h)
    automation_run_step_duration_seconds{action_type}  a gauge histogram of the steps of those runs
    scheduler_heartbeat_age_seconds                    since beat's heartbeat task or a tick last ran (+Inf: never)

Each is one indexed query: pending events from the partial pending index, runs and steps from the
``created_at`` index over the window (steps through their runs).
"""

from __future__ import annotations

import datetime
import math

from django.db.models import Count, F, Min
from prometheus_client.core import GaugeMetricFamily

from csplatform.metrics import DatabaseCollector, gauge_histogram, window_label, window_seconds

from .heartbeat import heartbeat_age
from .models import Event, Run, RunStep, Workflow

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class AutomationCollector(DatabaseCollector):
    reason = "metrics: events, runs and steps"

    def read(self, now):
        yield from self._events(now)
        yield from self._runs(now)
        age = heartbeat_age(now=now)
        yield GaugeMetricFamily(
            "scheduler_heartbeat_age_seconds",
            "Seconds since the scheduler last beat: beat's heartbeat task (run by a worker, every 30 s) or a tick; "
            "+Inf if it never did.", value=math.inf if age is None else age)

    def _events(self, now):
        pending = Event.objects.filter(processed_at__isnull=True)
        waiting = pending.filter(failed_at__isnull=True).aggregate(n=Count("pk"), oldest=Min("created_at"))
        failed = pending.filter(failed_at__isnull=False).count()
        oldest = waiting["oldest"]
        yield GaugeMetricFamily("automation_events_pending", "Events waiting to be processed (not set aside).",
                                value=waiting["n"])
        yield GaugeMetricFamily("automation_events_failed",
                                "Events set aside after failing AUTOMATION_EVENT_MAX_ATTEMPTS times (admin: Process "
                                "again).", value=failed)
        yield GaugeMetricFamily("automation_event_oldest_pending_age_seconds",
                                "Age of the oldest event waiting to be processed; 0 when none waits.",
                                value=max(0.0, (now - oldest).total_seconds()) if oldest else 0)

    def _runs(self, now):
        since = now - _window()
        counts = list(Run.objects.filter(created_at__gte=since).values("workflow_id", "status")
                      .annotate(n=Count("pk")).order_by())
        rules = {pk: (trigger, source) for pk, trigger, source in Workflow.objects.filter(
            pk__in={row["workflow_id"] for row in counts}).values_list("pk", "trigger_type", "source")}
        totals: dict[tuple[str, str, str], int] = {}
        for row in counts:
            key = (*rules.get(row["workflow_id"], ("", "")), row["status"])
            totals[key] = totals.get(key, 0) + row["n"]
        runs = GaugeMetricFamily(
            "automation_runs_recent",
            f"Runs created in the last {window_label()} (METRICS_WINDOW), by the rule's trigger type, source "
            f"(workflow, playbook, crm, ...) and status (success, failed, skipped, queued, running).",
            labels=["trigger_type", "source", "status"])
        for labels, n in sorted(totals.items()):
            runs.add_metric(list(labels), n)
        yield runs
        yield gauge_histogram(
            "automation_run_step_duration_seconds",
            f"Duration of the action steps of runs created in the last {window_label()} (METRICS_WINDOW), by "
            f"action type; a gauge histogram of that window (histogram_quantile over it, no rate()).",
            RunStep.objects.filter(run__created_at__gte=since), F("duration_ms"), STEP_BUCKETS,
            unit=lambda seconds: seconds * 1000, to_seconds=lambda ms: float(ms) / 1000, label="action_type")


def _window() -> datetime.timedelta:
    return datetime.timedelta(seconds=window_seconds())
