"""What starts journeys: each journey's managed rule in the automation engine, fed by accounts' domain changes,
crm's payment events and the daily scan. A journey starts when the engine processes the event (here: on
commit, celery eager), and every start, or refusal, leaves a Run that says why."""

import datetime

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Goal
from automation.models import Event, Run
from crm import triggers
from crm.models import CRMPlaybook, CRMPlaybookExecution, CRMSettings
from crm.scheduler import execute_pending_steps
from crm.services import crm_settings_for, start_journey
from tests.factories import AccountFactory, ContactFactory, UsageMetricFactory, health_score

from .conftest import T0, hours, steps_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def engine(django_capture_on_commit_callbacks):
    """``with engine():`` the events written inside are processed when the block commits (eager celery)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def executions(name=None):
    qs = CRMPlaybookExecution.objects.all()
    return list(qs.filter(playbook__name=name) if name else qs)


def runs(tenant, journey, rule="workflow"):
    """The runs of a journey's rule (``workflow``: the start rule, ``conversion_workflow``), oldest first."""
    rule_id = getattr(CRMPlaybook.objects.for_tenant(tenant).get(name=journey), f"{rule}_id")
    return list(Run.objects.filter(workflow_id=rule_id).order_by("created_at", "id"))


def started_by(run, execution):
    """The run is the one that started the execution: the step says so and the execution names the run."""
    [step] = run.steps.all()
    assert (run.status, step.action_type, step.output["execution_id"]) == ("success", "add_to_cadence", execution.pk)
    assert execution.context["run_id"] == run.pk and execution.context["workflow_id"] == run.workflow_id
    assert execution.source == "trigger"
    return True


# --- accounts' domain changes --------------------------------------------------------------------

def test_a_cancellation_starts_winback_24_hours_later_for_the_primary_contact_through_its_rule(
        tenant, account, contact, engine):
    before = timezone.now()
    with engine():
        account_services.account_save(account=account, changes={"status": Account.Status.CANCELLED})
    [execution] = executions("winback")
    [run] = runs(tenant, "winback")
    assert started_by(run, execution) and run.trigger_data["type"] == "status_change"
    assert execution.contact == contact and execution.context["to_status"] == "cancelled"
    assert execution.context["trigger"] == "cancellation"
    assert before + hours(24) <= execution.next_step_at <= timezone.now() + hours(24)
    assert execute_pending_steps(now=execution.next_step_at - hours(1)) == {"executions": 0, "errors": 0}
    assert execute_pending_steps(now=execution.next_step_at)["sent"] == 1
    # cancelled -> churned is not a second cancellation: the rule does not even match
    with engine():
        account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})
    assert len(executions("winback")) == 1 and len(runs(tenant, "winback")) == 1


def test_it_uses_the_first_contact_when_there_is_no_primary_one(tenant, account, engine):
    first = ContactFactory(account=account)
    ContactFactory(account=account)
    with engine():
        account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})
    assert executions("winback")[0].contact == first


def test_no_contact_to_reach_is_a_failed_run_saying_so_and_the_account_change_stays(tenant, account, engine):
    with engine():
        account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})
    assert Account.objects.get(pk=account.pk).status == "churned" and not executions()
    [run] = runs(tenant, "winback")
    assert run.status == "failed" and run.account_id == account.pk
    assert run.error == "add_to_cadence: no contact to reach (account 'Globex' has no contacts); journey 'winback' " \
                        "not started"
    # refusals never pause a journey's rule (the circuit breaker is off for them)
    assert run.workflow.failure_threshold == 0 and run.workflow.status == "active"


def test_an_error_starting_the_journey_is_a_failed_run_and_the_account_change_stays(
        tenant, account, contact, engine, monkeypatch):
    import crm.actions

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(crm.actions, "start_journey", broken)
    with engine():
        account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})
    assert Account.objects.get(pk=account.pk).status == "churned" and not executions()
    [run] = runs(tenant, "winback")
    assert run.status == "failed" and "RuntimeError: boom" in run.error


def test_churn_risk_starts_when_the_risk_level_becomes_at_risk_or_critical(tenant, account, contact, engine):
    with engine():
        health_score(account, usage_score=90, engagement_score=90, support_sentiment_score=90, adoption_score=90)
    assert not executions() and not runs(tenant, "churn_risk")
    with engine():
        health_score(account, usage_score=45, engagement_score=45, support_sentiment_score=45, adoption_score=45)
    [execution] = executions("churn_risk")
    [run] = runs(tenant, "churn_risk")
    assert started_by(run, execution) and run.trigger_data["type"] == "health_score_change"
    assert execution.context["risk_level"] == "at_risk" and execution.context["previous_score"] == 90.0
    assert execution.context["health_score"] == 45.0
    # at risk -> critical is not "becoming" risky again: no run at all
    with engine():
        health_score(account, usage_score=10, engagement_score=10, support_sentiment_score=10, adoption_score=10)
    assert len(executions("churn_risk")) == 1 and len(runs(tenant, "churn_risk")) == 1


def test_churn_risk_starts_on_a_first_critical_score(tenant, account, contact, engine):
    with engine():
        health_score(account, usage_score=10, engagement_score=10, support_sentiment_score=10, adoption_score=10)
    [execution] = executions("churn_risk")
    assert execution.context["risk_level"] == "critical" and execution.context["previous_score"] is None
    assert started_by(runs(tenant, "churn_risk")[0], execution)


def test_a_backdated_risky_score_is_a_skipped_run_the_account_is_not_at_risk(tenant, account, contact, engine):
    health_score(account, usage_score=90, engagement_score=90, support_sentiment_score=90, adoption_score=90)
    with engine():
        account_services.health_score_record(account=account, components={"usage_score": 10},
                                             calculated_at=timezone.now() - datetime.timedelta(days=30))
    assert not executions()
    [run] = runs(tenant, "churn_risk")
    assert (run.status, run.skip_reason) == ("skipped", "conditions_not_met")
    [leaf] = run.trace  # the rule keeps its condition's trace: why it did not start
    assert leaf["field"] == "risk_level" and leaf["actual"] == "healthy" and leaf["passed"] is False


def test_milestone_congrats_starts_when_a_goal_is_achieved(tenant, account, contact, engine):
    with engine():
        goal = account_services.goal_save(goal=Goal(tenant=tenant, account=account, title="100 active users"))
    assert not executions() and not runs(tenant, "milestone_congrats")
    with engine():
        account_services.goal_save(goal=goal, changes={"status": Goal.Status.ACHIEVED})
    [execution] = executions("milestone_congrats")
    assert started_by(runs(tenant, "milestone_congrats")[0], execution)
    assert (execution.context["goal_title"], execution.context["goal_id"]) == ("100 active users", goal.pk)


def test_milestone_congrats_starts_for_a_goal_created_already_achieved(tenant, account, contact, engine):
    with engine():
        goal = account_services.goal_save(goal=Goal(tenant=tenant, account=account, title="Go live",
                                                    status=Goal.Status.ACHIEVED))
    [execution] = executions("milestone_congrats")
    assert started_by(runs(tenant, "milestone_congrats")[0], execution) and execution.context["goal_id"] == goal.pk


def test_churn_risk_starts_when_raised_bands_make_a_rising_score_at_risk(tenant, account, contact, engine):
    with engine():
        health_score(account, usage_score=65, engagement_score=65, support_sentiment_score=65, adoption_score=65)
    assert not executions()  # 65: moderate
    tenant.band_moderate = 70
    tenant.save(update_fields=["band_moderate"])
    with engine():
        health_score(account, usage_score=66, engagement_score=66, support_sentiment_score=66, adoption_score=66)
    [execution] = executions("churn_risk")  # 66 went up, but is at risk now: the level *became* risky
    assert execution.context["risk_level"] == "at_risk" and started_by(runs(tenant, "churn_risk")[0], execution)


def test_a_refused_start_fails_its_step_without_redoing_the_batch(tenant, account, engine):
    from django.core.cache import cache

    with engine():
        account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})
    [run] = runs(tenant, "winback")
    assert run.status == "failed" and "no contact to reach" in run.error
    # a refusal writes nothing before it refuses: the tenant's batches stay in the fast, savepoint-free mode
    assert cache.get(f"automation:careful:{tenant.pk}") is None


# --- crm's payment events ------------------------------------------------------------------------

def test_payment_failed_starts_the_rescue_and_a_second_one_says_it_is_already_active(
        tenant, account, contact, engine):
    with engine():
        event = triggers.payment_failed(account, amount="49", invoice_id="in_1")
    assert (event.type, event.payload) == ("payment_failed", {"account_id": str(account.pk), "amount": "49",
                                                              "invoice_id": "in_1"})
    [execution] = executions("payment_failed_rescue")
    [first] = runs(tenant, "payment_failed_rescue")
    assert started_by(first, execution) and first.event_id == event.pk
    assert (execution.context["invoice_id"], execution.context["amount"]) == ("in_1", "49")
    with engine():
        triggers.payment_failed(account, amount="49", invoice_id="in_2")
    second = runs(tenant, "payment_failed_rescue")[1]
    assert second.status == "success" and second.steps.get().output == {
        "journey": "payment_failed_rescue", "execution_id": execution.pk, "contact_id": contact.pk,
        "already_active": True}
    assert len(executions()) == 1


def test_the_reentry_rule_refuses_through_a_failed_run_naming_it(tenant, account, contact, engine):
    with engine():
        triggers.payment_failed(account)
    [rescue] = executions()
    CRMPlaybookExecution.objects.filter(pk=rescue.pk).update(status="completed", started_at=timezone.now() - hours(100))
    with engine():
        triggers.payment_failed(account)
    refused = runs(tenant, "payment_failed_rescue")[-1]
    assert refused.status == "failed" and refused.error.startswith("add_to_cadence: reentry_cooldown: ")
    assert "re-entry is allowed 168 hours after that" in refused.error
    CRMPlaybookExecution.objects.filter(pk=rescue.pk).update(started_at=timezone.now() - hours(169))
    with engine():
        triggers.payment_failed(account)
    assert len(executions()) == 2 and runs(tenant, "payment_failed_rescue")[-1].status == "success"
    CRMPlaybook.objects.filter(name="payment_failed_rescue").update(max_entries=2)
    CRMPlaybookExecution.objects.update(status="completed", started_at=timezone.now() - hours(400))
    with engine():
        triggers.payment_failed(account)
    assert runs(tenant, "payment_failed_rescue")[-1].error.startswith("add_to_cadence: max_entries: ")


def test_an_inactive_journey_starts_nothing_and_every_active_journey_on_the_trigger_starts(
        tenant, account, contact, engine):
    rescue = CRMPlaybook.objects.get(tenant=tenant, name="payment_failed_rescue")
    rescue.active = False
    rescue.save()  # its rule is paused: nobody listens to payment_failed, so no event is even written
    with engine():
        assert triggers.payment_failed(account) is None
    assert not Event.objects.filter(type="payment_failed").exists() and not executions()
    twin = CRMPlaybook.objects.create(tenant=tenant, name="rescue_b", trigger_event="payment_failed")
    twin.steps.create(tenant=tenant, order=0, channel="email", template="crm/rescue.html")
    with engine():
        triggers.payment_failed(account)
    assert [e.playbook.name for e in executions()] == ["rescue_b"]
    assert started_by(runs(tenant, "rescue_b")[0], executions()[0])


def test_payment_succeeded_converts_the_open_rescue_through_the_conversion_rule(tenant, account, contact, engine):
    with engine():
        triggers.payment_failed(account, amount="99.00", invoice_id="in_1")
    [execution] = executions()
    with engine():
        triggers.payment_succeeded(account, amount="99.00", invoice_id="in_1")
    execution.refresh_from_db()
    assert (execution.status, str(execution.conversion_value)) == ("converted", "99.00")
    assert execution.context["conversion_reason"] == "payment succeeded in_1"
    [run] = runs(tenant, "payment_failed_rescue", "conversion_workflow")
    assert run.status == "success" and run.steps.get().output == {
        "journey": "payment_failed_rescue", "converted": [execution.pk]}
    with engine():  # nothing open any more: a run that converted nothing
        triggers.payment_succeeded(account, amount="99.00")
    assert runs(tenant, "payment_failed_rescue", "conversion_workflow")[-1].steps.get().output["converted"] == []


def test_the_payment_command_raises_the_events(tenant, account, contact, capsys, engine):
    with engine():
        call_command("crm_payment", "failed", "--tenant", tenant.slug, "--account", str(account.pk), "--amount", "20")
    event = Event.objects.get(type="payment_failed")
    assert capsys.readouterr().out.strip() == f'{{"event": "payment_failed", "event_id": {event.pk}}}'
    [execution] = executions("payment_failed_rescue")
    with engine():
        call_command("crm_payment", "succeeded", "--tenant", tenant.slug, "--account", str(account.pk),
                     "--amount", "20")
    execution.refresh_from_db()
    assert execution.status == "converted"


# --- the daily scan ------------------------------------------------------------------------------

def test_the_scan_raises_trial_ending_for_trials_ending_within_three_days(tenant, contact, engine):
    today = timezone.localdate()
    ending = contact.account
    ending.status, ending.renewal_date = Account.Status.TRIAL, today + datetime.timedelta(days=3)
    ending.save()
    later = AccountFactory(tenant=tenant, status=Account.Status.TRIAL, renewal_date=today + datetime.timedelta(days=4))
    paying = AccountFactory(tenant=tenant, status=Account.Status.ACTIVE, renewal_date=today + datetime.timedelta(days=2))
    for a in (later, paying):
        ContactFactory(account=a)
    with engine():
        assert triggers.scan_tenant(tenant)["trial_ending"] == 1
    [execution] = executions("trial_ending")
    assert started_by(runs(tenant, "trial_ending")[0], execution)
    assert execution.account == ending and execution.context["trial_ends_on"] == ending.renewal_date.isoformat()
    # a day later the other trial is 3 days from its end; the first one, already in the journey, is left out
    with engine():
        assert triggers.scan_tenant(tenant, now=timezone.now() + hours(24))["trial_ending"] == 1
    assert sorted(e.account_id for e in executions("trial_ending")) == sorted([ending.pk, later.pk])
    CRMPlaybookExecution.objects.update(status="completed")
    with engine():  # max_entries = 1: nobody is left to raise it for
        assert triggers.scan_tenant(tenant, now=timezone.now() + hours(48))["trial_ending"] == 0
    assert len(runs(tenant, "trial_ending")) == 2


def test_the_scan_raises_inactivity_set_based_and_contactless_accounts_get_a_failed_run(
        tenant, contact, engine, django_assert_max_num_queries):
    today = timezone.localdate(T0)
    idle = contact.account
    UsageMetricFactory(account=idle, date=today - datetime.timedelta(days=20), logins=5)
    UsageMetricFactory(account=idle, date=today - datetime.timedelta(days=3), logins=0)
    busy = AccountFactory(tenant=tenant)
    UsageMetricFactory(account=busy, date=today - datetime.timedelta(days=2), logins=3)
    no_data = AccountFactory(tenant=tenant)
    gone = AccountFactory(tenant=tenant, status=Account.Status.CHURNED)
    UsageMetricFactory(account=gone, date=today - datetime.timedelta(days=30), logins=1)
    for a in (busy, no_data, gone):
        ContactFactory(account=a)
    assert [a.pk for a in triggers.inactive_accounts(tenant, today)] == [idle.pk]
    # more idle accounts cost no more queries to find
    extra = []
    for _ in range(5):
        extra.append(AccountFactory(tenant=tenant))
        UsageMetricFactory(account=extra[-1], date=today - datetime.timedelta(days=15), logins=1)
    with django_assert_max_num_queries(2):
        assert len(list(triggers.inactive_accounts(tenant, today))) == 6
    with engine():
        assert triggers.scan_tenant(tenant, now=T0)["inactivity"] == 6
    [execution] = executions("inactivity_nudge")
    assert execution.account == idle and execution.context["last_login"] == str(today - datetime.timedelta(days=20))
    by_account = {run.account_id: run for run in runs(tenant, "inactivity_nudge")}
    assert started_by(by_account[idle.pk], execution)
    assert {by_account[a.pk].status for a in extra} == {"failed"}  # the extra accounts have no contact to reach
    assert "no contact to reach" in by_account[extra[0].pk].error
    with engine():  # the idle account is in the journey now: only the contactless ones are raised again
        assert triggers.scan_tenant(tenant, now=T0 + hours(24))["inactivity"] == 5


def test_it_scans_each_tenant_once_a_day(tenant, contact, monkeypatch):
    calls = []
    monkeypatch.setattr(triggers, "scan_tenant", lambda t, now: calls.append(t.pk) or {})
    triggers.daily_scan(now=T0)
    triggers.daily_scan(now=T0 + hours(1))
    assert calls.count(tenant.pk) == 1
    assert crm_settings_for(tenant).last_daily_scan == timezone.localdate(T0)
    triggers.daily_scan(now=T0 + hours(24))
    assert calls.count(tenant.pk) == 2
    call_command("crm_daily_triggers", "--force", stdout=open("/dev/null", "w"))
    assert calls.count(tenant.pk) == 3
    assert CRMSettings.objects.filter(tenant=tenant).count() == 1


def test_it_runs_due_steps_from_the_command(tenant, account, contact, capsys):
    start_journey(contact, "payment_failed_rescue")
    call_command("execute_pending_steps")
    assert '"sent": 1' in capsys.readouterr().out
    assert steps_of(executions()[0])[0].status == "sent"


# --- the actions, in any rule --------------------------------------------------------------------

def test_add_to_cadence_starts_a_journey_from_any_automation_rule(tenant, account, contact):
    from automation.actions import ActionContext
    from crm.actions import AddToCadence

    action = AddToCadence()
    config = action.validate_config({"cadence": "winback", "context": {"offer": "spring"}})
    ctx = ActionContext(tenant=tenant, workflow=None, run=None, account=account, subject=account)
    result = action.run(config, ctx)
    execution = CRMPlaybookExecution.objects.get(pk=result["execution_id"])
    assert (execution.playbook.name, execution.contact, execution.source) == ("winback", contact, "automation")
    assert execution.context["offer"] == "spring" and "trigger" not in execution.context
    assert action.run(config, ctx)["already_active"] is True


@pytest.mark.parametrize("config, field", [
    ({}, "journey"), ({"journey": "no spaces!"}, "journey"), ({"journey": True}, "journey"),
    ({"journey": "winback", "context": [1]}, "context"), ({"journey": 3, "trigger": "sunrise"}, "trigger"),
    ({"journey": "winback", "delay": 5}, "delay"),
])
def test_it_validates_the_add_to_cadence_config_when_the_rule_is_saved(config, field):
    from automation.triggers import ConfigError
    from crm.actions import AddToCadence

    with pytest.raises(ConfigError) as info:
        AddToCadence().validate_config(config)
    assert info.value.field == field


def test_it_validates_the_convert_cadence_config_and_accepts_what_a_journey_rule_needs():
    from automation.triggers import ConfigError
    from crm.actions import AddToCadence, ConvertCadence

    assert AddToCadence().validate_config({"journey": 12, "trigger": "churn_risk"}) == {
        "journey": 12, "trigger": "churn_risk"}
    assert ConvertCadence().validate_config({"playbook": "payment_failed_rescue", "trigger": "payment_succeeded"}) == {
        "journey": "payment_failed_rescue", "trigger": "payment_succeeded"}
    for config, field in (({"journey": 12, "trigger": "Payment Succeeded"}, "trigger"), ({"trigger": "x_y"}, "journey")):
        with pytest.raises(ConfigError) as info:
            ConvertCadence().validate_config(config)
        assert info.value.field == field
