"""Starting many playbook executions at once (evaluate-all): one INSERT for all of a trigger's new executions.

Django's ``bulk_create`` spends most of its time per row and per field in Python (model instances, field
preparation, the driver escaping each array element); an evaluate-all over 100,000 accounts starts tens of
thousands of executions. On PostgreSQL the rows travel as ONE JSON document that the database expands with
``jsonb_to_recordset``: the Python cost is one ``json.dumps``. Other databases (the embedded SQLite mode) use
``bulk_create``. Either way the model's defaults are the ones written below, and the partial unique constraint
(one open execution per trigger and account) still guards the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from .models import PlaybookExecution, PlaybookTrigger

BATCH = 20_000


@dataclass(frozen=True)
class StartedExecution:
    pk: int
    account_id: str
    reasons: list
    metrics: dict


def executions_insert(trigger: PlaybookTrigger, accounts: list[dict], *, source: str, user, now: datetime
                      ) -> list[StartedExecution]:
    """Start one ``triggered`` execution of ``trigger`` per account (the evaluator's affected-account dicts)."""
    if connection.vendor != "postgresql":
        rows = PlaybookExecution.objects.bulk_create([
            PlaybookExecution(
                tenant_id=trigger.tenant_id, trigger=trigger, playbook_type=trigger.playbook_type,
                account_id=account["account_id"], reason="; ".join(account["triggers"]), reasons=account["triggers"],
                metrics=account.get("metrics", {}), status=PlaybookExecution.Status.TRIGGERED, source=source,
                started_by=user, started_at=now)
            for account in accounts])
        return [StartedExecution(row.pk, str(row.account_id), row.reasons, row.metrics) for row in rows]
    started = []
    for offset in range(0, len(accounts), BATCH):
        batch = accounts[offset:offset + BATCH]
        document = json.dumps([[a["account_id"], "; ".join(a["triggers"]), a["triggers"], a.get("metrics", {})]
                               for a in batch], cls=DjangoJSONEncoder)
        with connection.cursor() as cursor:
            cursor.execute(INSERT, {
                "rows": document, "tenant": trigger.tenant_id, "trigger": trigger.pk, "type": trigger.playbook_type,
                "status": PlaybookExecution.Status.TRIGGERED, "source": source,
                "user": getattr(user, "pk", None), "now": now, "stamp": timezone.now()})
            ids = dict((str(account_id), pk) for pk, account_id in cursor.fetchall())
        started.extend(StartedExecution(ids[a["account_id"]], a["account_id"], a["triggers"], a.get("metrics", {}))
                       for a in batch)
    return started


# The columns the model fills by default are spelled out: a raw INSERT does not know Django's defaults.
INSERT = f"""
    INSERT INTO {PlaybookExecution._meta.db_table} (
        tenant_id, trigger_id, playbook_id, playbook_type, account_id, reason, reasons, metrics, status, source,
        started_by_id, started_at, finished_at, outcome, run_id, forced, created_at, updated_at)
    SELECT %(tenant)s, %(trigger)s, NULL, %(type)s, (r.value ->> 0)::uuid, r.value ->> 1, r.value -> 2, r.value -> 3,
           %(status)s, %(source)s, %(user)s, %(now)s, NULL, '', NULL, false, %(stamp)s, %(stamp)s
    FROM jsonb_array_elements(%(rows)s::jsonb) AS r(value)
    RETURNING id, account_id"""
