"""Benchmark: server time of the cockpit's pages (admin home, customer 360) for a tenant of 10,000 accounts
with a year of history.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform .venv/bin/python bench/cockpit_bench.py
    (options: --accounts 10000  --usage-days 365  --repeat 5  --keep)

It never touches the database DATABASE_URL names: it creates a throwaway database next to it
(``bench_cockpit_<pid>``, migrated, row-level security on as in production) and fills one tenant with
``bulk_create`` in a system context: accounts (a CSM owns one in twenty), a year of weekly health scores with
their breakdown, daily usage metrics, monthly notes, engagements and rule runs, tasks, tickets, surveys, stage
moves, playbook executions, outbox messages (some dead) and a few CRM journeys. Then it times the pages through
Django's test client (the whole request: middleware, tenancy, queries, templates), as the tenant admin (the
book is all 10,000 accounts), as the CSM (their 500) and the 360 of a busy account; it prints the first
(cold) time, the median of ``--repeat`` more and the number of queries. The goal is under 300 ms.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings_test")

BATCH = 5000
FEATURES = ["dashboards", "reports", "api", "sso", "automation", "integrations", "alerts", "exports"]
COMPONENTS = ("usage_score", "engagement_score", "support_sentiment_score", "adoption_score")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--usage-days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL (a PostgreSQL server; a throwaway database is created next to it)")

    from throwaway_db import run_in_throwaway_database  # bench/ is the script's directory

    run_in_throwaway_database("bench_cockpit", lambda: run(args), keep=args.keep)


def run(args) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from accounts.cockpit.timeline import timeline_page
    from accounts.models import Role
    from csplatform.tenancy import system_context, tenant_context

    with system_context("benchmark set-up"):
        tenant, admin, csm, busy = populate_analyzed(args.accounts, args.usage_days)

    pages = [
        ("home, tenant admin (all accounts)", admin, reverse("admin:index")),
        ("home, CSM (own accounts)", csm, reverse("admin:index")),
        ("customer 360", admin, reverse("admin:accounts_account_360", args=[busy.pk])),
        ("customer 360, timeline page 2", admin, None),
    ]
    for label, user, url in pages:
        client = Client()
        client.force_login(user)
        client.get(reverse("admin:index"))  # the session row, content types: once per login, not per page
        if url is None:  # the second timeline page: older than the first page's last entry
            with tenant_context(tenant):
                cursor = timeline_page(busy, role=Role.TENANT_ADMIN).next_before
            url = reverse("admin:accounts_account_360", args=[busy.pk]) + "?" + urlencode({"before": cursor.isoformat()})
        times = []
        for _ in range(args.repeat + 1):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        median = statistics.median(times[1:])
        verdict = "ok" if median < 300 else "OVER 300 ms"
        print(f"  {label:<36} first {times[0]:6.0f} ms, median {median:6.0f} ms ({len(queries)} queries) {verdict}",
              flush=True)


def populate_analyzed(size: int, usage_days: int):
    """``populate``, then ``ANALYZE`` (the planner must see the new rows), printing how long it took."""
    from django.db import connection

    started = time.monotonic()
    made = populate(size, usage_days)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"{size:,} accounts with a year of history created in {time.monotonic() - started:.0f}s", flush=True)
    return made


def populate(size: int, usage_days: int):
    from django.utils import timezone

    from accounts import services
    from accounts.models import (
        Account, Contact, Engagement, HealthScore, JourneyHistory, JourneyStage, Note, Role, SupportTicket,
        SurveyResponse, Task, UsageMetric,
    )

    rng = random.Random(size)
    now, today = timezone.now(), timezone.localdate()
    tenant = services.tenant_create(slug="bench-cockpit", name="Bench Cockpit")
    admin = services.membership_grant(tenant=tenant, email="admin@bench.example", role=Role.TENANT_ADMIN).user
    csm = services.membership_grant(tenant=tenant, email="csm@bench.example", role=Role.PRACTITIONER).user
    stages = list(JourneyStage.objects.for_tenant(tenant).order_by("order"))

    # Accounts, with a year of weekly scores each: most healthy, a minority sliding.
    accounts, scores = [], []
    for i in range(size):
        start = {name: rng.uniform(55, 95) for name in COMPONENTS}
        slide = rng.uniform(-1.5, -0.3) if rng.random() < 0.15 else rng.gauss(0, 0.2)
        accounts.append(Account(
            tenant=tenant, name=f"Account {i:05d}", industry="Software", arr=Decimal(rng.randint(5, 500) * 1000),
            licensed_seats=rng.choice([25, 50, 100, 250, 500]), owner=csm if i % 20 == 0 else admin,
            renewal_date=today + datetime.timedelta(days=rng.randint(-30, 400)), current_stage=rng.choice(stages)))
        scores.append((start, slide))
    Account.objects.bulk_create(accounts, batch_size=BATCH)
    previous: dict = {}
    for week in range(52, -1, -1):  # week by week, as scores are recorded: the table is in time order
        rows = []
        for account, (start, slide) in zip(accounts, scores):
            components = {name: Decimal(str(round(min(100, max(0, value + slide * (52 - week) + rng.gauss(0, 2))), 2)))
                          for name, value in start.items()}
            overall, breakdown = services.health_score_compute(tenant=tenant, components=components)
            level = services.risk_level_for(tenant=tenant, score=overall)
            rows.append(HealthScore(tenant=tenant, account=account, overall_score=overall, breakdown=breakdown,
                                    risk_level=level, previous_score=previous.get(account.pk),
                                    calculated_at=now - datetime.timedelta(weeks=week, hours=1), **components))
            previous[account.pk] = overall
            account.health_score, account.risk_level = overall, level
        HealthScore.objects.bulk_create(rows, batch_size=BATCH)
    Account.objects.bulk_update(accounts, ["health_score", "risk_level"], batch_size=BATCH)
    print("  accounts and scores", flush=True)

    usage = []
    for account in accounts:
        base = (account.licensed_seats or 100) * rng.uniform(0.2, 0.9)
        for day in range(usage_days):
            active = max(0, int(base * (1 + rng.gauss(0, 0.1))))
            usage.append(UsageMetric(tenant=tenant, account=account, date=today - datetime.timedelta(days=day),
                                     active_users=active, logins=active * 2, dau=active // 3, mau=active,
                                     session_minutes=active * 12, features_used=FEATURES[:rng.randint(1, 8)]))
        if len(usage) >= 50_000:
            UsageMetric.objects.bulk_create(usage, batch_size=BATCH)
            usage = []
    UsageMetric.objects.bulk_create(usage, batch_size=BATCH)
    print("  usage", flush=True)

    def at(days_ago: float):
        return now - datetime.timedelta(days=days_ago, minutes=rng.randint(0, 600))

    contacts = [Contact(tenant=tenant, account=a, name=f"Champion {i}", email=f"c{i}@bench.example", is_primary=True)
                for i, a in enumerate(accounts)]
    Contact.objects.bulk_create(contacts, batch_size=BATCH)
    Note.objects.bulk_create([Note(tenant=tenant, account=a, author=admin, body="Monthly check-in.", created_at=at(30 * m))
                              for a in accounts for m in range(12)], batch_size=BATCH)
    Engagement.objects.bulk_create([Engagement(tenant=tenant, account=a, contact=c, user=admin, kind="call",
                                               outcome=rng.choice(["completed", "completed", "missed"]), occurred_at=at(30 * m + 7))
                                    for a, c in zip(accounts, contacts) for m in range(12)], batch_size=BATCH)
    Task.objects.bulk_create([Task(tenant=tenant, account=a, title=f"Follow up {k}", assignee=a.owner,
                                   due_date=today + datetime.timedelta(days=rng.randint(-20, 30)),
                                   status=rng.choice(["open", "done", "done"]), created_at=at(rng.randint(0, 300)))
                              for a in accounts for k in range(4)], batch_size=BATCH)
    SupportTicket.objects.bulk_create([SupportTicket(tenant=tenant, account=a, subject="Export is slow",
                                                     status=rng.choice(["open", "resolved", "closed"]), opened_at=at(rng.randint(0, 360)))
                                       for a in accounts for _ in range(3)], batch_size=BATCH)
    SurveyResponse.objects.bulk_create([SurveyResponse(tenant=tenant, account=a, contact=c, kind=kind, score=score,
                                                       responded_at=at(90 * q + 3))
                                        for a, c in zip(accounts, contacts) for q in range(4)
                                        for kind, score in [("nps", rng.randint(0, 10)) if q % 2 else ("csat", rng.randint(1, 5))]],
                                       batch_size=BATCH)
    history = []
    for a in accounts:
        for n, stage in enumerate(stages[:3]):
            entered = now - datetime.timedelta(days=300 - 100 * n)
            last = n == 2
            history.append(JourneyHistory(tenant=tenant, account=a, stage=stage, from_stage=stages[n - 1] if n else None,
                                          entered_at=entered, exited_at=None if last else entered + datetime.timedelta(days=100),
                                          duration=None if last else datetime.timedelta(days=100), moved_by=admin))
    JourneyHistory.objects.bulk_create(history, batch_size=BATCH)
    print("  activity", flush=True)
    populate_automation(tenant, accounts, contacts, admin, rng, now)
    return tenant, admin, csm, accounts[0]


def populate_automation(tenant, accounts, contacts, admin, rng, now) -> None:
    """A free rule with monthly runs per account (messages for the last month's, some dead), playbook
    executions, and a payment-rescue journey for one account in fifty."""
    from automation.models import Run, Workflow
    from automation.services import workflow_save
    from crm.models import CRMPlaybookExecution, CRMStepExecution
    from crm.services import crm_journeys_ensure, playbook_get
    from delivery.models import Outbox
    from playbooks.defaults import playbook_defaults_ensure
    from playbooks.models import Playbook, PlaybookExecution

    rule = workflow_save(rule=Workflow(tenant=tenant, created_by=admin), data={
        "name": "Renewal reminder", "status": "active", "trigger_type": "manual", "cooldown_minutes": 24 * 60,
        "actions": []})
    runs = [Run(tenant=tenant, workflow=rule, account=a, status=Run.Status.SUCCESS, workflow_version=1,
                created_at=now - datetime.timedelta(days=30 * m + rng.uniform(0, 29)))
            for a in accounts for m in range(12)]
    Run.objects.bulk_create(runs, batch_size=BATCH)
    recent = [r for r in runs if r.created_at > now - datetime.timedelta(days=30)]
    Outbox.objects.bulk_create([Outbox(tenant=tenant, channel="webhook", target="https://hooks.example.com/renewal",
                                       payload={}, idempotency_key=f"bench:{r.pk}", run_id=r.pk, created_at=r.created_at,
                                       status=rng.choice(["delivered"] * 8 + ["dead", "failed"]), attempts=1)
                                for r in recent], batch_size=BATCH)
    playbook_defaults_ensure(tenant)
    play = Playbook.objects.for_tenant(tenant).first()
    PlaybookExecution.objects.bulk_create([
        PlaybookExecution(tenant=tenant, playbook=play, account=a, status="completed", source="event",
                          reason="Health score dropped below 40", started_at=now - datetime.timedelta(days=rng.uniform(0, 90)))
        for a in accounts if a.risk_level in ("at_risk", "critical")], batch_size=BATCH)
    crm_journeys_ensure(tenant)
    journey = playbook_get(tenant, "payment_failed_rescue")
    executions = [CRMPlaybookExecution(tenant=tenant, playbook=journey, contact=c, account=a, status="completed",
                                       started_at=now - datetime.timedelta(days=rng.uniform(0, 60)))
                  for a, c in list(zip(accounts, contacts))[::50]]
    CRMPlaybookExecution.objects.bulk_create(executions, batch_size=BATCH)
    CRMStepExecution.objects.bulk_create([CRMStepExecution(tenant=tenant, execution=e, step_order=n, channel="email",
                                                           status="sent", sent_at=e.started_at + datetime.timedelta(hours=24 * n))
                                          for e in executions for n in range(2)], batch_size=BATCH)
    print("  automation", flush=True)


if __name__ == "__main__":
    main()
