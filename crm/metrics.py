"""Prometheus counters of the CRM journeys (exposed at ``/metrics`` by ``csplatform.metrics``).

Counters are incremented only when the transaction that did the work commits (``count``), so a
rolled-back start or send is never counted. Each process counts its own work: run the web and the
workers with ``PROMETHEUS_MULTIPROC_DIR`` set so ``/metrics`` adds up every process's counters.
"""

from __future__ import annotations

from django.db import transaction
from prometheus_client import Counter

PLAYBOOK_FIRED = Counter("crm_playbook_fired_total", "CRM journeys started, by journey name.", ["name"])
RESCUE_RECOVERED = Counter("crm_rescue_recovered_total", "Payment failed rescues converted (payment recovered).")
STEP_SENT = Counter("crm_step_sent_total", "CRM journey steps sent, by channel.", ["channel"])
STEP_FAILED = Counter("crm_step_failed_total", "CRM journey steps that failed, by channel.", ["channel"])
STEP_DEFERRED = Counter("crm_step_deferred_total", "CRM journey steps deferred by quiet hours, by channel.",
                        ["channel"])
CONVERSIONS = Counter("crm_conversions_total", "CRM journey executions converted, by journey name.", ["name"])


def count(counter: Counter, **labels) -> None:
    """Increment ``counter`` once the current transaction commits (at once outside a transaction)."""
    target = counter.labels(**labels) if labels else counter
    transaction.on_commit(target.inc)
