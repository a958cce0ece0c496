"""/api/playbooks/executions: the plays started for accounts, per tenant, with filters; one open
execution per trigger and account, enforced by the database."""

import pytest
from django.db import IntegrityError, transaction

from accounts.models import Role
from playbooks import services
from playbooks.models import PlaybookExecution
from tests.factories import AccountFactory, SurveyResponseFactory

pytestmark = pytest.mark.django_db

URL = "/api/playbooks/executions"


def fired(tenant, *names):
    """Accounts with an NPS detractor, voc enabled and evaluated once: one execution each."""
    for name in names:
        SurveyResponseFactory(account=AccountFactory(tenant=tenant, name=name), score=1)
    services.playbook_trigger_save(tenant=tenant, playbook_type="voc", changes={"auto_trigger_enabled": True})
    services.playbook_triggers_evaluate_all(tenant=tenant)
    return {e.account.name: e for e in PlaybookExecution.objects.for_tenant(tenant).select_related("account")}


def test_it_lists_executions_with_their_reasons(tenant, client_for):
    fired(tenant, "Alpha", "Beta")

    response = client_for(tenant, Role.VIEWER).get(URL)

    assert response.status_code == 200
    rows = response.json()["results"]
    assert sorted(r["account_name"] for r in rows) == ["Alpha", "Beta"]
    row = rows[0]
    assert row["playbook_type"] == "voc" and row["status"] == "triggered" and row["source"] == "schedule"
    assert row["reasons"][0].startswith("NPS -100 is below 10") and row["metrics"]["nps"] == -100
    assert row["started_by"] is None and row["finished_at"] is None


def test_it_filters_executions(tenant, client_for):
    executions = fired(tenant, "Alpha", "Beta")
    client = client_for(tenant, Role.PRACTITIONER)
    client.patch(f"{URL}/{executions['Alpha'].pk}", {"status": "completed"}, format="json")

    def names(**params):
        return sorted(r["account_name"] for r in client.get(URL, params).json()["results"])

    assert names(status="completed") == ["Alpha"]
    assert names(open="true") == ["Beta"]
    assert names(open="false") == ["Alpha"]
    assert names(playbook_type="voc") == ["Alpha", "Beta"]
    assert names(playbook_type="sla") == []
    assert names(account=str(executions["Beta"].account_id)) == ["Beta"]
    assert names(search="alp") == ["Alpha"]
    assert names(started_after="2000-01-01T00:00:00Z") == ["Alpha", "Beta"]


def test_it_hides_other_tenants_executions(tenant, other_tenant, client_for):
    mine = fired(tenant, "Mine")
    theirs = fired(other_tenant, "Theirs")
    client = client_for(tenant)

    assert [r["account_name"] for r in client.get(URL).json()["results"]] == ["Mine"]
    assert client.get(f"{URL}/{theirs['Theirs'].pk}").status_code == 404
    assert client.patch(f"{URL}/{theirs['Theirs'].pk}", {"status": "cancelled"}, format="json").status_code == 404
    assert client.get(URL, {"account": str(theirs["Theirs"].account_id)}).status_code == 400
    assert client.get(f"{URL}/{mine['Mine'].pk}").status_code == 200


def test_it_finishes_an_execution_once(tenant, client_for):
    execution = fired(tenant, "Alpha")["Alpha"]
    client = client_for(tenant, Role.PRACTITIONER)

    response = client.patch(f"{URL}/{execution.pk}", {"status": "in_progress"}, format="json")
    assert response.status_code == 200 and response.json()["finished_at"] is None
    response = client.patch(f"{URL}/{execution.pk}", {"status": "failed", "outcome": "No answer"}, format="json")
    assert response.status_code == 200 and response.json()["finished_at"] and response.json()["outcome"] == "No answer"
    reopened = client.patch(f"{URL}/{execution.pk}", {"status": "triggered"}, format="json")
    assert reopened.status_code == 409 and "status" in reopened.json()  # the row's state refuses it
    assert client.patch(f"{URL}/{execution.pk}", {"outcome": "Retried by phone"}, format="json").status_code == 200


def test_it_keeps_the_execution_record_read_only(tenant, client_for):
    execution = fired(tenant, "Alpha")["Alpha"]
    client = client_for(tenant, Role.PRACTITIONER)

    client.patch(f"{URL}/{execution.pk}", {"reason": "made up", "playbook_type": "sla"}, format="json")

    execution.refresh_from_db()
    assert execution.playbook_type == "voc" and execution.reason.startswith("NPS")
    assert client.post(URL, {}, format="json").status_code == 405
    assert client.delete(f"{URL}/{execution.pk}").status_code == 405


@pytest.mark.parametrize("role, status", [(Role.PRACTITIONER, 200), (Role.CONTRIBUTOR, 403), (Role.VIEWER, 403)])
def test_it_lets_practitioners_move_executions_along(tenant, client_for, role, status):
    execution = fired(tenant, "Alpha")["Alpha"]

    response = client_for(tenant, role).patch(f"{URL}/{execution.pk}", {"status": "completed"}, format="json")
    assert response.status_code == status


def test_it_rejects_an_unknown_status(tenant, client_for):
    execution = fired(tenant, "Alpha")["Alpha"]

    response = client_for(tenant).patch(f"{URL}/{execution.pk}", {"status": "done"}, format="json")
    assert response.status_code == 400 and "status" in response.json()


def test_it_allows_one_open_execution_per_trigger_and_account_in_the_database(tenant):
    execution = fired(tenant, "Alpha")["Alpha"]

    with pytest.raises(IntegrityError), transaction.atomic():
        PlaybookExecution.objects.create(tenant=tenant, trigger=execution.trigger, playbook_type="voc",
                                         account=execution.account)
    execution.status = PlaybookExecution.Status.COMPLETED
    execution.save()
    PlaybookExecution.objects.create(tenant=tenant, trigger=execution.trigger, playbook_type="voc",
                                     account=execution.account)


@pytest.mark.parametrize("params", [{"playbook_type": "bogus"}, {"status": "done"}, {"open": "maybe"},
                                    {"started_after": "yesterday"}])
def test_it_rejects_bad_filters(tenant, client_for, params):
    response = client_for(tenant).get(URL, params)

    assert response.status_code == 400 and set(params) <= set(response.json())
