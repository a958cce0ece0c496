"""A worker drains a tenant's backlog in batches: fewer writes per run, same outcome, and one broken event
cannot hold back the others."""

import factory
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, Note
from automation import engine, scheduling, tasks
from automation.actions import Action, ActionError, DeliveryAction, actions
from automation.models import Event, Run, RunStep
from delivery.models import Outbox
from tests.factories import AccountFactory, EventFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


class UpdateRuleFactory(WorkflowFactory):
    """The rule these tests batch: one on every account update, noting it (unless given other actions)."""

    name = "Note on update"
    trigger_type = "model_updated"
    model_type = "account"
    actions = factory.LazyFunction(lambda: [{"type": "create_note", "config": {"body": "{{ account.name }} changed"}}])


def change(accounts, industry="Retail"):
    """Committed changes whose events are left pending (on-commit dispatch does not run in a test)."""
    for account in accounts:
        account = Account.objects.get(pk=account.pk)
        account.industry = industry
        account.save()
    return list(Event.objects.order_by("id"))


def test_one_task_drains_the_tenants_backlog_in_one_batch(tenant, settings, django_capture_on_commit_callbacks):
    settings.AUTOMATION_EVENT_BATCH = 50
    live = UpdateRuleFactory(tenant=tenant)
    accounts = AccountFactory.create_batch(5, tenant=tenant)
    events = change(accounts)

    with django_capture_on_commit_callbacks(execute=True):  # last_run_at is written after commit
        assert tasks.process_event(str(tenant.pk), events[-1].pk) == 5

    assert not Event.objects.filter(processed_at__isnull=True).exists()
    runs = Run.objects.order_by("id")
    assert [r.status for r in runs] == ["success"] * 5
    assert {r.account_id for r in runs} == {a.pk for a in accounts}
    assert RunStep.objects.filter(run__in=runs, status="success").count() == 5
    assert Note.objects.count() == 5
    live.refresh_from_db()
    assert live.last_run_at == max(r.started_at for r in runs)
    # the task handed the other events now finds them done
    assert tasks.process_event(str(tenant.pk), events[0].pk) == 0


def test_a_task_whose_event_was_taken_still_processes_what_is_pending_and_an_idle_one_stops_at_one_query(
        tenant, settings):
    settings.AUTOMATION_EVENT_BATCH = 50
    UpdateRuleFactory(tenant=tenant)
    first, second = AccountFactory.create_batch(2, tenant=tenant)
    [taken] = change([first])
    assert tasks.process_event(str(tenant.pk), taken.pk) == 1
    change([second])  # pending after the first task's batch: the next task of a backlog pulls it ahead

    assert tasks.process_event(str(tenant.pk), taken.pk) == 1
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    with CaptureQueriesContext(connection) as queries:  # nothing left: no cache read, transaction or claim
        assert tasks.process_event(str(tenant.pk), taken.pk) == 0
    assert len(queries) == 1, [q["sql"] for q in queries]


def test_a_batch_of_one_processes_only_the_event_it_was_handed(tenant, settings):
    settings.AUTOMATION_EVENT_BATCH = 1
    UpdateRuleFactory(tenant=tenant)
    events = change(AccountFactory.create_batch(3, tenant=tenant))
    assert tasks.process_event(str(tenant.pk), events[1].pk) == 1
    assert list(Event.objects.filter(processed_at__isnull=False).values_list("pk", flat=True)) == [events[1].pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="run ids are reserved from a PostgreSQL sequence")
def test_a_batch_writes_its_bookkeeping_once_not_per_run(tenant):
    UpdateRuleFactory(tenant=tenant)
    change(AccountFactory.create_batch(20, tenant=tenant))
    with CaptureQueriesContext(connection) as queries:
        runs = engine.process_pending(tenant.pk, limit=50)
    assert len(runs) == 20
    # Runs, steps, their notes, last_run_at and the events are written a few statements per batch. One event at
    # a time took about nine statements per run.
    assert len(queries) <= 15, [q["sql"][:80] for q in queries]
    assert Run.objects.filter(status="success").count() == 20
    assert RunStep.objects.count() == 20


def test_a_batchs_notes_are_one_insert_unless_a_rule_watches_notes_being_created(tenant):
    UpdateRuleFactory(tenant=tenant)
    accounts = AccountFactory.create_batch(5, tenant=tenant)
    change(accounts)

    def note_inserts(queries):
        return sum(q["sql"].startswith('INSERT INTO "accounts_note"') for q in queries)

    with CaptureQueriesContext(connection) as queries:
        runs = engine.process_pending(tenant.pk, limit=50)
    assert note_inserts(queries) == 1
    written = {step.output["note_id"]: step.run.account_id for step in RunStep.objects.select_related("run")}
    assert dict(Note.objects.values_list("pk", "account_id")) == written and len(runs) == 5

    # Once a rule watches notes being created, each note is saved at once, so its event carries the chain's depth.
    WorkflowFactory(tenant=tenant, name="On a note", trigger_type="model_created", model_type="note",
                    actions=[{"type": "add_tag", "config": {"tag": "noted"}}])
    change(accounts, industry="Energy")
    with CaptureQueriesContext(connection) as queries:
        engine.process_pending(tenant.pk, limit=50)
    assert note_inserts(queries) == 5
    assert sorted(Event.objects.filter(model="note").values_list("depth", flat=True)) == [1] * 5


def test_a_cooldown_holds_between_events_of_the_same_batch(tenant):
    UpdateRuleFactory(tenant=tenant, cooldown_minutes=60)
    account = AccountFactory(tenant=tenant)
    change([account], "Retail")
    change([account], "Software")
    assert Event.objects.filter(processed_at__isnull=True).count() == 2
    runs = engine.process_pending(tenant.pk, limit=50)
    assert sorted((r.status, r.skip_reason) for r in runs) == [("skipped", "cooldown"), ("success", "")]
    assert Note.objects.count() == 1


def test_the_breaker_counts_failures_made_within_one_batch(tenant):
    broken = UpdateRuleFactory(tenant=tenant, failure_threshold=3,
                               actions=[{"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'nobody@example.com' }}"}}])
    change(AccountFactory.create_batch(4, tenant=tenant))
    runs = engine.process_pending(tenant.pk, limit=50)
    assert [r.status for r in runs] == ["failed"] * 3  # paused after the third: the fourth event finds no live rule
    broken.refresh_from_db()
    assert broken.status == "paused"
    assert Run.objects.filter(status="failed").count() == 3


def test_messages_are_linked_to_the_step_that_wrote_them_in_a_batch(tenant):
    UpdateRuleFactory(tenant=tenant, actions=[{"type": "create_note", "config": {"body": "first"}},
                                              {"type": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}}])
    change(AccountFactory.create_batch(3, tenant=tenant))
    engine.process_pending(tenant.pk, limit=50)
    messages = list(Outbox.objects.all())
    assert len(messages) == 3
    steps = RunStep.objects.in_bulk([m.run_step_id for m in messages])
    assert all(m.run_step_id in steps and steps[m.run_step_id].position == 1 and steps[m.run_step_id].run_id == m.run_id
               for m in messages)


def broken_event(tenant):
    """An event naming an object id that is not one (a hand-raised domain event gone wrong)."""
    return EventFactory(tenant=tenant, model="account", object_id="not-an-id")


def test_one_broken_event_does_not_hold_back_the_rest_of_its_batch(tenant):
    UpdateRuleFactory(tenant=tenant)
    accounts = AccountFactory.create_batch(2, tenant=tenant)
    change(accounts[:1])
    bad = broken_event(tenant)
    change(accounts[1:])

    runs = engine.process_pending(tenant.pk, limit=50)

    assert len(runs) == 2 and all(r.status == "success" for r in runs)
    assert Note.objects.count() == 2
    bad.refresh_from_db()
    assert bad.processed_at is None and bad.failed_at is None
    assert bad.attempts == 1
    assert "not-an-id" in bad.last_error or "UUID" in bad.last_error


def test_an_event_that_keeps_failing_is_set_aside_and_no_longer_swept(tenant, settings):
    settings.AUTOMATION_EVENT_MAX_ATTEMPTS = 3
    UpdateRuleFactory(tenant=tenant)
    bad = broken_event(tenant)
    for _ in range(3):
        assert engine.process_event(tenant.pk, bad.pk) == []
    bad.refresh_from_db()
    assert bad.attempts == 3
    assert bad.failed_at is not None and bad.processed_at is None
    Event.objects.filter(pk=bad.pk).update(created_at=bad.created_at.replace(year=2020))
    assert scheduling.sweep_events() == 0
    assert engine.process_pending(tenant.pk) == []


def test_a_task_handed_the_newest_event_processes_the_older_ones_first(tenant, settings):
    settings.AUTOMATION_EVENT_BATCH = 50
    UpdateRuleFactory(tenant=tenant, actions=[{"type": "create_note", "config": {"body": "{{ event.industry }}"}}])
    account = AccountFactory(tenant=tenant)
    for industry in ("Retail", "Software", "Banking"):
        change([account], industry)
    events = list(Event.objects.order_by("id"))

    tasks.process_event(str(tenant.pk), events[-1].pk)

    assert list(Note.objects.order_by("id").values_list("body", flat=True)) == ["Retail", "Software", "Banking"]


def test_a_run_whose_chained_rule_fails_is_stored_as_it_was_answered(tenant):
    inner = WorkflowFactory(tenant=tenant, name="Inner", trigger_type="manual", failure_threshold=0,
                            actions=[{"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'nobody@example.com' }}"}}])
    outer = WorkflowFactory(tenant=tenant, name="Outer", trigger_type="manual",
                            actions=[{"type": "trigger_workflow", "config": {"workflow_id": inner.pk}},
                                     {"type": "create_note", "config": {"body": "after"}}])
    account = AccountFactory(tenant=tenant)

    run = engine.fire(outer, account=account, manual=True)

    stored = Run.objects.get(pk=run.pk)
    assert (run.status, stored.status) == ("success", "success")
    assert stored.finished_at is not None and stored.result["steps"] == 2
    assert Run.objects.get(workflow=inner).status == "failed"
    assert [s.status for s in stored.steps.order_by("position")] == ["success", "success"]


def test_a_database_hiccup_is_not_counted_against_the_event(tenant):
    """A deadlock or a lost connection is no fault of the event: it stays pending, uncounted."""
    from django.db import OperationalError

    bad = broken_event(tenant)
    engine._record_failure(tenant, bad.pk, OperationalError("deadlock detected"))
    bad.refresh_from_db()
    assert (bad.attempts, bad.last_error, bad.failed_at) == (0, "", None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_workers_draining_one_backlog_share_it_and_hold_the_limits(tenant):
    """Two workers take batches of the same tenant's backlog at once, both firing two rules with cooldowns
    (locked for the whole batch): every event is processed once, each account fires each rule once, and no
    worker deadlocks or fails."""
    import threading

    from csplatform.tenancy import tenant_context

    UpdateRuleFactory(tenant=tenant, name="First", cooldown_minutes=60)
    UpdateRuleFactory(tenant=tenant, name="Second", cooldown_minutes=60,
                      actions=[{"type": "create_note", "config": {"body": "second"}}])
    accounts = AccountFactory.create_batch(10, tenant=tenant)
    for industry in ("Retail", "Software", "Banking"):
        change(accounts, industry)
    barrier, errors = threading.Barrier(2), []

    def worker():
        from django.db import connection as thread_connection

        try:
            with tenant_context(tenant):
                barrier.wait()
                while engine.process_pending(tenant.pk, limit=7):
                    pass
        except Exception as exc:  # pragma: no cover - what the assertion below reports
            errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    assert Event.objects.filter(attempts=1).count() == 30  # each processed once, none failed
    assert Run.objects.filter(status="success").count() == 20  # 10 accounts x 2 rules
    assert Run.objects.filter(status="skipped", skip_reason="cooldown").count() == 40
    assert Note.objects.count() == 20


class NoteThenFail(Action):
    """An action that writes, then fails: what a savepoint exists for."""

    type = "note_then_fail"

    def run(self, config, ctx):
        Note.objects.create(tenant=ctx.tenant, account=ctx.account, body="partial")
        raise ActionError("failed after writing")


class HookThenFail(DeliveryAction):
    """A delivery action that writes its message, then fails."""

    type = "hook_then_fail"

    def run(self, config, ctx):
        self._enqueue(ctx, config, [{"channel": "webhook", "target": "https://hooks.example.com/x", "payload": {}}])
        raise ActionError("failed after enqueueing")


@pytest.fixture
def failing_actions():
    for cls in (NoteThenFail, HookThenFail):
        actions.register(cls.type)(cls())
    yield
    for cls in (NoteThenFail, HookThenFail):
        actions._items.pop(cls.type)


def test_an_action_failing_after_its_writes_leaves_none_of_them_and_only_its_event_is_fired_again(
        tenant, failing_actions, django_capture_on_commit_callbacks):
    from delivery import services as delivery

    UpdateRuleFactory(tenant=tenant, name="Fails for one account", continue_on_error=True, failure_threshold=0,
                      conditions={"all": [{"field": "name", "operator": "equals", "value": "Fails"}]},
                      actions=[{"type": "webhook", "config": {"url": "https://hooks.example.com/a"}},
                               {"type": "note_then_fail", "config": {}}, {"type": "hook_then_fail", "config": {}},
                               {"type": "create_note", "config": {"body": "ok"}}])
    UpdateRuleFactory(tenant=tenant, name="Works", actions=[{"type": "create_note", "config": {"body": "works"}}])
    accounts = [*AccountFactory.create_batch(2, tenant=tenant), AccountFactory(tenant=tenant, name="Fails")]
    change(accounts)

    with django_capture_on_commit_callbacks() as callbacks:
        runs = engine.process_pending(tenant.pk, limit=50)

    assert sorted(r.status for r in runs) == ["failed", "skipped", "skipped", "success", "success", "success"]
    assert Note.objects.filter(body="partial").count() == 0
    assert Note.objects.filter(body="ok").count() == 1 and Note.objects.filter(body="works").count() == 3
    failed = Run.objects.get(status="failed")
    assert list(failed.steps.order_by("position").values_list("status", flat=True)) == [
        "success", "failed", "failed", "success"]
    [message] = Outbox.objects.all()  # the first webhook's; the failed one's message is gone
    assert (message.target, RunStep.objects.get(pk=message.run_step_id).position) == ("https://hooks.example.com/a", 0)
    handed_over = [pk for c in callbacks if getattr(c, "func", None) is delivery.dispatch for pk in c.args[0]]
    assert handed_over == [message.pk]
    assert Run.objects.count() == 6  # the event fired again left no run of its first attempt

    # The tenant's next batch starts with a savepoint per event (its last one had a failure): same outcome.
    change(accounts, "Software")
    runs = engine.process_pending(tenant.pk, limit=50)
    assert sorted(r.status for r in runs) == ["failed", "skipped", "skipped", "success", "success", "success"]
    assert Note.objects.filter(body="partial").count() == 0 and Note.objects.filter(body="ok").count() == 2
    assert Outbox.objects.count() == 2


def test_a_failing_action_in_a_batch_leaves_only_what_the_careful_run_wrote(tenant):
    """A batch runs its actions without savepoints; when one fails, the batch is rolled back and done again
    with them: the notes of the first attempt are gone, the failures are recorded once."""
    UpdateRuleFactory(tenant=tenant, continue_on_error=True, failure_threshold=0,
                      actions=[{"type": "create_note", "config": {"body": "noted"}},
                               {"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'nobody@example.com' }}"}},
                               {"type": "add_tag", "config": {"tag": "seen"}}])
    accounts = AccountFactory.create_batch(3, tenant=tenant)
    change(accounts)

    runs = engine.process_pending(tenant.pk, limit=50)

    assert [r.status for r in runs] == ["failed"] * 3
    assert Run.objects.count() == 3 and Note.objects.count() == 3
    assert list(RunStep.objects.filter(run=runs[0]).order_by("position").values_list("status", flat=True)) == [
        "success", "failed", "success"]
    assert all(a.tags.filter(name="seen").exists() for a in Account.objects.filter(pk__in=[a.pk for a in accounts]))
    assert not Event.objects.filter(processed_at__isnull=True, depth=0).exists()
    # The tags the careful run added are account updates of their own, once each (the first attempt's are gone).
    assert Event.objects.filter(processed_at__isnull=True, depth=1).count() == 3


def test_webhook_payloads_in_a_batch_carry_each_accounts_latest_score_even_one_recorded_in_the_batch(tenant):
    from tests.factories import health_score

    scored = AccountFactory.create_batch(3, tenant=tenant)
    for n, account in enumerate(scored):
        health_score(account, usage_score=40 + 10 * n, engagement_score=40 + 10 * n)
    unscored = AccountFactory(tenant=tenant)
    UpdateRuleFactory(tenant=tenant, actions=[
        {"type": "webhook", "config": {"url": "https://hooks.example.com/a"}},
        {"type": "update_health_score", "config": {"adjustment": -20, "reason": "bench"}},
        {"type": "webhook", "config": {"url": "https://hooks.example.com/b"}}])
    change([*scored, unscored])

    engine.process_pending(tenant.pk, limit=50)

    run_accounts = dict(Run.objects.values_list("pk", "account_id"))
    sent = {(run_accounts[m.run_id], m.target): m.payload["health_score"] for m in Outbox.objects.all()}
    for account in scored:
        before, after = sent[(account.pk, "https://hooks.example.com/a")], sent[(account.pk, "https://hooks.example.com/b")]
        latest = account.health_scores.order_by("-calculated_at", "-id").first()
        assert after["current_score"] == float(latest.overall_score)  # the score the action recorded
        assert before["current_score"] == after["current_score"] + 20
    assert sent[(unscored.pk, "https://hooks.example.com/a")] is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="DISTINCT ON")
def test_a_batch_reads_its_accounts_latest_scores_in_one_query(tenant):
    from tests.factories import health_score

    accounts = AccountFactory.create_batch(5, tenant=tenant)
    for account in accounts:
        health_score(account, usage_score=70)
    UpdateRuleFactory(tenant=tenant, actions=[{"type": "webhook", "config": {"url": "https://hooks.example.com/a"}}])
    change(accounts)
    with CaptureQueriesContext(connection) as queries:
        engine.process_pending(tenant.pk, limit=50)
    assert sum('FROM "accounts_healthscore"' in q["sql"] for q in queries.captured_queries) == 1
    assert all(m.payload["health_score"]["usage_score"] == 70.0 for m in Outbox.objects.all())
