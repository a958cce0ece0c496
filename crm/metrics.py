"""Prometheus metrics of the CRM journeys (exposed at ``/metrics`` by ``csplatform.metrics``), read from the
database when scraped: the same numbers whichever process serves ``/metrics`` and whichever process (web,
worker, ``tick``, a command) did the work, and a rolled-back start is never counted.

    crm_playbook_fired_total{name}     journeys started (executions), by journey
    crm_conversions_total{name}        executions converted, by journey
    crm_rescue_recovered_total         journeys started by a failed payment that converted (payment recovered)
    crm_step_sent_total{channel}       steps sent, by channel
    crm_step_failed_total{channel}     steps that failed, by channel
    crm_steps_deferred{channel}        steps waiting for a contact's quiet hours to end (a gauge)
    crm_steps_due                      journey steps due now and not yet taken by the step scheduler (a gauge)
    crm_scheduler_lag_seconds          how long the oldest due step has waited (0 when none; a gauge)

Counters are counts of rows, over every tenant: deleting old executions lowers them, which Prometheus reads
as a counter reset.
"""

from __future__ import annotations

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from csplatform.tenancy import system_context

from .models import CRMPlaybookExecution, CRMStepExecution, TriggerEvent


class JourneyCollector(Collector):
    def describe(self):
        """The metric names, without reading the database (the registry asks when the collector registers)."""
        yield CounterMetricFamily("crm_playbook_fired", "", labels=["name"])
        yield CounterMetricFamily("crm_conversions", "", labels=["name"])
        yield CounterMetricFamily("crm_rescue_recovered", "")
        yield CounterMetricFamily("crm_step_sent", "", labels=["channel"])
        yield CounterMetricFamily("crm_step_failed", "", labels=["channel"])
        yield GaugeMetricFamily("crm_steps_deferred", "", labels=["channel"])
        yield GaugeMetricFamily("crm_steps_due", "")
        yield GaugeMetricFamily("crm_scheduler_lag_seconds", "")

    def collect(self):
        now = timezone.now()
        with system_context("metrics: CRM journey counts"):
            executions = list(CRMPlaybookExecution.objects.values("playbook__name", "playbook__trigger_event", "status")
                              .annotate(n=Count("pk")).order_by())
            steps = list(CRMStepExecution.objects.values("channel", "status").annotate(n=Count("pk")).order_by())
            # The partial index crm_exec_due_idx (active executions by next_step_at).
            due = CRMPlaybookExecution.objects.filter(status=CRMPlaybookExecution.Status.ACTIVE,
                                                      next_step_at__lte=now).aggregate(n=Count("pk"),
                                                                                       oldest=Min("next_step_at"))
        fired = CounterMetricFamily("crm_playbook_fired", "CRM journeys started, by journey name.", labels=["name"])
        converted = CounterMetricFamily("crm_conversions", "CRM journey executions converted, by journey name.",
                                        labels=["name"])
        for name, total in _sum(executions, "playbook__name").items():
            fired.add_metric([name], total)
        for name, total in _sum(executions, "playbook__name", status=CRMPlaybookExecution.Status.CONVERTED).items():
            converted.add_metric([name], total)
        recovered = _sum(executions, "playbook__trigger_event", status=CRMPlaybookExecution.Status.CONVERTED).get(
            TriggerEvent.PAYMENT_FAILED, 0)
        yield fired
        yield converted
        yield CounterMetricFamily("crm_rescue_recovered", "Payment failed rescues converted (payment recovered).",
                                  value=recovered)
        S = CRMStepExecution.Status
        for metric, help_text, status, family in (
                ("crm_step_sent", "CRM journey steps sent, by channel.", S.SENT, CounterMetricFamily),
                ("crm_step_failed", "CRM journey steps that failed, by channel.", S.FAILED, CounterMetricFamily),
                ("crm_steps_deferred", "CRM journey steps waiting for quiet hours to end, by channel.", S.DEFERRED,
                 GaugeMetricFamily)):
            rows = family(metric, help_text, labels=["channel"])
            for channel, total in _sum(steps, "channel", status=status).items():
                rows.add_metric([channel], total)
            yield rows
        yield GaugeMetricFamily("crm_steps_due", "CRM journey steps due now, not yet sent by the step scheduler.",
                                value=due["n"])
        yield GaugeMetricFamily("crm_scheduler_lag_seconds",
                                "How long the oldest due CRM journey step has waited for the step scheduler (runs "
                                "every minute); 0 when none is due.",
                                value=max(0.0, (now - due["oldest"]).total_seconds()) if due["oldest"] else 0)


def _sum(rows: list[dict], key: str, *, status: str | None = None) -> dict:
    totals: dict = {}
    for row in rows:
        if status is None or row["status"] == status:
            totals[row[key]] = totals.get(row[key], 0) + row["n"]
    return totals

