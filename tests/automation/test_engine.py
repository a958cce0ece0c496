"""The one flow end to end: a real change -> Event -> rule -> conditions -> limits -> actions -> Run."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from accounts import services as account_services
from accounts.models import Account, JourneyStage, Note, Task
from automation import engine
from automation.models import Event, Run, Workflow
from automation.services import workflow_save
from csplatform.tenancy import tenant_context
from tests.factories import AccountFactory, MembershipFactory, WorkflowFactory, health_score

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_events(django_capture_on_commit_callbacks):
    """Run the block, then process (on commit, as production does) every event it raised."""

    class Runner:
        def __enter__(self):
            self.cm = django_capture_on_commit_callbacks(execute=True)
            self.cm.__enter__()

        def __exit__(self, *exc):
            return self.cm.__exit__(*exc)

    return Runner


def test_it_writes_no_event_when_no_live_rule_listens(tenant):
    WorkflowFactory(tenant=tenant, trigger_type="model_created", model_type="contact", status="draft",
                    actions=[{"type": "create_note", "config": {"body": "x"}}])
    account = AccountFactory(tenant=tenant)
    account.industry = "Retail"
    account.save()
    assert Event.objects.count() == 0


def test_it_creates_a_task_for_the_owner_when_a_status_changes(tenant, run_events):
    owner = MembershipFactory(tenant=tenant).user
    account = AccountFactory(tenant=tenant, owner=owner, name="TechStart Solutions")
    WorkflowFactory(tenant=tenant, trigger_type="field_changed", model_type="account",
                    trigger_config={"field": "status", "to": "at_risk"},
                    actions=[{"type": "create_task", "config": {"title": "Call {{ account.name }}", "assignee": "auto",
                                                                "due_date_offset": "+3d", "priority": "high"}}])
    with run_events():
        account.status = Account.Status.AT_RISK
        account.save()
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCESS
    task = Task.objects.get()
    assert (task.title, task.assignee, task.priority) == ("Call TechStart Solutions", owner, "high")
    assert run.steps.get().output["task_id"] == task.pk
    assert Event.objects.get().processed_at is not None


def test_it_fires_a_health_drop_once_and_holds_the_second_inside_the_cooldown(tenant, run_events):
    account = AccountFactory(tenant=tenant)
    health_score(account, usage_score=65)
    WorkflowFactory(tenant=tenant, trigger_type="health_score_change",
                    trigger_config={"threshold": 40, "direction": "decrease"}, cooldown_minutes=60,
                    actions=[{"type": "create_note", "config": {"body": "Dropped to {{ event.current_score }}"}}])
    with run_events():
        health_score(account, usage_score=35)
    with run_events():
        health_score(account, usage_score=30)
    runs = list(Run.objects.order_by("created_at").values_list("status", "skip_reason"))
    assert runs == [("success", ""), ("skipped", "cooldown")]
    assert Note.objects.get().body == "Dropped to 35.0"


def test_it_reacts_to_a_stage_transition_to_at_risk(tenant, run_events):
    account = AccountFactory(tenant=tenant)
    WorkflowFactory(tenant=tenant, trigger_type="stage_change", trigger_config={"to_stage": "At Risk"},
                    actions=[{"type": "add_tag", "config": {"tag": "at-risk"}}])
    stages = JourneyStage.objects.for_tenant(tenant)
    with run_events():
        account_services.journey_move_to_stage(account=account, stage=stages.get(name="Adoption"))
        account_services.journey_move_to_stage(account=account, stage=stages.get(name="At Risk"))
    assert Run.objects.filter(status="success").count() == 1
    assert list(account.tags.values_list("name", flat=True)) == ["at-risk"]


@pytest.mark.parametrize("continue_on_error, expected_steps", [
    (True, [("assign_to_user", "failed"), ("create_note", "success")]),
    (False, [("assign_to_user", "failed")]),
])
def test_it_records_a_failed_step_and_follows_continue_on_error(tenant, run_events, continue_on_error, expected_steps):
    account = AccountFactory(tenant=tenant)
    WorkflowFactory(tenant=tenant, trigger_type="status_change", trigger_config={"to_status": "churned"},
                    continue_on_error=continue_on_error,
                    actions=[{"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'stranger@example.com' }}"}},
                             {"type": "create_note", "config": {"body": "churned"}}])
    with run_events():
        account_services.account_save(account=account, changes={"status": "churned"})
    run = Run.objects.get()
    assert run.status == "failed"
    assert list(run.steps.values_list("action_type", "status")) == expected_steps
    assert "not a member of this tenant" in run.error
    assert Note.objects.exists() == continue_on_error


def test_it_stops_a_rule_chain_at_the_recursion_limit(tenant, run_events):
    account = AccountFactory(tenant=tenant)
    WorkflowFactory(tenant=tenant, name="note makes task", trigger_type="model_created", model_type="note",
                    actions=[{"type": "create_task", "config": {"title": "follow up {{ entity.id }}"}}])
    WorkflowFactory(tenant=tenant, name="task makes note", trigger_type="model_created", model_type="task",
                    actions=[{"type": "create_note", "config": {"body": "task {{ entity.id }} created"}}])
    with run_events():
        Note.objects.create(tenant=tenant, account=account, body="start")
    skipped = Run.objects.filter(status="skipped", skip_reason="recursion_limit")
    assert skipped.count() == 1
    assert Run.objects.filter(status="success").count() == engine.MAX_DEPTH + 1


def test_it_skips_runs_beyond_the_rate_limit(tenant, run_events):
    account = AccountFactory(tenant=tenant)
    WorkflowFactory(tenant=tenant, trigger_type="model_updated", model_type="account",
                    rate_limiting={"limit": 2, "period": "hour"},
                    actions=[{"type": "create_note", "config": {"body": "changed"}}])
    for industry in ("A", "B", "C"):
        with run_events():
            account.industry = industry
            account.save()
    assert list(Run.objects.order_by("created_at").values_list("skip_reason", flat=True)) == ["", "", "rate_limited"]


@pytest.mark.parametrize("data, field", [
    ({"trigger_type": "on_full_moon"}, "trigger_type"),
    ({"trigger_type": "model_created", "model_type": "spaceship"}, "trigger_config.model_type"),
    ({"trigger_type": "health_score_change", "trigger_config": {"direction": "sideways"}}, "trigger_config.direction"),
    ({"trigger_type": "manual", "actions": [{"type": "launch_rocket"}]}, "actions[0].type"),
    ({"trigger_type": "manual", "actions": [{"type": "create_task", "config": {}}]}, "actions[0].config.title"),
    ({"trigger_type": "manual", "actions": [{"type": "update_field", "config": {"field": "arr"}}]},
     "actions[0].config.field"),
    ({"trigger_type": "manual", "rate_limiting": {"limit": 0}}, "rate_limiting.limit"),
])
def test_it_refuses_a_bad_rule_naming_the_field(tenant, data, field):
    with pytest.raises(ValidationError) as info:
        WorkflowFactory(tenant=tenant, **data)
    assert field in info.value.message_dict
    assert not Workflow.objects.exists()


def test_it_refuses_a_trigger_workflow_cycle_at_save_time(tenant):
    first = WorkflowFactory(tenant=tenant, trigger_type="manual")
    second = WorkflowFactory(tenant=tenant, trigger_type="manual",
                             actions=[{"type": "trigger_workflow", "config": {"workflow_id": first.pk}}])
    with pytest.raises(ValidationError) as info:
        workflow_save(rule=first, data={"actions": [{"type": "trigger_workflow", "config": {"workflow_id": second.pk}}]})
    assert "actions" in info.value.message_dict


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_it_holds_the_cooldown_under_concurrent_workers(tenant):
    account = AccountFactory(tenant=tenant)
    cooled = WorkflowFactory(tenant=tenant, trigger_type="manual", cooldown_minutes=60,
                             actions=[{"type": "create_note", "config": {"body": "once"}}])
    barrier = threading.Barrier(4)

    def worker():
        from django.db import connection as thread_connection, transaction

        try:
            with tenant_context(tenant), transaction.atomic():
                barrier.wait()
                engine.fire(cooled, account=account, depth=0, manual=False)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(Run.objects.values_list("status", flat=True))
    assert statuses == ["skipped", "skipped", "skipped", "success"]
    assert Note.objects.count() == 1


def _later(minutes):
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() + timedelta(minutes=minutes)


def test_it_waits_delay_minutes_before_running_the_actions(tenant, run_events):
    account = AccountFactory(tenant=tenant)
    WorkflowFactory(tenant=tenant, trigger_type="model_updated", model_type="account", delay_minutes=5,
                    actions=[{"type": "create_note", "config": {"body": "later"}}])
    with run_events():
        account.industry = "Retail"
        account.save()
    run = Run.objects.get()
    assert run.status == "queued" and not Note.objects.exists()
    assert engine.run_due_runs(tenant.pk, now=_later(1)) == []
    engine.run_due_runs(tenant.pk, now=_later(6))
    run.refresh_from_db()
    assert run.status == "success"
    assert Note.objects.get().body == "later"


def test_it_retries_a_failed_action_with_backoff_and_resumes_where_it_failed(tenant, run_events):
    account = AccountFactory(tenant=tenant)
    WorkflowFactory(tenant=tenant, trigger_type="manual", allow_retries=True,
                    retry_configuration={"max_retries": 3, "delay_minutes": 10, "backoff_multiplier": 2},
                    actions=[{"type": "create_note", "config": {"body": "first"}},
                             {"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'late@example.com' }}"}}])
    first = engine.fire(Workflow.objects.get(), account=account, manual=True)
    assert first.status == "failed"
    retry = Run.objects.get(retry_of=first)
    assert (retry.status, retry.attempt, retry.start_position) == ("queued", 2, 1)
    assert 9 * 60 < (retry.scheduled_for - first.created_at).total_seconds() < 11 * 60
    MembershipFactory(tenant=tenant, user__username="late@example.com")
    engine.run_due_runs(tenant.pk, now=_later(11))
    retry.refresh_from_db()
    assert retry.status == "success"
    assert Note.objects.count() == 1  # the first action is not repeated
    assert list(retry.steps.values_list("action_type", flat=True)) == ["assign_to_user"]


def test_it_gives_up_after_max_retries(tenant):
    account = AccountFactory(tenant=tenant)
    WorkflowFactory(tenant=tenant, trigger_type="manual", allow_retries=True, failure_threshold=0,
                    retry_configuration={"max_retries": 2, "delay_minutes": 1, "backoff_multiplier": 1},
                    actions=[{"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'nobody@example.com' }}"}}])
    engine.fire(Workflow.objects.get(), account=account, manual=True)
    for minutes in (2, 4, 6, 8):
        engine.run_due_runs(tenant.pk, now=_later(minutes))
    assert list(Run.objects.order_by("attempt").values_list("attempt", "status")) == [
        (1, "failed"), (2, "failed"), (3, "failed")]


def test_it_pauses_a_rule_that_keeps_failing_and_tells_the_tenant_admins(tenant):
    admin = MembershipFactory(tenant=tenant).user
    account = AccountFactory(tenant=tenant)
    broken = WorkflowFactory(tenant=tenant, trigger_type="manual", failure_threshold=3,
                             actions=[{"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'nobody@example.com' }}"}}])
    for _ in range(3):
        engine.fire(Workflow.objects.get(), account=account)
    broken.refresh_from_db()
    assert broken.status == "paused"
    task = Task.objects.get(assignee=admin)
    assert "failed 3 times in a row" in task.title


def test_a_rolled_back_breaker_trip_leaves_the_shared_rule_index_right(tenant):
    """The breaker pauses a rule and writes a task inside the batch: the task's event must read the batch's own
    rule index, or a rebuild without the (paused, then rolled back) rule would reach the shared cache and
    silence the rule's events for minutes."""
    from django.db import transaction

    from automation import rule_index

    MembershipFactory(tenant=tenant)  # a tenant admin, told by a task when a rule is paused
    account = AccountFactory(tenant=tenant)
    rule = WorkflowFactory(tenant=tenant, trigger_type="field_changed", model_type="account",
                           trigger_config={"field": "industry"}, failure_threshold=1,
                           actions=[{"type": "assign_to_user", "config": {"user": "{{ custom.owner|default:'nobody@example.com' }}"}}])
    assert rule_index.interested(tenant.pk, "model_updated", "account")
    with pytest.raises(RuntimeError), transaction.atomic():
        run = engine.fire(Workflow.objects.get(pk=rule.pk), subject=account, account=account)
        assert run.status == "failed" and Workflow.objects.get(pk=rule.pk).status == "paused"
        assert Task.objects.filter(title__contains="Automation paused").exists()
        raise RuntimeError("roll the batch back")
    assert Workflow.objects.get(pk=rule.pk).status == "active"
    assert rule_index.interested(tenant.pk, "model_updated", "account")


def test_it_debounces_an_autosave_storm_into_one_run(tenant, run_events):
    account = AccountFactory(tenant=tenant)
    WorkflowFactory(tenant=tenant, trigger_type="field_changed", model_type="account",
                    trigger_config={"field": "industry", "debounce_seconds": 60},
                    actions=[{"type": "create_note", "config": {"body": "industry is now {{ entity.industry }}"}}])
    for industry in ("R", "Re", "Ret", "Retail"):
        with run_events():
            account.industry = industry
            account.save()
    assert Run.objects.filter(status="queued").count() == 1
    assert engine.run_due_runs(tenant.pk, now=_later(0.5)) == []
    engine.run_due_runs(tenant.pk, now=_later(2))
    assert list(Run.objects.values_list("status", flat=True)) == ["success"]
    assert Note.objects.get().body == "industry is now Retail"


def test_it_writes_rule_changes_to_the_audit_trail(tenant):
    from accounts.models import AuditLog
    from automation.services import workflow_delete

    actor = MembershipFactory(tenant=tenant).user
    saved = workflow_save(rule=Workflow(tenant=tenant), actor=actor, data={
        "name": "Alert", "status": "draft", "trigger_type": "manual", "cooldown_minutes": 60})
    workflow_save(rule=saved, actor=actor, data={"cooldown_minutes": 30})
    workflow_delete(rule=saved, actor=actor)
    entries = list(AuditLog.objects.for_tenant(tenant).filter(object_type="automation.workflow").order_by("created_at", "id"))
    assert [e.action for e in entries] == ["create", "update", "delete"]
    # a draft rule is edited in place, and a definition applied at once is a new version
    assert entries[1].changes == {"cooldown_minutes": [60, 30], "version": [1, 2]}
    assert entries[1].actor == actor
    assert "webhook_token" not in entries[1].changes
