"""Honest outcomes: a run, its steps, a SuccessPlay execution and the CSM's tasks say what really happened
to the messages a run wrote (delivered, retrying, dead), not "queued"."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, Task
from crm.models import CRMStepExecution
from crm.scheduler import execute_pending_steps
from crm.services import start_journey
from delivery import services as delivery
from delivery.models import Outbox
from playbooks import services as playbooks
from playbooks.defaults import HEALTH_ALERT
from playbooks.models import Playbook
from tests.crm.conftest import T0
from tests.factories import AccountFactory, ContactFactory, MembershipFactory, WorkflowFactory, staff

pytestmark = pytest.mark.django_db

RUNS = "/api/admin/automation/runs"
EXECUTIONS = "/api/playbooks/executions"


@pytest.fixture
def owner(tenant):
    return MembershipFactory(tenant=tenant, role=Role.PRACTITIONER, user__email="csm@vendor.test").user


@pytest.fixture
def account(tenant, owner):
    return AccountFactory(tenant=tenant, name="TechStart Solutions", owner=owner)


def webhook_rule(tenant, url: str, **config):
    return WorkflowFactory(tenant=tenant, name="Tell n8n", actions=[
        {"type": "create_note", "config": {"body": "noted"}},
        {"type": "webhook", "config": {"url": url, **config}}])


def execute(api, rule, account) -> dict:
    response = api.post("/api/admin/automation/execute", {"workflow_id": rule.pk, "account_id": str(account.pk)})
    assert response.status_code == 201, response.json()
    return response.json()


def shown_run(api, run_id) -> dict:
    [run] = [r for r in api.get(RUNS).json()["runs"] if r["id"] == run_id]
    return run


def later(minutes: int) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(minutes=minutes)


def dead_delivery_tasks(tenant):
    return Task.objects.for_tenant(tenant).filter(source__startswith="dead-delivery:")


# --- a rule's run -------------------------------------------------------------------------------------

def test_a_webhook_step_shows_queued_then_delivered(api, tenant, account, receiver):
    run = execute(api, webhook_rule(tenant, receiver.url), account)
    note, hook = run["steps"]
    assert note["delivery"] is None  # wrote no message
    assert hook["delivery"]["status"] == "queued" and run["delivery"]["queued"] == 1

    delivery.deliver()

    run = shown_run(api, run["id"])
    assert run["status"] == "success"
    assert run["delivery"] == {"queued": 0, "retrying": 0, "delivered": 1, "dead": 0}
    hook = run["steps"][1]["delivery"]
    assert (hook["status"], hook["error"], hook["attempts"]) == ("delivered", "", 1) and hook["delivered_at"]


def test_a_webhook_that_failed_once_shows_retrying_with_the_last_error(api, tenant, account, receiver):
    run = execute(api, webhook_rule(tenant, receiver.url), account)
    receiver.respond(500)

    delivery.deliver()

    run = shown_run(api, run["id"])
    assert run["status"] == "success" and run["delivery"]["retrying"] == 1
    hook = run["steps"][1]["delivery"]
    assert (hook["status"], hook["error"], hook["attempts"], hook["last_status_code"]) == (
        "retrying", "HTTP 500", 1, 500)
    assert hook["next_attempt_at"]


def test_a_webhook_that_dies_fails_the_runs_delivery_until_a_requeued_message_gets_through(
        api, tenant, account, receiver):
    run = execute(api, webhook_rule(tenant, receiver.url, retry_count=1), account)
    receiver.respond(500, 503)
    delivery.deliver()
    delivery.deliver(now=later(60))  # the last of its two attempts

    shown = shown_run(api, run["id"])
    assert shown["status"] == "delivery_failed" and shown["delivery"]["dead"] == 1
    assert shown["steps"][1]["status"] == "success"  # the action did its part: it handed the message on
    assert (shown["steps"][1]["delivery"]["status"], shown["steps"][1]["delivery"]["error"]) == (
        "dead", "gave up after 2 attempts: HTTP 503")
    assert not dead_delivery_tasks(tenant).exists()  # a plain rule's message: the run says it, no task

    message = Outbox.objects.for_tenant(tenant).get(run_id=run["id"])
    assert api.post(f"/api/outbox/{message.pk}/requeue").status_code == 200
    assert shown_run(api, run["id"])["steps"][1]["delivery"]["status"] == "queued"
    delivery.deliver()

    shown = shown_run(api, run["id"])
    assert shown["status"] == "success" and shown["steps"][1]["delivery"]["status"] == "delivered"


def test_the_runs_page_reads_the_delivery_of_all_its_runs_with_one_query(api, tenant, account, receiver):
    rule = webhook_rule(tenant, receiver.url)

    def queries_for_the_runs_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(RUNS).status_code == 200
        return len(queries)

    execute(api, rule, account)
    one = queries_for_the_runs_page()
    for _ in range(3):
        execute(api, rule, account)
    receiver.respond(404)
    delivery.deliver()  # one dead, three delivered
    assert queries_for_the_runs_page() == one
    assert [r["status"] for r in api.get(RUNS).json()["runs"]].count("delivery_failed") == 1
    by_status = {status: len(api.get(RUNS, {"status": status}).json()["runs"])
                 for status in ("delivery_failed", "success", "completed")}
    assert by_status == {"delivery_failed": 1, "success": 3, "completed": 3}


def test_the_admin_shows_the_delivery_failure_on_the_run_list_and_page(api, client, tenant, account, receiver):
    run = execute(api, webhook_rule(tenant, receiver.url), account)
    receiver.respond(404)
    delivery.deliver()
    client.force_login(staff(tenant))

    listing = client.get(reverse("admin:automation_run_changelist"), {"delivery": "failed"})
    assert listing.status_code == 200 and f"#{run['id']}" in listing.content.decode()
    assert "Delivery failed" in listing.content.decode()
    page = client.get(reverse("admin:automation_run_change", args=[run["id"]])).content.decode()
    assert "Delivery failed (1 of 1 message dead)" in page and "dead: HTTP 404" in page


# --- a SuccessPlay ----------------------------------------------------------------------------------

def test_a_successplay_whose_webhook_dies_shows_delivery_failed_and_tells_the_owner_once_a_day(
        api, client, tenant, account, owner, receiver):
    play = Playbook.objects.for_tenant(tenant).get(name=HEALTH_ALERT)
    play = playbooks.playbook_save(playbook=play, data={"webhook_url": receiver.url + "/n8n", "actions": []})
    receiver.respond(410, 410)

    first = api.post(f"/api/playbooks/{play.pk}/trigger", {"account_id": str(account.pk), "reason": "QBR"})
    assert first.status_code == 201, first.json()
    assert (first.json()["status"], first.json()["delivery"]["queued"]) == ("completed", 1)
    delivery.deliver()

    execution = api.get(f"{EXECUTIONS}/{first.json()['id']}").json()
    assert execution["status"] == "delivery_failed" and execution["delivery"]["dead"] == 1
    assert [e["id"] for e in api.get(EXECUTIONS, {"status": "delivery_failed"}).json()["results"]] == [
        execution["id"]]
    assert api.get(RUNS).json()["runs"][0]["status"] == "delivery_failed"
    [task] = dead_delivery_tasks(tenant)
    assert (task.assignee, task.account, task.priority) == (owner, account, Task.Priority.HIGH)
    assert task.title == f"Delivery failed: SuccessPlay '{HEALTH_ALERT}' for TechStart Solutions"
    assert "HTTP 410" in task.description and "/requeue" in task.description

    second = api.post(f"/api/playbooks/{play.pk}/trigger",
                      {"account_id": str(account.pk), "force": True, "reason": "Escalation"})
    assert second.status_code == 201, second.json()
    delivery.deliver()
    assert api.get(f"{EXECUTIONS}/{second.json()['id']}").json()["status"] == "delivery_failed"
    assert dead_delivery_tasks(tenant).count() == 1  # the same play and account the same day: one task
    client.force_login(staff(tenant))
    listing = client.get(reverse("admin:playbooks_playbookexecution_changelist")).content.decode()
    assert listing.count("Delivery failed") == 2

    for message in Outbox.objects.for_tenant(tenant).filter(status=Outbox.Status.DEAD):
        assert api.post(f"/api/outbox/{message.pk}/requeue").status_code == 200
    delivery.deliver()
    assert api.get(f"{EXECUTIONS}/{execution['id']}").json()["status"] == "completed"
    assert not api.get(EXECUTIONS, {"status": "delivery_failed"}).json()["results"]


def test_without_an_owner_the_tenant_admins_are_told(api, tenant, receiver):
    orphan = AccountFactory(tenant=tenant, name="Nobody's", owner=None)
    play = playbooks.playbook_save(playbook=Playbook.objects.for_tenant(tenant).get(name=HEALTH_ALERT),
                                   data={"webhook_url": receiver.url, "actions": []})
    receiver.respond(404)
    assert api.post(f"/api/playbooks/{play.pk}/trigger", {"account_id": str(orphan.pk)}).status_code == 201
    delivery.deliver()
    [task] = dead_delivery_tasks(tenant)
    assert task.assignee == api.user and task.account == orphan


# --- a CRM journey --------------------------------------------------------------------------------

def test_two_dead_messages_of_one_journey_for_one_account_make_one_task_for_the_owner(tenant, account, owner):
    contacts = [ContactFactory(account=account, name=name, email=f"{name.lower()}@techstart.test", is_primary=i == 0)
                for i, name in enumerate(("Ada", "Grace"))]
    executions = [start_journey(contact, "payment_failed_rescue", {"amount": "49.00"}, now=T0)
                  for contact in contacts]
    assert execute_pending_steps(now=T0)["sent"] == 2
    for contact in contacts:
        contact.email_opt_out = True  # checked again when the email is sent: a permanent failure
        contact.save()

    delivery.deliver()

    steps = CRMStepExecution.objects.for_tenant(tenant).filter(execution__in=executions, step_order=0)
    assert sorted(steps.values_list("status", flat=True)) == ["failed", "failed"]
    [task] = dead_delivery_tasks(tenant)
    assert (task.assignee, task.account) == (owner, account)
    assert task.title == "Delivery failed: journey 'Payment failed rescue' for TechStart Solutions"
    assert "opted out" in task.description
