"""What starts journeys: accounts' domain signals, payment events, the daily scan and automation rules."""

import datetime

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Goal
from crm import triggers
from crm.models import CRMPlaybook, CRMPlaybookExecution, CRMSettings
from crm.scheduler import execute_pending_steps
from crm.services import crm_settings_for
from tests.factories import AccountFactory, ContactFactory, UsageMetricFactory, health_score

from .conftest import T0, hours, reload, steps_of

pytestmark = pytest.mark.django_db


def executions(name=None):
    qs = CRMPlaybookExecution.objects.all()
    return list(qs.filter(playbook__name=name) if name else qs)


def test_it_starts_winback_24_hours_after_a_cancellation_for_the_primary_contact(tenant, account, contact):
    before = timezone.now()
    account_services.account_save(account=account, changes={"status": Account.Status.CANCELLED})
    [execution] = executions("winback")
    assert execution.contact == contact and execution.context["to_status"] == "cancelled"
    assert before + hours(24) <= execution.next_step_at <= timezone.now() + hours(24)
    assert execute_pending_steps(now=execution.next_step_at - hours(1)) == {"executions": 0, "errors": 0}
    assert execute_pending_steps(now=execution.next_step_at)["sent"] == 1
    # cancelled -> churned is not a second cancellation
    account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})
    assert len(executions("winback")) == 1


def test_it_uses_the_first_contact_when_there_is_no_primary_one(tenant, account):
    first = ContactFactory(account=account)
    ContactFactory(account=account)
    account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})
    assert executions("winback")[0].contact == first


def test_it_starts_nothing_for_an_account_without_contacts(tenant, account):
    account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})
    assert account.status == "churned" and not executions()


def test_it_keeps_the_account_change_when_a_journey_cannot_start(tenant, account, contact, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(triggers, "start_journey", broken)
    account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})
    assert Account.objects.get(pk=account.pk).status == "churned" and not executions()


def test_it_starts_churn_risk_when_the_risk_level_becomes_at_risk_or_critical(tenant, account, contact):
    health_score(account, usage_score=90, engagement_score=90, support_sentiment_score=90, adoption_score=90)
    assert not executions()
    health_score(account, usage_score=45, engagement_score=45, support_sentiment_score=45, adoption_score=45)
    [execution] = executions("churn_risk")
    assert execution.context["risk_level"] == "at_risk" and execution.context["previous_score"] == 90.0
    # at risk -> critical is not "becoming" risky again
    health_score(account, usage_score=10, engagement_score=10, support_sentiment_score=10, adoption_score=10)
    assert len(executions("churn_risk")) == 1


def test_it_starts_churn_risk_on_a_first_critical_score(tenant, account, contact):
    health_score(account, usage_score=10, engagement_score=10, support_sentiment_score=10, adoption_score=10)
    assert executions("churn_risk")[0].context["risk_level"] == "critical"


def test_it_ignores_a_backdated_risky_score(tenant, account, contact):
    health_score(account, usage_score=90, engagement_score=90, support_sentiment_score=90, adoption_score=90)
    account_services.health_score_record(account=account, components={"usage_score": 10},
                                         calculated_at=timezone.now() - datetime.timedelta(days=30))
    assert not executions()


def test_it_starts_milestone_congrats_when_a_goal_is_achieved(tenant, account, contact):
    goal = account_services.goal_save(goal=Goal(tenant=tenant, account=account, title="100 active users"))
    assert not executions()
    account_services.goal_save(goal=goal, changes={"status": Goal.Status.ACHIEVED})
    [execution] = executions("milestone_congrats")
    assert execution.context["goal_title"] == "100 active users"


def test_it_starts_the_rescue_on_payment_failed_and_says_why_not_twice(tenant, account, contact):
    first = triggers.payment_failed(account, amount="49", invoice_id="in_1", now=T0)
    assert len(first.started) == 1 and first.started[0].playbook.name == "payment_failed_rescue"
    second = triggers.payment_failed(account, amount="49", invoice_id="in_2", now=T0 + hours(1))
    assert second.started == [] and second.refused == {"payment_failed_rescue": "already_active"}


def test_it_holds_the_reentry_rule(tenant, account, contact):
    rescue = triggers.payment_failed(account, now=T0).started[0]
    for day in range(4):
        execute_pending_steps(now=T0 + hours(24 * day))
    assert reload(rescue).status == "completed"
    assert triggers.payment_failed(account, now=T0 + hours(100)).refused == {
        "payment_failed_rescue": "reentry_cooldown"}  # 168 h after the last start
    assert len(triggers.payment_failed(account, now=T0 + hours(169)).started) == 1
    CRMPlaybook.objects.filter(name="payment_failed_rescue").update(max_entries=2)
    execution_ids = [e.pk for e in executions("payment_failed_rescue")]
    CRMPlaybookExecution.objects.filter(pk__in=execution_ids).update(status="completed")
    assert triggers.payment_failed(account, now=T0 + hours(400)).refused == {"payment_failed_rescue": "max_entries"}


def test_it_starts_every_active_journey_listening_to_the_event_and_no_inactive_one(tenant, account, contact):
    CRMPlaybook.objects.filter(name="payment_failed_rescue").update(active=False)
    assert triggers.payment_failed(account, now=T0).started == []
    twin = CRMPlaybook.objects.create(tenant=tenant, name="rescue_b", trigger_event="payment_failed")
    twin.steps.create(tenant=tenant, order=0, channel="email", template="crm/rescue.html")
    assert [e.playbook.name for e in triggers.payment_failed(account, now=T0).started] == ["rescue_b"]


def test_it_finds_trials_ending_within_three_days(tenant, contact):
    today = timezone.localdate(T0)
    ending = contact.account
    ending.status, ending.renewal_date = Account.Status.TRIAL, today + datetime.timedelta(days=3)
    ending.save()
    later = AccountFactory(tenant=tenant, status=Account.Status.TRIAL, renewal_date=today + datetime.timedelta(days=4))
    paying = AccountFactory(tenant=tenant, status=Account.Status.ACTIVE, renewal_date=today + datetime.timedelta(days=2))
    for a in (later, paying):
        ContactFactory(account=a)
    counts = triggers.scan_tenant(tenant, now=T0)
    assert counts["trial_ending"] == 1
    [execution] = executions("trial_ending")
    assert execution.account == ending and execution.context["trial_ends_on"] == ending.renewal_date.isoformat()
    # a day later the other trial is 3 days from its end; the first one does not start again
    assert triggers.scan_tenant(tenant, now=T0 + hours(24))["trial_ending"] == 1
    assert sorted(e.account_id for e in executions("trial_ending")) == sorted([ending.pk, later.pk])
    CRMPlaybookExecution.objects.update(status="completed")
    assert triggers.scan_tenant(tenant, now=T0 + hours(48))["trial_ending"] == 0  # max_entries = 1


def test_it_finds_accounts_without_a_login_for_14_days_set_based(tenant, contact, django_assert_max_num_queries):
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
    for _ in range(5):
        extra = AccountFactory(tenant=tenant)
        UsageMetricFactory(account=extra, date=today - datetime.timedelta(days=15), logins=1)
    with django_assert_max_num_queries(2):
        assert len(list(triggers.inactive_accounts(tenant, today))) == 6
    counts = triggers.scan_tenant(tenant, now=T0)
    assert counts["inactivity"] == 1  # the extra accounts have no contacts
    [execution] = executions("inactivity_nudge")
    assert execution.account == idle and execution.context["last_login"] == str(today - datetime.timedelta(days=20))
    assert triggers.scan_tenant(tenant, now=T0 + hours(24))["inactivity"] == 0


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


def test_it_starts_and_converts_from_the_payment_command(tenant, account, contact, capsys):
    call_command("crm_payment", "failed", "--tenant", tenant.slug, "--account", str(account.pk), "--amount", "20")
    [execution] = executions("payment_failed_rescue")
    call_command("crm_payment", "succeeded", "--tenant", tenant.slug, "--account", str(account.pk), "--amount", "20")
    assert reload(execution).status == "converted"


def test_it_runs_due_steps_from_the_command(tenant, account, contact, capsys):
    triggers.payment_failed(account)
    call_command("execute_pending_steps")
    assert '"sent": 1' in capsys.readouterr().out
    assert steps_of(executions()[0])[0].status == "sent"


# --- the automation engine's add_to_cadence action --------------------------------------------

def test_it_starts_a_journey_from_an_automation_rule_action(tenant, account, contact):
    from automation.actions import ActionContext
    from crm.actions import AddToCadence

    action = AddToCadence()
    config = action.validate_config({"cadence": "winback", "context": {"offer": "spring"}})
    ctx = ActionContext(tenant=tenant, workflow=None, run=None, account=account, subject=account)
    result = action.run(config, ctx)
    execution = CRMPlaybookExecution.objects.get(pk=result["execution_id"])
    assert (execution.playbook.name, execution.contact, execution.source) == ("winback", contact, "automation")
    assert execution.context["offer"] == "spring"
    assert action.run(config, ctx)["already_active"] is True


@pytest.mark.parametrize("config, field", [({}, "journey"), ({"journey": "no spaces!"}, "journey"),
                                           ({"journey": "winback", "context": [1]}, "context")])
def test_it_validates_the_add_to_cadence_config_when_the_rule_is_saved(config, field):
    from automation.triggers import ConfigError
    from crm.actions import AddToCadence

    with pytest.raises(ConfigError) as info:
        AddToCadence().validate_config(config)
    assert info.value.field == field
