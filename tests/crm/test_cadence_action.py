"""``add_to_cadence`` from an automation rule starts a CRM journey for the account's contact."""

import pytest

from accounts import services as account_services
from automation.models import Run, Workflow
from automation.services import workflow_save
from crm.models import CRMPlaybookExecution
from tests.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db


def test_it_starts_the_churn_risk_journey_when_a_rule_adds_the_account_to_a_cadence(
        tenant, django_capture_on_commit_callbacks):
    account = AccountFactory(tenant=tenant)
    contact = ContactFactory(account=account, tenant=tenant, is_primary=True)
    workflow_save(rule=Workflow(tenant=tenant), data={
        "name": "At risk -> churn journey", "status": "active", "trigger_type": "status_change",
        "trigger_config": {"to_status": "at_risk"},
        "actions": [{"type": "add_to_cadence", "config": {"journey": "churn_risk"}}]})
    with django_capture_on_commit_callbacks(execute=True):
        account_services.account_save(account=account, changes={"status": "at_risk"})
    run = Run.objects.get()
    assert run.status == "success", run.error
    execution = CRMPlaybookExecution.objects.get()
    assert (execution.contact, execution.playbook.name) == (contact, "churn_risk")
