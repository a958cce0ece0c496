"""Imported by the bulk worker of ``test_priority_lanes.py`` before it starts (``start(preload=...)``).

The daily evaluate-all first holds its transaction in PostgreSQL for ``SLOW_BULK_SECONDS`` (``pg_sleep``), the way
an evaluation over 100,000 accounts holds it for a minute or two (bench/lanes_bench.py), then evaluates for
real. So the test knows the bulk task is still running while it measures, on a tenant it can build in seconds.
"""

import os

from django.db import connection

from playbooks import scheduling

SECONDS = float(os.environ.get("SLOW_BULK_SECONDS", "8"))
_evaluate_all = scheduling.playbook_triggers_evaluate_all


def slow_evaluate_all(**kwargs):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [SECONDS])
    return _evaluate_all(**kwargs)


scheduling.playbook_triggers_evaluate_all = slow_evaluate_all
