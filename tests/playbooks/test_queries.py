"""Set-based evaluation: the number of queries does not grow with the number of accounts."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from csplatform.tenancy import tenant_context
from playbooks import services
from playbooks.evaluators import EVALUATORS
from tests.factories import (
    AccountFactory, NoteFactory, SupportTicketFactory, SurveyResponseFactory, UsageMetricFactory,
)

from .conftest import record_score

pytestmark = pytest.mark.django_db


def accounts_with_every_signal(tenant, count):
    today = timezone.localdate()
    for i in range(count):
        account = AccountFactory(tenant=tenant, licensed_seats=10,
                                 renewal_date=today + datetime.timedelta(days=20))
        record_score(account, 80, days_ago=40)
        star = i % 3 == 0  # a healthy, busy promoter (expansion); the others slip (every other play)
        record_score(account, 85 if star else 30 + i % 45)
        SurveyResponseFactory(account=account, score=10 if star else i % 7, comment="" if star else "may cancel")
        SurveyResponseFactory(account=account, kind="csat", score=1 + i % 5)
        NoteFactory(account=account, body="talks about churn")
        SupportTicketFactory(account=account, priority="urgent")
        for day in range(0, 30, 7):
            UsageMetricFactory(account=account, date=today - datetime.timedelta(days=day),
                               active_users=9 if star else i % 5,
                               features_used=["a", "b"][: 1 + i % 2])


def queries(tenant, playbook_type):
    evaluator = EVALUATORS[playbook_type]
    with tenant_context(tenant), CaptureQueriesContext(connection) as captured:
        result = evaluator.evaluate(tenant, evaluator.defaults())
    return len(captured), len(result["affected_accounts"])


@pytest.mark.parametrize("playbook_type", list(EVALUATORS))
def test_it_evaluates_with_the_same_number_of_queries_for_3_or_30_accounts(tenant, other_tenant, playbook_type):
    accounts_with_every_signal(tenant, 3)
    accounts_with_every_signal(other_tenant, 30)

    few, few_affected = queries(tenant, playbook_type)
    many, many_affected = queries(other_tenant, playbook_type)

    assert many_affected > few_affected > 0, (few_affected, many_affected)
    assert few == many, (few, many)
    assert many <= 8  # the statement, one or two counts, on PostgreSQL a savepoint and its SET LOCALs


def test_it_evaluates_all_with_the_same_number_of_queries_for_3_or_30_accounts(tenant, other_tenant):
    counts = []
    for target, size in ((tenant, 3), (other_tenant, 30)):
        accounts_with_every_signal(target, size)
        for playbook_type in EVALUATORS:
            services.playbook_trigger_save(tenant=target, playbook_type=playbook_type,
                                           changes={"auto_trigger_enabled": True})
        with tenant_context(target), CaptureQueriesContext(connection) as captured:
            outcome = services.playbook_triggers_evaluate_all(tenant=target)
        assert outcome["total_triggered"] == 5
        counts.append(len(captured))
    assert counts[0] == counts[1], counts
