"""Seed 003's ``add_to_cadence`` options: ``start_step`` (the journey starts at that step) and ``delay_hours``
(the first step waits that long); a journey or step the tenant does not have is refused when the rule is saved."""

import datetime

import pytest
from django.utils import timezone

from crm.models import CRMPlaybook, CRMPlaybookExecution, CRMStep

pytestmark = pytest.mark.django_db

TRIGGERS = "/api/event-triggers"
WORKFLOWS = "/api/admin/automation"


def cadence_rule(api, **options):
    return api.post(TRIGGERS, {"name": "Churn cadence", "trigger_type": "manual", "is_active": True,
                               "action_configuration": {"actions": [{"type": "add_to_cadence", **options}]}},
                    format="json")


def test_it_starts_the_journey_at_the_step_asked_for_after_the_delay_asked_for(api, tenant, contact):
    rule = cadence_rule(api, cadence_id="churn_risk", start_step=2, delay_hours=24)
    assert rule.status_code == 201, rule.json()
    before = timezone.now()

    run = api.post(f"{WORKFLOWS}/execute", {"workflow_id": rule.json()["id"], "account_id": str(contact.account_id)},
                   format="json").json()

    assert run["status"] == "success", run["steps"]
    execution = CRMPlaybookExecution.objects.get()
    second = CRMStep.objects.filter(playbook=execution.playbook).order_by("order")[1]
    assert (execution.contact, execution.current_step) == (contact, second.order)
    assert second.delay_hours != 24  # the rule's delay, not the step's own
    waited = execution.next_step_at - before
    assert datetime.timedelta(hours=24) <= waited < datetime.timedelta(hours=24, minutes=1)


def test_it_starts_at_the_first_step_with_its_own_delay_by_default(api, tenant, contact):
    rule = cadence_rule(api, cadence_id="churn_risk")
    api.post(f"{WORKFLOWS}/execute", {"workflow_id": rule.json()["id"], "account_id": str(contact.account_id)},
             format="json")
    execution = CRMPlaybookExecution.objects.get()
    first = CRMStep.objects.filter(playbook=execution.playbook).order_by("order").first()
    assert execution.current_step == first.order
    assert execution.next_step_at - execution.started_at == datetime.timedelta(hours=float(first.delay_hours))


@pytest.mark.parametrize("options, key, says", [
    ({"cadence_id": "churn_risk", "start_step": 9}, "start_step", "has 2 step(s)"),
    ({"cadence_id": "churn_risk", "start_step": 0}, "start_step", "1 or more"),
    ({"cadence_id": "churn_risk", "delay_hours": -1}, "delay_hours", "from 0"),
    ({"cadence_id": "churn_risk", "delay_hours": "tomorrow"}, "delay_hours", "from 0"),
    ({"cadence_id": "no_such_journey"}, "cadence_id", "does not exist in this tenant"),
])
def test_it_refuses_a_cadence_option_it_cannot_honour(api, tenant, options, key, says):
    response = cadence_rule(api, **options)
    assert response.status_code == 400
    assert list(response.json()) == [f"action_configuration.actions[0].{key}"], response.json()
    assert says in response.json()[f"action_configuration.actions[0].{key}"][0]


def test_it_checks_the_step_against_the_tenants_own_journey(api, tenant):
    journey = CRMPlaybook.objects.for_tenant(tenant).get(name="churn_risk")
    CRMStep.objects.for_tenant(tenant).filter(playbook=journey).order_by("order").last().delete()
    assert cadence_rule(api, cadence_id=journey.pk, start_step=2).status_code == 400
    assert cadence_rule(api, cadence_id=journey.pk, start_step=1).status_code == 201
