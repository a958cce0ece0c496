"""Row-level security binds the evaluators' raw SQL too: evaluated in one tenant's context, another
tenant's rows do not exist, whatever the code asks for."""

import pytest
from django.db import connection
from django.utils import timezone

from csplatform.tenancy import tenant_context
from playbooks import services
from playbooks.evaluators import EVALUATORS
from tests.factories import AccountFactory, SurveyResponseFactory, UsageMetricFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is a PostgreSQL feature"),
]


@pytest.mark.parametrize("playbook_type", ["voc", "activation"])
def test_it_finds_nothing_of_another_tenant_even_when_asked_for_it(tenant, other_tenant, playbook_type):
    theirs = AccountFactory(tenant=other_tenant, name="Theirs")
    SurveyResponseFactory(account=theirs, score=0)
    # The date explicitly: the factory's default (today minus its sequence number) depends on how many usage
    # rows the process made before, and is outside the evaluator's 30-day window after 30 of them (-n 2).
    UsageMetricFactory(account=theirs, date=timezone.localdate(), active_users=1, features_used=["x"])
    evaluator = EVALUATORS[playbook_type]

    with tenant_context(other_tenant):
        assert evaluator.evaluate(other_tenant, evaluator.defaults())["affected_accounts"]
    with tenant_context(tenant):  # the wrong context: the database hides the other tenant's rows
        result = evaluator.evaluate(other_tenant, evaluator.defaults())
    assert result["affected_accounts"] == []
    assert result["details"]["summary"]["accounts_evaluated"] == 0


def test_it_creates_default_triggers_in_the_tenants_own_context(tenant):
    with tenant_context(tenant):
        triggers = services.playbook_triggers_ensure(tenant)
    assert len(triggers) == 5
