"""The task admin says what made a task, by name and with a link: the rule that fired, the SuccessPlay or CRM
journey that keeps the rule, or whose message died (``accounts.task_sources``)."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, Role, Task
from automation.models import Workflow
from crm.models import CRMPlaybook
from playbooks import services as play_services
from playbooks.models import Playbook
from tests.factories import AccountFactory, TaskFactory, WorkflowFactory, staff

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:accounts_task_changelist")


def made_by(client, task) -> str:
    """The "Made by" cell of ``task`` on the task list."""
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    [row] = [row for obj, row in zip(response.context["cl"].result_list, response.context["results"])
             if obj.pk == task.pk]
    [cell] = [str(cell) for cell in row if 'class="field-made_by' in str(cell)]
    return re.sub(r"^<td[^>]*>|</td>$", "", cell)


def link(name: str, pk) -> str:
    return reverse(name, args=[pk])


def test_it_links_a_task_a_rule_made_to_the_rule(client, tenant, django_capture_on_commit_callbacks):
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    rule = WorkflowFactory(tenant=tenant, name="At risk follow-up", trigger_type="field_changed",
                           model_type="account", trigger_config={"field": "status", "to": "at_risk"},
                           actions=[{"type": "create_task", "config": {"title": "Call {{ account.name }}"}}])
    with django_capture_on_commit_callbacks(execute=True):  # the engine runs the rule, as after a real commit
        account.status = Account.Status.AT_RISK
        account.save()
    task = Task.objects.get(title="Call TechStart Solutions")
    client.force_login(staff(tenant, Role.PRACTITIONER))
    cell = made_by(client, task)
    assert f'href="{link("admin:automation_workflow_change", rule.pk)}"' in cell
    assert "Rule “At risk follow-up”" in cell


def test_it_links_a_task_a_successplays_rule_made_to_the_play(client, tenant):
    play = Playbook.objects.for_tenant(tenant).order_by("name").first()
    rule = play_services.playbook_save(playbook=play, data={}).workflow  # the play compiles its rule
    task = TaskFactory(tenant=tenant, account=AccountFactory(tenant=tenant), source=f"workflow:{rule.pk}")
    client.force_login(staff(tenant, Role.PRACTITIONER))
    cell = made_by(client, task)
    assert f'href="{link("admin:playbooks_playbook_change", play.pk)}"' in cell
    assert f"SuccessPlay “{play.name}”" in cell


def test_it_links_a_dead_delivery_task_to_the_play_or_journey_whose_message_died(client, tenant):
    play = Playbook.objects.for_tenant(tenant).order_by("name").first()
    journey = CRMPlaybook.objects.create(tenant=tenant, name="winback-test", title="Win back")
    today = timezone.localdate().isoformat()
    account = AccountFactory(tenant=tenant)
    play_task = TaskFactory(tenant=tenant, account=account, source=f"dead-delivery:successplay:{play.pk}:{today}")
    journey_task = TaskFactory(tenant=tenant, account=account, source=f"dead-delivery:journey:{journey.pk}:{today}")
    client.force_login(staff(tenant, Role.PRACTITIONER))
    assert f'href="{link("admin:playbooks_playbook_change", play.pk)}"' in made_by(client, play_task)
    cell = made_by(client, journey_task)
    assert f'href="{link("admin:crm_crmplaybook_change", journey.pk)}"' in cell and "CRM journey “Win back”" in cell


def test_it_shows_other_sources_as_recorded_and_nothing_for_a_task_made_by_hand(client, tenant):
    account = AccountFactory(tenant=tenant)
    by_hand = TaskFactory(tenant=tenant, account=account, source="")
    endpoint = TaskFactory(tenant=tenant, account=account, source="delivery: webhook endpoint health")
    rule = WorkflowFactory(tenant=tenant, name="Gone soon")
    deleted_rule = TaskFactory(tenant=tenant, account=account, source=f"workflow:{rule.pk}")
    Workflow.objects.filter(pk=rule.pk).delete()
    client.force_login(staff(tenant, Role.PRACTITIONER))
    assert made_by(client, by_hand) == "-"
    assert made_by(client, endpoint) == "delivery: webhook endpoint health"
    assert made_by(client, deleted_rule) == f"workflow:{rule.pk}"


def test_it_does_not_name_another_tenants_rule(client, tenant, other_tenant):
    theirs = WorkflowFactory(tenant=other_tenant, name="Their secret rule")
    task = TaskFactory(tenant=tenant, account=AccountFactory(tenant=tenant), source=f"workflow:{theirs.pk}")
    client.force_login(staff(tenant, Role.PRACTITIONER))
    assert "Their secret rule" not in made_by(client, task)


def test_it_shows_made_by_on_the_task_page_instead_of_an_editable_source(client, tenant):
    rule = WorkflowFactory(tenant=tenant, name="Renewal prep")
    task = TaskFactory(tenant=tenant, account=AccountFactory(tenant=tenant), source=f"workflow:{rule.pk}")
    client.force_login(staff(tenant, Role.PRACTITIONER))
    page = client.get(reverse("admin:accounts_task_change", args=[task.pk]))
    html = page.content.decode()
    assert "Made by" in html and "Rule “Renewal prep”" in html
    assert 'name="source"' not in html
    assert "Made by" not in client.get(reverse("admin:accounts_task_add")).content.decode()


def test_it_names_the_rule_of_a_pages_tasks_once(client, tenant):
    rule = WorkflowFactory(tenant=tenant, name="Renewal prep")
    account = AccountFactory(tenant=tenant)
    client.force_login(staff(tenant, Role.PRACTITIONER))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(CHANGELIST).status_code == 200
        return len(captured)

    TaskFactory(tenant=tenant, account=account, source=f"workflow:{rule.pk}")
    one = queries()
    for _ in range(5):
        TaskFactory(tenant=tenant, account=account, source=f"workflow:{rule.pk}")
    assert queries() == one
