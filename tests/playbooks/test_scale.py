"""Evaluate-all at scale: the signal families are read once per run, executions start in bulk, and the results
are the ones each trigger's /test gives."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from csplatform.tenancy import tenant_context
from playbooks import services
from playbooks.models import PlaybookExecution, PlaybookTrigger
from tests.factories import AccountFactory, SurveyResponseFactory, UsageMetricFactory

from .test_queries import accounts_with_every_signal

pytestmark = pytest.mark.django_db


def test_it_reads_usage_and_surveys_once_for_every_trigger_that_needs_them(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("the embedded SQLite mode shares no family table: each statement reads the base tables")
    accounts_with_every_signal(tenant, 6)
    services.playbook_triggers_ensure(tenant)
    PlaybookTrigger.objects.for_tenant(tenant).update(auto_trigger_enabled=True)

    with tenant_context(tenant), CaptureQueriesContext(connection) as captured:
        outcome = services.playbook_triggers_evaluate_all(tenant=tenant)

    reads = [q["sql"] for q in captured if 'FROM "accounts_usagemetric"' in q["sql"]]
    surveys = [q["sql"] for q in captured if 'FROM "accounts_surveyresponse"' in q["sql"] and "COUNT" in q["sql"]]
    assert len(reads) == 1  # activation, renewal and expansion share the usage family
    assert len(surveys) == 2  # the survey family (voc, expansion) and voc's churn mentions in comments
    assert {r["playbook_type"] for r in outcome["results"] if r["triggered"]} >= {"voc", "activation", "renewal"}


def test_evaluate_all_finds_what_each_trigger_test_finds(tenant):
    accounts_with_every_signal(tenant, 6)
    services.playbook_triggers_ensure(tenant)
    PlaybookTrigger.objects.for_tenant(tenant).update(auto_trigger_enabled=True)

    with tenant_context(tenant):
        outcome = services.playbook_triggers_evaluate_all(tenant=tenant)
        for result in outcome["results"]:
            alone = services.playbook_trigger_test(tenant=tenant, playbook_type=result["playbook_type"])
            assert list(result["affected_accounts"]) == list(alone["affected_accounts"]), result["playbook_type"]
            assert result["executions_created"] == len(alone["affected_accounts"])

    execution = PlaybookExecution.objects.filter(playbook_type="voc").first()
    assert execution.reasons and execution.reason == "; ".join(execution.reasons)
    assert execution.metrics and execution.status == "triggered" and execution.started_by is None


def test_an_execution_names_its_play_and_the_accounts_name(tenant):
    account = AccountFactory(tenant=tenant, name="Globex", licensed_seats=100)
    today = timezone.localdate()
    for day in range(10):
        UsageMetricFactory(account=account, date=today - datetime.timedelta(days=day), active_users=1)
    SurveyResponseFactory(account=account, score=2)
    services.playbook_triggers_ensure(tenant)
    PlaybookTrigger.objects.for_tenant(tenant).filter(playbook_type="activation").update(auto_trigger_enabled=True)

    with tenant_context(tenant):
        services.playbook_triggers_evaluate_all(tenant=tenant)

    assert str(PlaybookExecution.objects.get()) == "Activation Blitz for Globex (Triggered)"
