"""Benchmark: evaluate-all of the five playbook triggers for tenants of 10,000 and 100,000 accounts.

    DATABASE_URL=postgres://csplatform@127.0.0.1:5432/csplatform .venv/bin/python bench/playbooks_bench.py
    (options: --sizes 10000 100000  --usage-days 30  --keep)

It never touches the database DATABASE_URL names: it creates a throwaway database next to it
(``bench_playbooks_<pid>``, migrated, with row-level security on as in production), fills one tenant
per size with ``bulk_create`` in a system context (accounts with health scores and history, 30 days
of usage metrics, NPS and CSAT responses, notes, support tickets), enables the five triggers and
times ``playbook_triggers_evaluate_all`` in the tenant's context, as the schedule runs it: a first
run (which also starts one execution per affected account) and a second run (executions already
open, so only evaluation and counters), ``--runs`` times (3; the executions are truncated before each
first run). The machine's calibration (``bench/calibration.py``) is measured before and after, and
every figure is also printed as accounts evaluated per second and as a ratio to it. The goals (issue
17): 100,000 accounts in under 10 s for a first run and under 3 s for a second. The database is
dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings_test")

FEATURES = ["dashboards", "reports", "api", "sso", "automation", "integrations", "alerts", "exports"]
NOTES = [
    "Quarterly review went well, they want to expand to another team.",
    "Asked for training on reports.",
    "New champion onboarded, kickoff scheduled.",
    "Discussed the roadmap and the API limits.",
    "Champion mentioned a competitor demo last week.",
    "Budget is tight; they might cancel the add-on.",
]
BATCH = 5000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--usage-days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3, help="first and second runs of each size")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL (a PostgreSQL server; a throwaway database is created next to it)")

    from calibration import calibrate  # bench/ is the script's directory
    from throwaway_db import run_in_throwaway_database

    def work() -> None:
        cal = calibrate()
        for size in args.sizes:
            run(size, args.usage_days, args.runs, cal)
        after = calibrate()
        print(f"calibration moved {after.base / cal.base - 1:+.0%} over the run ({cal.base_name})")

    run_in_throwaway_database("bench_playbooks", work, keep=args.keep)


def run(size: int, usage_days: int, runs: int, cal) -> None:
    from django.db import connection

    from csplatform.tenancy import system_context, tenant_context
    from playbooks import services
    from playbooks.models import PlaybookExecution, PlaybookTrigger

    with system_context(f"benchmark set-up ({size} accounts)"):
        started = time.monotonic()
        tenant = populate(size, usage_days)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        PlaybookTrigger.objects.for_tenant(tenant).update(auto_trigger_enabled=True)
        print(f"\n{size:,} accounts: data created in {time.monotonic() - started:.1f}s", flush=True)

    timings: dict[str, list[float]] = {"first": [], "second": []}
    for round_ in range(runs):
        with system_context("benchmark: a fresh start"), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {PlaybookExecution._meta.db_table}")
        with tenant_context(tenant):
            for key, label in (("first", "first run (starts executions)"), ("second", "second run (executions open)")):
                started = time.monotonic()
                outcome = services.playbook_triggers_evaluate_all(tenant=tenant)
                seconds = time.monotonic() - started
                timings[key].append(seconds)
                print(f"  round {round_ + 1}, evaluate-all, {label}: {seconds:.2f}s = {size / seconds:,.0f} "
                      f"accounts/s = {cal.ratio(size / seconds)}")
                for result in outcome["results"]:
                    summary = result["details"]["summary"]
                    print(f"    {result['playbook_type']:<10} {summary['duration_ms'] / 1000:>6.2f}s evaluation, "
                          f"{len(result['affected_accounts']):>7,} affected, "
                          f"{result['executions_created']:>7,} executions started")
            print(f"  executions: {PlaybookExecution.objects.for_tenant(tenant).count():,}", flush=True)
    for key, goal in (("first", 10.0), ("second", 3.0)):
        low, high = min(timings[key]), max(timings[key])
        verdict = f" (goal at 100,000 accounts: < {goal:.0f}s, {'met' if high < goal else 'missed'})" \
            if size == 100_000 else ""
        print(f"  {size:,} accounts, {key} runs: {low:.2f} to {high:.2f}s{verdict}; {size / high:,.0f} to "
              f"{size / low:,.0f} accounts/s = {cal.ratio(size / high)} to {cal.ratio(size / low)}", flush=True)


def populate(size: int, usage_days: int):
    from accounts import services as account_services
    from accounts.models import (
        Account, HealthScore, Note, RiskLevel, SupportTicket, SurveyResponse, UsageMetric,
    )
    from django.utils import timezone
    from playbooks.services import playbook_triggers_ensure

    rng = random.Random(size)
    tenant = account_services.tenant_create(slug=f"bench-{size}", name=f"Bench {size:,}")
    playbook_triggers_ensure(tenant)
    now = timezone.now()
    today = timezone.localdate()

    def band(score: float) -> str:
        return (RiskLevel.HEALTHY if score >= 80 else RiskLevel.MODERATE if score >= 60
                else RiskLevel.AT_RISK if score >= 40 else RiskLevel.CRITICAL)

    # A plausible book of business: most accounts healthy, a minority slipping in each signal.
    accounts, scores = [], []
    for i in range(size):
        roll = rng.random()
        current = round(rng.uniform(60, 98) if roll < 0.7 else rng.uniform(40, 60) if roll < 0.9
                        else rng.uniform(15, 40), 2)
        drift = rng.uniform(10, 30) if rng.random() < 0.1 else rng.gauss(0, 4)
        previous = round(min(100, max(0, current + drift)), 2)
        account = Account(
            tenant=tenant, name=f"Account {i:06d}", industry="Software", arr=Decimal(rng.randint(5, 500) * 1000),
            licensed_seats=rng.choice([None, 25, 50, 100, 250, 500]),
            renewal_date=today + datetime.timedelta(days=rng.randint(-30, 400)) if rng.random() < 0.9 else None,
            health_score=Decimal(str(current)), risk_level=band(current),
        )
        accounts.append(account)
        scores.append((account, previous, current))
    Account.objects.bulk_create(accounts, batch_size=BATCH)
    HealthScore.objects.bulk_create(
        [row for account, previous, current in scores for row in (
            HealthScore(tenant=tenant, account=account, overall_score=Decimal(str(previous)), risk_level=band(previous),
                        calculated_at=now - datetime.timedelta(days=45)),
            HealthScore(tenant=tenant, account=account, overall_score=Decimal(str(current)), risk_level=band(current),
                        previous_score=Decimal(str(previous)), calculated_at=now - datetime.timedelta(days=1)),
        )],
        batch_size=BATCH,
    )
    usage = []
    for account in accounts:
        seats = account.licensed_seats or 100
        base = seats * (rng.uniform(0.4, 0.95) if rng.random() < 0.8 else rng.uniform(0.05, 0.4))
        trend = rng.uniform(-0.6, -0.2) if rng.random() < 0.1 else rng.gauss(0, 0.08)
        features = FEATURES if rng.random() < 0.6 else rng.sample(FEATURES, rng.randint(1, len(FEATURES) - 1))
        stickiness = rng.uniform(0.25, 0.6) if rng.random() < 0.85 else rng.uniform(0.02, 0.25)
        for day in range(usage_days):
            active = max(0, int(base * (1 + trend * (usage_days - day) / usage_days * -1)))
            usage.append(UsageMetric(
                tenant=tenant, account=account, date=today - datetime.timedelta(days=day), active_users=active,
                logins=active * 2, dau=int(active * stickiness), mau=max(active, 1),
                session_minutes=active * 10, features_used=features,
            ))
        if len(usage) >= 50_000:
            UsageMetric.objects.bulk_create(usage, batch_size=BATCH)
            usage = []
    UsageMetric.objects.bulk_create(usage, batch_size=BATCH)

    def nps_score() -> int:
        roll = rng.random()
        return rng.randint(9, 10) if roll < 0.5 else rng.randint(7, 8) if roll < 0.8 else rng.randint(0, 6)

    def csat_score() -> int:
        roll = rng.random()
        return rng.randint(4, 5) if roll < 0.8 else 3 if roll < 0.92 else rng.randint(1, 2)

    SurveyResponse.objects.bulk_create(
        [row for account in accounts for row in (
            SurveyResponse(tenant=tenant, account=account, kind="nps", score=nps_score(),
                           comment="Might switch to a competitor." if rng.random() < 0.05 else "",
                           responded_at=now - datetime.timedelta(days=rng.randint(1, 120))),
            SurveyResponse(tenant=tenant, account=account, kind="csat", score=csat_score(),
                           responded_at=now - datetime.timedelta(days=rng.randint(1, 120))),
        )],
        batch_size=BATCH,
    )
    Note.objects.bulk_create(
        [Note(tenant=tenant, account=account, body=rng.choice(NOTES)) for account in accounts if rng.random() < 0.2],
        batch_size=BATCH,
    )
    tickets = []
    for account in accounts:
        if rng.random() < 0.25:
            opened = now - datetime.timedelta(hours=rng.randint(1, 24 * 40))
            answered = opened + datetime.timedelta(hours=rng.uniform(0.2, 3.5) if rng.random() < 0.85
                                                   else rng.uniform(4, 30))
            resolved = answered + datetime.timedelta(hours=rng.uniform(1, 60) if rng.random() < 0.85
                                                     else rng.uniform(72, 200))
            answered = answered if answered <= now else None
            resolved = resolved if resolved <= now else None
            tickets.append(SupportTicket(
                tenant=tenant, account=account, subject="Cannot export data",
                priority="urgent" if rng.random() < 0.05 else rng.choice(["low", "medium", "high"]),
                status="resolved" if resolved else "open",
                opened_at=opened, first_response_at=answered, resolved_at=resolved))
    SupportTicket.objects.bulk_create(tickets, batch_size=BATCH)
    return tenant


if __name__ == "__main__":
    main()
