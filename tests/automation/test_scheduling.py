"""Time-driven work: scheduled rules fire once per slot at their local time, time-based rules match with one
query, the sweeper rescues lost dispatches, beat's periodic tasks are set up idempotently, ``tick`` runs."""

import datetime
import io
import json
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from accounts.models import Account, Note
from automation import engine, scheduling
from automation.models import Event, Run, ScheduledSlot, Workflow
from automation.periodic import ensure_periodic_tasks, periodic_specs
from csplatform.tenancy import tenant_context
from tests.factories import AccountFactory, ContactFactory, EventFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

UTC = datetime.timezone.utc
NOTE = [{"type": "create_note", "config": {"body": "Weekly check-in for {{ account.name }}"}}]
STALE = [{"field": "updated_at", "operator": "less_than", "value": "7 days ago"}]


def morning_rule(tenant, **data):
    config = {"schedule": "daily", "time": "09:00", "timezone": "America/New_York", **data.pop("config", {})}
    return WorkflowFactory(tenant=tenant, name="NY morning", trigger_type="scheduled", trigger_config=config,
                           **{"actions": NOTE, **data})


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def runs_of(workflow) -> list:
    return list(Run.objects.filter(workflow=workflow).order_by("account__name").values_list("account__name", "status"))


def make_stale(*accounts, days=10):
    Account.objects.filter(pk__in=[a.pk for a in accounts]).update(
        updated_at=timezone.now() - datetime.timedelta(days=days))


# --- slots ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("config, now, slot", [
    # 09:00 in New York is 13:00 UTC in summer (EDT) and 14:00 UTC in winter (EST).
    ({"time": "09:00", "timezone": "America/New_York"}, "2030-07-01T13:30", "2030-07-01T13:00"),
    ({"time": "09:00", "timezone": "America/New_York"}, "2030-07-01T12:59", "2030-06-30T13:00"),
    ({"time": "09:00", "timezone": "America/New_York"}, "2030-01-07T14:00", "2030-01-07T14:00"),
    # Tokyo's 08:00 Monday is Sunday 23:00 UTC.
    ({"time": "08:00", "timezone": "Asia/Tokyo", "schedule": "weekly", "days_of_week": [1]},
     "2030-07-01T00:00", "2030-06-30T23:00"),
    # Weekly without days = Mondays; 0 is Sunday as in JavaScript's getDay().
    ({"time": "10:00", "schedule": "weekly"}, "2030-07-04T12:00", "2030-07-01T10:00"),
    ({"time": "10:00", "schedule": "weekly", "days_of_week": [0]}, "2030-07-04T12:00", "2030-06-30T10:00"),
    ({"time": "10:00", "days_of_week": [1, 3, 5]}, "2030-07-03T09:00", "2030-07-01T10:00"),
    # Monthly: day 1 by default; day 31 is the last day of shorter months.
    ({"time": "06:00", "schedule": "monthly"}, "2030-07-20T00:00", "2030-07-01T06:00"),
    ({"time": "06:00", "schedule": "monthly", "day_of_month": 31}, "2030-03-01T00:00", "2030-02-28T06:00"),
])
def test_it_finds_the_latest_slot_in_the_rules_own_timezone(config, now, slot):
    assert scheduling.latest_scheduled_slot(config, at(now)) == at(slot)


def test_it_aligns_time_based_slots_on_their_period():
    assert scheduling.time_based_slot({"check_every": "1h"}, at("2030-07-01T13:59")) == at("2030-07-01T13:00")
    assert scheduling.time_based_slot({"check_every": "15m"}, at("2030-07-01T13:59")) == at("2030-07-01T13:45")
    assert scheduling.time_based_slot({"check_every": "1d"}, at("2030-07-01T13:59")) == at("2030-07-01T00:00")


# --- scheduled rules --------------------------------------------------------------------------------

def test_it_fires_a_new_york_morning_rule_at_13_utc_in_summer_once_per_slot(tenant):
    AccountFactory(tenant=tenant, name="Acme")
    AccountFactory(tenant=tenant, name="Globex")
    daily = morning_rule(tenant)

    assert scheduling.run_scheduled_rules(at("2030-07-01T12:59")).runs == 0
    assert not Run.objects.exists()

    fired = scheduling.run_scheduled_rules(at("2030-07-01T13:00"))
    assert (fired.slots, fired.runs) == (1, 2)
    assert runs_of(daily) == [("Acme", "success"), ("Globex", "success")]
    assert Note.objects.count() == 2
    assert Run.objects.first().trigger_data == {"type": "scheduled", "slot": "2030-07-01T13:00:00+00:00"}

    for later in ("2030-07-01T13:00", "2030-07-01T13:01", "2030-07-01T13:59"):  # a second beat tick, later ticks
        assert scheduling.run_scheduled_rules(at(later)).runs == 0
    assert Run.objects.count() == 2
    assert ScheduledSlot.objects.get().runs == 2

    assert scheduling.run_scheduled_rules(at("2030-07-02T13:00")).runs == 2  # the next day's slot


def test_it_fires_at_14_utc_when_new_york_is_on_winter_time(tenant):
    AccountFactory(tenant=tenant)
    morning_rule(tenant)
    assert scheduling.run_scheduled_rules(at("2030-01-07T13:30")).runs == 0
    assert scheduling.run_scheduled_rules(at("2030-01-07T14:00")).runs == 1


def test_it_catches_up_a_missed_slot_within_the_hour_but_not_after(tenant):
    AccountFactory(tenant=tenant)
    morning_rule(tenant)
    assert scheduling.run_scheduled_rules(at("2030-07-01T14:01")).runs == 0  # down from 12:50 to 14:01: skipped
    assert not ScheduledSlot.objects.exists()
    assert scheduling.run_scheduled_rules(at("2030-07-02T13:45")).runs == 1  # down 45 minutes: caught up


def test_it_fires_only_for_accounts_in_scope_that_match_the_conditions(tenant):
    software = AccountFactory(tenant=tenant, name="Software Co", industry="Software")
    AccountFactory(tenant=tenant, name="Retail Co", industry="Retail")
    AccountFactory(tenant=tenant, name="Software Out Of Scope", industry="Software")
    scoped = morning_rule(tenant, scope_all_accounts=False, scope_accounts=[software.pk],
                          conditions=[{"field": "industry", "operator": "equals", "value": "Software"}])
    scheduling.run_scheduled_rules(at("2030-07-01T13:00"))
    assert runs_of(scoped) == [("Software Co", "success")]


def test_it_checks_a_time_window_condition_in_memory_and_the_rest_in_sql(tenant):
    AccountFactory(tenant=tenant, name="Software Co", industry="Software")
    AccountFactory(tenant=tenant, name="Retail Co", industry="Retail")
    windowed = morning_rule(tenant, conditions={"all": [
        {"field": "industry", "operator": "equals", "value": "Software"},
        {"type": "time_condition", "config": {"business_hours_only": True, "timezone": "America/New_York"}},
    ]})
    qs, remainder = scheduling.candidates(windowed, at("2030-07-01T13:00"))
    assert list(qs.values_list("name", flat=True)) == ["Software Co"]
    assert remainder is not None and len(remainder["conditions"]) == 1
    matched = list(scheduling.matching_subjects(windowed, at("2030-07-01T13:00")))  # 09:00 NY: open
    assert [a.name for a in matched] == ["Software Co"]
    assert list(scheduling.matching_subjects(windowed, at("2030-07-01T12:00"))) == []  # 08:00 NY: closed


def test_it_does_not_fire_paused_or_draft_rules(tenant):
    AccountFactory(tenant=tenant)
    morning_rule(tenant, status="paused")
    morning_rule(tenant, status="draft")
    morning_rule(tenant, enabled=False)
    assert scheduling.run_scheduled_rules(at("2030-07-01T13:00")).slots == 0


def test_it_keeps_tenants_apart(tenant, other_tenant):
    AccountFactory(tenant=tenant, name="Mine")
    AccountFactory(tenant=other_tenant, name="Theirs")
    mine = morning_rule(tenant)
    result = scheduling.run_scheduled_rules(at("2030-07-01T13:00"))
    assert result.tenants == 1
    assert runs_of(mine) == [("Mine", "success")]


def test_it_stops_a_slot_at_the_rules_rate_limit(tenant):
    for name in ("A", "B", "C", "D"):
        AccountFactory(tenant=tenant, name=name)
    limited = morning_rule(tenant, rate_limiting={"limit": 2, "period": "hour"})
    scheduling.run_scheduled_rules(at("2030-07-01T13:00"))
    # Accounts go in id order; the third is skipped and the fourth not tried (it would be skipped too).
    statuses = sorted(Run.objects.filter(workflow=limited).values_list("status", "skip_reason"))
    assert statuses == [("skipped", "rate_limited"), ("success", ""), ("success", "")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and concurrent claims need PostgreSQL")
def test_it_fires_a_slot_once_when_two_workers_race_for_it(tenant, monkeypatch):
    for name in ("Acme", "Globex", "Initech"):
        AccountFactory(tenant=tenant, name=name)
    daily = morning_rule(tenant)
    real_fire = engine.fire

    def slow_fire(*args, **kwargs):  # keep the first claimant busy while the second arrives
        time.sleep(0.1)
        return real_fire(*args, **kwargs)

    monkeypatch.setattr(engine, "fire", slow_fire)
    barrier, results = threading.Barrier(2), []

    def worker():
        try:
            barrier.wait()
            results.append(scheduling.run_scheduled_rules(at("2030-07-01T13:00")))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted((r.slots, r.runs, r.errors) for r in results) == [(0, 0, 0), (1, 3, 0)]
    assert runs_of(daily) == [("Acme", "success"), ("Globex", "success"), ("Initech", "success")]
    assert ScheduledSlot.objects.count() == 1
    assert Note.objects.count() == 3


# --- time-based rules -------------------------------------------------------------------------------

def test_it_fires_a_time_based_rule_for_exactly_the_stale_accounts(tenant):
    quiet = [AccountFactory(tenant=tenant, name=name) for name in ("Quiet 1", "Quiet 2")]
    AccountFactory(tenant=tenant, name="Busy")
    make_stale(*quiet)
    stale = WorkflowFactory(tenant=tenant, name="Stale", trigger_type="time_based",
                            trigger_config={"check_every": "1h"}, conditions=STALE, actions=NOTE)
    now = timezone.now()

    assert scheduling.run_scheduled_rules(now).runs == 2
    assert runs_of(stale) == [("Quiet 1", "success"), ("Quiet 2", "success")]
    assert scheduling.run_scheduled_rules(now).runs == 0  # same slot
    # Next slot, still stale: no cooldown set, so an account fires at most once a day.
    assert scheduling.run_scheduled_rules(now + datetime.timedelta(hours=1)).slots == 1
    assert Run.objects.count() == 2
    assert scheduling.run_scheduled_rules(now + datetime.timedelta(days=1, hours=1)).runs == 2


def test_it_lets_a_time_based_rule_refire_after_its_cooldown(tenant):
    quiet = AccountFactory(tenant=tenant)
    make_stale(quiet)
    WorkflowFactory(tenant=tenant, trigger_type="time_based", trigger_config={"check_every": "1h"}, conditions=STALE,
                    cooldown_minutes=60, actions=NOTE)
    now = timezone.now()
    assert scheduling.run_scheduled_rules(now).runs == 1
    Run.objects.update(created_at=now - datetime.timedelta(hours=2))  # the first run is now past the cooldown
    assert scheduling.run_scheduled_rules(now + datetime.timedelta(hours=1)).runs == 1


def test_it_does_not_queue_a_delayed_time_based_run_twice(tenant):
    quiet = AccountFactory(tenant=tenant)
    make_stale(quiet)
    WorkflowFactory(tenant=tenant, trigger_type="time_based", trigger_config={"check_every": "15m"}, conditions=STALE,
                    cooldown_minutes=5, delay_minutes=240, actions=NOTE)
    now = timezone.now()
    scheduling.run_scheduled_rules(now)
    scheduling.run_scheduled_rules(now + datetime.timedelta(hours=1))  # past the cooldown, still queued
    assert list(Run.objects.values_list("status", flat=True)) == ["queued"]


def test_it_runs_time_based_rules_over_other_models(tenant):
    old = ContactFactory(account__tenant=tenant, name="Old")
    ContactFactory(account__tenant=tenant, name="New")
    type(old).objects.filter(pk=old.pk).update(updated_at=timezone.now() - datetime.timedelta(days=30))
    WorkflowFactory(tenant=tenant, trigger_type="time_based", model_type="contact",
                    trigger_config={"check_every": "1d"}, conditions=STALE, actions=NOTE)
    now = timezone.now()
    assert scheduling.run_scheduled_rules(now).runs == 1
    assert list(Run.objects.values_list("subject_model", "subject_id", "account")) == [
        ("contact", str(old.pk), old.account_id)]
    assert scheduling.run_scheduled_rules(now + datetime.timedelta(hours=1)).runs == 0  # not again within a day


@pytest.mark.parametrize("accounts", [3, 30])
def test_it_finds_time_based_matches_with_one_query_whatever_the_number_of_accounts(tenant, accounts):
    created = [AccountFactory(tenant=tenant) for _ in range(accounts)]
    make_stale(*created[::3])
    stale = WorkflowFactory(tenant=tenant, trigger_type="time_based", trigger_config={"check_every": "1h"},
                            conditions=STALE, actions=NOTE)
    with tenant_context(tenant), CaptureQueriesContext(connection) as queries:
        qs, remainder = scheduling.candidates(stale, timezone.now())
        matched = list(qs.values_list("pk", flat=True))
    assert remainder is None
    assert len(matched) == len(created[::3])
    assert len(queries) == 1


def test_it_costs_the_same_queries_for_10_or_100_non_matching_accounts(tenant):
    quiet = AccountFactory(tenant=tenant)
    make_stale(quiet)
    WorkflowFactory(tenant=tenant, trigger_type="time_based", trigger_config={"check_every": "1h"}, conditions=STALE,
                    actions=NOTE)
    counts = []
    for hour, busy in ((0, 10), (25, 90)):  # a day apart, so the quiet account fires again
        for _ in range(busy):
            AccountFactory(tenant=tenant)
        with CaptureQueriesContext(connection) as queries:
            assert scheduling.run_scheduled_rules(timezone.now() + datetime.timedelta(hours=hour)).runs == 1
        counts.append(len(queries))
        Run.objects.update(created_at=timezone.now() - datetime.timedelta(days=2))
    assert counts[0] == counts[1]


# --- the sweeper ------------------------------------------------------------------------------------

def test_it_sweeps_an_event_whose_dispatch_was_lost(tenant):
    account = AccountFactory(tenant=tenant, name="TechStart")
    changed = WorkflowFactory(tenant=tenant, trigger_type="field_changed", model_type="account",
                              trigger_config={"field": "status"}, actions=NOTE)
    account.status = Account.Status.AT_RISK
    account.save()  # no commit in this test, so the on-commit dispatch never happens: as if the broker were down
    event = Event.objects.get()
    assert event.processed_at is None

    assert scheduling.sweep_events() == 0  # still inside the grace period
    Event.objects.update(created_at=timezone.now() - datetime.timedelta(minutes=1))
    assert scheduling.sweep_events() == 1
    event.refresh_from_db()
    assert event.processed_at is not None
    assert runs_of(changed) == [("TechStart", "success")]
    assert scheduling.sweep_events(grace=datetime.timedelta(0)) == 0  # nothing pending any more


def test_it_does_not_hand_the_same_pending_event_on_again_within_five_minutes(tenant, monkeypatch):
    from automation import tasks

    sent = []
    monkeypatch.setattr(tasks.process_event, "delay", lambda *args: sent.append(args))
    EventFactory(tenant=tenant, type="payment_failed", created_at=timezone.now() - datetime.timedelta(minutes=2))
    assert scheduling.sweep_events() == 1
    assert scheduling.sweep_events() == 0
    assert len(sent) == 1


# --- delayed and retried runs -----------------------------------------------------------------------

def test_it_executes_delayed_runs_once_they_are_due(tenant, other_tenant):
    for owner in (tenant, other_tenant):
        AccountFactory(tenant=owner)
        delayed = WorkflowFactory(tenant=owner, trigger_type="manual", delay_minutes=5, actions=NOTE)
        with tenant_context(owner):
            engine.fire(delayed, account=Account.objects.for_tenant(owner).get())
    assert set(Run.objects.values_list("status", flat=True)) == {"queued"}
    assert scheduling.run_due_runs(timezone.now() + datetime.timedelta(minutes=1)) == 0
    assert scheduling.run_due_runs(timezone.now() + datetime.timedelta(minutes=6)) == 2
    assert set(Run.objects.values_list("status", flat=True)) == {"success"}
    assert Note.objects.count() == 2


# --- beat's periodic tasks --------------------------------------------------------------------------

def test_it_sets_up_periodic_tasks_idempotently_and_keeps_what_admins_made():
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(name="admin: nightly report", task="reports.nightly", interval=every_hour)

    first = ensure_periodic_tasks()
    assert all(created for _, created in first)
    PeriodicTask.objects.filter(name="automation: sweep unprocessed events").update(enabled=False)  # admin pauses it
    second = ensure_periodic_tasks()
    assert not any(created for _, created in second)

    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert names == {"admin: nightly report", *(s.name for s in periodic_specs())}
    assert PeriodicTask.objects.count() == len(periodic_specs()) + 1
    assert CrontabSchedule.objects.count() == len({s.cron_minute for s in periodic_specs() if s.cron_minute})
    rules = PeriodicTask.objects.get(name="automation: scheduled and time-based rules")
    assert (rules.task, rules.crontab.minute, str(rules.crontab.timezone), rules.enabled) == (
        "automation.tasks.run_scheduled_rules_task", "*", "UTC", True)
    sweeper = PeriodicTask.objects.get(name="automation: sweep unprocessed events")
    assert (sweeper.interval.every, sweeper.interval.period, json.loads(sweeper.kwargs), sweeper.enabled) == (
        60, "seconds", {"grace_seconds": 30}, False)


def test_it_sets_up_periodic_tasks_from_the_command():
    out = io.StringIO()
    call_command("setup_periodic_tasks", stdout=out)
    call_command("setup_periodic_tasks", stdout=out)
    assert "created: automation: scheduled and time-based rules" in out.getvalue()
    assert "updated: automation: scheduled and time-based rules" in out.getvalue()


# --- commands and tasks -----------------------------------------------------------------------------

def test_it_runs_all_due_work_with_the_tick_command(tenant, monkeypatch):
    AccountFactory(tenant=tenant, name="Acme")
    minute_ago = timezone.now() - datetime.timedelta(minutes=1)
    daily = WorkflowFactory(tenant=tenant, trigger_type="scheduled",
                            trigger_config={"time": minute_ago.strftime("%H:%M")}, actions=NOTE)
    Workflow.objects.filter(pk=daily.pk).update(created_at=minute_ago - datetime.timedelta(hours=1))
    seen = []
    monkeypatch.setitem(scheduling._due_work, "tests.extra", lambda *, now: seen.append(now) or "done")

    out = io.StringIO()
    call_command("tick", stdout=out)
    assert "automation.scheduled_rules: {'tenants': 1, 'slots': 1, 'runs': 1, 'errors': 0}" in out.getvalue()
    assert "tests.extra: done" in out.getvalue()
    assert runs_of(daily) == [("Acme", "success")]
    assert len(seen) == 1
    call_command("tick", stdout=io.StringIO())
    assert Run.objects.count() == 1


def test_it_keeps_ticking_when_one_piece_of_due_work_fails(monkeypatch):
    def broken(*, now):
        raise RuntimeError("outbox table missing")

    monkeypatch.setitem(scheduling._due_work, "tests.broken", broken)
    outcome = scheduling.tick()
    assert outcome.errors == {"tests.broken": "RuntimeError: outbox table missing"}
    assert set(outcome.results) >= {"automation.sweep_events", "automation.scheduled_rules"}


def test_it_runs_scheduled_rules_and_the_sweeper_from_their_commands(tenant):
    AccountFactory(tenant=tenant)
    morning_rule(tenant)
    out = io.StringIO()
    call_command("run_scheduled_rules", "--now", "2030-07-01T13:00:00Z", stdout=out)
    call_command("sweep_events", stdout=out)
    assert "slots fired: 1 runs: 1" in out.getvalue()
    assert "re-dispatched: 0" in out.getvalue()


def test_it_runs_the_periodic_tasks_as_celery_tasks(tenant):
    from automation import tasks

    AccountFactory(tenant=tenant)
    make_stale(*Account.objects.all())
    WorkflowFactory(tenant=tenant, trigger_type="time_based", conditions=STALE, actions=NOTE)
    assert tasks.run_scheduled_rules_task.delay().get() == {"tenants": 1, "slots": 1, "runs": 1, "errors": 0}
    assert tasks.sweep_events_task.delay().get() == 0
    assert tasks.run_due_runs_task.delay().get() == 0
    assert tasks.tick_task.delay().get()["errors"] == {}
