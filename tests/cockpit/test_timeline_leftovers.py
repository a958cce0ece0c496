"""The customer 360's timeline tells the whole story (issue 14, §2 and §5): a journey its rule did not start is a
journey entry with the reason, a failed journey step says why, goals are a kind of their own, and a task names
the rule or play that made it, linked, in a bounded number of queries."""

import datetime
import html as markup
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Goal
from crm.models import CRMPlaybook, CRMPlaybookExecution, CRMStepExecution
from crm.services import crm_journeys_ensure, start_journey
from tests.factories import AccountFactory, ContactFactory, GoalFactory, TaskFactory, WorkflowFactory, staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def csm(client, tenant):
    client.force_login(staff(tenant))  # a tenant admin: the CRM journeys' entries are for admins and practitioners
    return client


def timeline(client, account, *kinds) -> str:
    """The timeline's entries as text (tags dropped), newest first."""
    response = client.get(reverse("admin:accounts_account_360", args=[account.pk]), {"kind": list(kinds)})
    assert response.status_code == 200
    html = response.content.decode()
    entries = re.findall(r'<li class="cs-entry[^"]*">(.*?)</li>', html, re.S)
    return "\n".join(" ".join(markup.unescape(re.sub(r"<[^>]+>", " ", e)).split()) for e in entries)


def test_a_journey_its_rule_did_not_start_is_on_the_timeline_with_the_reason(csm, tenant, django_capture_on_commit_callbacks):
    crm_journeys_ensure(tenant)
    winback = CRMPlaybook.objects.for_tenant(tenant).get(name="winback")
    account = AccountFactory(tenant=tenant, name="Globex")  # no contact: nobody to start the journey for
    with django_capture_on_commit_callbacks(execute=True):
        account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})

    shown = timeline(csm, account, "journey")

    assert f"Journey “{winback}” not started: no contact to reach" in shown
    assert "account 'Globex' has no contacts" in shown and "Not started" in shown


def test_a_refused_start_says_which_rule_of_the_journey_refused_it(csm, tenant, django_capture_on_commit_callbacks):
    crm_journeys_ensure(tenant)
    winback = CRMPlaybook.objects.for_tenant(tenant).get(name="winback")
    CRMPlaybook.objects.filter(pk=winback.pk).update(reentry_cooldown_hours=72)
    account = AccountFactory(tenant=tenant, name="Initech")
    contact = ContactFactory(account=account, name="Peter")
    execution = start_journey(contact, winback, {})
    execution.status = CRMPlaybookExecution.Status.CANCELLED
    execution.save()
    with django_capture_on_commit_callbacks(execute=True):
        account_services.account_save(account=account, changes={"status": Account.Status.CHURNED})

    shown = timeline(csm, account, "journey")

    assert f"Journey “{winback}” not started: the re-entry cooldown is in force" in shown
    assert f"Journey “{winback}” started for Peter" in shown


def test_a_failed_journey_step_shows_its_reason(csm, tenant):
    crm_journeys_ensure(tenant)
    journey = CRMPlaybook.objects.for_tenant(tenant).get(name="winback")
    account = AccountFactory(tenant=tenant)
    execution = start_journey(ContactFactory(account=account), journey, {})
    step = CRMStepExecution.objects.filter(execution=execution).first()
    step.status, step.error = CRMStepExecution.Status.FAILED, "template crm/winback.html: no such variable"
    step.save()

    shown = timeline(csm, account, "journey_step")

    assert "Failed" in shown and "template crm/winback.html: no such variable" in shown


def test_goals_are_a_timeline_kind_with_their_outcome(csm, tenant):
    account = AccountFactory(tenant=tenant)
    now = timezone.now()
    GoalFactory(account=account, title="Roll out to EU", status=Goal.Status.ACHIEVED, achieved_at=now,
                target_date=now.date())
    GoalFactory(account=account, title="Train 50 users", status=Goal.Status.MISSED)
    GoalFactory(account=account, title="Adopt reporting", target_date=now.date() + datetime.timedelta(days=30))
    TaskFactory(account=account, title="Not a goal")

    goals = timeline(csm, account, "goal")

    assert "Goal achieved: Roll out to EU" in goals and "Goal missed: Train 50 users" in goals
    assert "Goal set: Adopt reporting" in goals and "Not a goal" not in goals
    page = csm.get(reverse("admin:accounts_account_360", args=[account.pk])).content.decode()
    assert re.search(r'<input type="checkbox" name="kind" value="goal"[^>]*> Goals', page)  # the filter offers it


def test_a_task_names_the_rule_that_made_it_with_a_link_in_one_query_for_all(csm, tenant):
    account = AccountFactory(tenant=tenant)
    url = reverse("admin:accounts_account_360", args=[account.pk])
    first = WorkflowFactory(tenant=tenant, name="At risk follow-up")
    TaskFactory(account=account, title="Call them", source=f"workflow:{first.pk}")
    csm.get(url)
    with CaptureQueriesContext(connection) as one_rule:
        html = csm.get(url).content.decode()
    assert f'<a href="{reverse("admin:automation_workflow_change", args=[first.pk])}">Made by Rule “At risk follow-up”</a>' in html
    assert "workflow:" not in html  # never the raw source

    for n in range(3):
        TaskFactory(account=account, title=f"Task {n}", source=f"workflow:{WorkflowFactory(tenant=tenant, name=f'Rule {n}').pk}")
    with CaptureQueriesContext(connection) as four_rules:
        html = csm.get(url).content.decode()

    assert "Made by Rule “Rule 2”" in html
    assert len(four_rules) == len(one_rule)
