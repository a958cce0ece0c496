"""The playbooks admin's friendly editors: trigger settings and SuccessPlays as inputs (saving what the API saves,
errors next to their input), durations in words, and executions saying what became of their messages."""

import re

import pytest
from django.urls import reverse

from accounts.models import Role
from automation.models import Run
from delivery.models import Outbox
from playbooks import services
from playbooks.models import Playbook, PlaybookExecution
from tests.factories import AccountFactory, OutboxFactory, RunFactory, WorkflowFactory, staff
from tests.form_pages import form_inputs

pytestmark = pytest.mark.django_db


def change_url(obj):
    return reverse(f"admin:playbooks_{obj._meta.model_name}_change", args=[obj.pk])


def row(html: str, name: str) -> str:
    match = re.search(r'<div class="schema-row[^"]*" data-path="%s">(.*?)\n</div>' % re.escape(name), html, re.S)
    assert match, f"no input {name}"
    return match.group(1)


# --- trigger settings ------------------------------------------------------------------------------

def test_trigger_settings_are_inputs_and_posting_them_saves_what_the_api_saves(client, tenant, other_tenant,
                                                                               member_client):
    trigger = services.playbook_triggers_ensure(tenant)["voc"]
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    page = client.get(change_url(trigger)).content.decode()

    assert 'value="10"' in row(page, "trigger_config__nps_threshold")
    assert "churn, cancel, competitor" in row(page, "trigger_config__churn_keywords")
    window = row(page, "trigger_config__window_days")
    assert 'value="90"' in window and '<option value="days" selected>' in window and "= 90 days" in window

    data = form_inputs(page)
    data.update({"trigger_config__nps_threshold": "", "trigger_config__csat_threshold": "3.2",
                 "trigger_config__window_days__amount": "2", "trigger_config__window_days__unit": "weeks",
                 "trigger_config__churn_keywords": "churn, leaving, not renew", "auto_trigger_enabled": "on"})
    response = client.post(change_url(trigger), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    trigger.refresh_from_db()
    api = member_client(other_tenant)
    answer = api.post("/api/playbook-triggers", {"playbook_type": "voc", "triggers": {
        "nps_threshold": None, "csat_threshold": 3.2, "window_days": 14,
        "churn_keywords": ["churn", "leaving", "not renew"]}}, format="json")
    assert answer.status_code == 200, answer.json()
    theirs = services.playbook_triggers_ensure(other_tenant)["voc"]
    assert trigger.trigger_config == theirs.trigger_config
    assert trigger.trigger_config["nps_threshold"] is None and trigger.trigger_config["window_days"] == 14
    assert trigger.auto_trigger_enabled is True


def test_an_out_of_range_setting_is_an_error_next_to_its_input_and_nothing_is_saved(client, tenant):
    trigger = services.playbook_triggers_ensure(tenant)["voc"]
    before = dict(trigger.trigger_config)
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    data = form_inputs(client.get(change_url(trigger)).content.decode())
    data["trigger_config__nps_threshold"] = "500"

    response = client.post(change_url(trigger), data)

    assert response.status_code == 200
    html = response.content.decode()
    assert "must be between -100 and 100" in row(html, "trigger_config__nps_threshold")
    assert "errorlist" not in row(html, "trigger_config__csat_threshold")
    trigger.refresh_from_db()
    assert trigger.trigger_config == before


def test_an_unticked_switch_saves_false(client, tenant):
    trigger = services.playbook_triggers_ensure(tenant)["activation"]
    assert trigger.trigger_config["unused_feature_check"] is True
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    data = form_inputs(client.get(change_url(trigger)).content.decode())
    assert data.pop("trigger_config__unused_feature_check") == "true"

    assert client.post(change_url(trigger), data).status_code == 302
    trigger.refresh_from_db()
    assert trigger.trigger_config["unused_feature_check"] is False


# --- SuccessPlays ----------------------------------------------------------------------------------

PLAY_API = {
    "name": "Churn watch (API)", "is_active": False, "trigger_type": "status_change",
    "trigger_config": {"to_status": ["churned", "cancelled"], "entering": True},
    "conditions": {"all": [{"field": "arr", "operator": "gte", "value": 5000}]},
    "actions": [{"type": "create_task", "config": {"title": "Save {{ account.name }}", "priority": "urgent"}}],
    "cooldown_minutes": 1440,
}


def play_inputs(page: str, **changes) -> dict:
    data = form_inputs(page)
    config = "trigger_config__@status_change"
    task = "actions__0.@create_task.config"
    data.update({
        "name": "Churn watch", "trigger_type": "status_change", "webhook_url": "",
        f"{config}.to_status": ["churned", "cancelled"], f"{config}.entering": "true",
        "conditions__conditions.0.field": "arr", "conditions__conditions.0.operator": "gte",
        "conditions__conditions.0.value": "5000",
        "actions__0.type": "create_task", f"{task}.title": "Save {{ account.name }}", f"{task}.priority": "urgent",
        "cooldown_minutes__amount": "1", "cooldown_minutes__unit": "days",
    })
    data.update(changes)
    return data


def test_a_successplay_posted_as_inputs_is_the_play_the_api_makes(client, tenant, api):
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    page = client.get(reverse("admin:playbooks_playbook_add"), {"trigger_type": "status_change"}).content.decode()
    assert '<select multiple name="trigger_config__@status_change.to_status"' in page

    response = client.post(reverse("admin:playbooks_playbook_add"), play_inputs(page))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert api.post("/api/playbooks/", PLAY_API, format="json").status_code == 201
    mine, theirs = (Playbook.objects.for_tenant(tenant).get(name=name) for name in ("Churn watch", "Churn watch (API)"))
    fields = ("trigger_type", "trigger_config", "conditions", "actions", "cooldown_minutes")
    assert {f: getattr(mine, f) for f in fields} == {f: getattr(theirs, f) for f in fields}
    assert mine.workflow.actions[0] == theirs.workflow.actions[0]
    listed = client.get(reverse("admin:playbooks_playbook_changelist")).content.decode()
    assert "<td class=\"field-cooldown\">1 day</td>" in listed


def test_a_successplays_bad_action_setting_is_shown_next_to_it(client, tenant):
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    page = client.get(reverse("admin:playbooks_playbook_add"), {"trigger_type": "status_change"}).content.decode()

    response = client.post(reverse("admin:playbooks_playbook_add"),
                           play_inputs(page, **{"actions__0.@create_task.config.priority": "whenever"}))

    assert response.status_code == 200
    assert "must be one of" in row(response.content.decode(), "actions__0.@create_task.config.priority")
    assert not Playbook.objects.for_tenant(tenant).filter(name="Churn watch").exists()


# --- executions: their delivery result ------------------------------------------------------------

def test_executions_say_what_became_of_their_messages_with_links_to_the_outbox(client, tenant):
    play = Playbook.objects.for_tenant(tenant).first()
    account = AccountFactory(tenant=tenant, name="Globex")
    run = RunFactory(workflow=WorkflowFactory(tenant=tenant), account=account, status=Run.Status.SUCCESS)
    delivered = OutboxFactory(tenant=tenant, run_id=run.pk, status=Outbox.Status.DELIVERED, attempts=1,
                              last_status_code=200)
    failing = OutboxFactory(tenant=tenant, run_id=run.pk, status=Outbox.Status.FAILED, attempts=3,
                            last_status_code=503, channel=Outbox.Channel.EMAIL)
    execution = PlaybookExecution.objects.create(tenant=tenant, playbook=play, account=account, run=run,
                                                 status=PlaybookExecution.Status.COMPLETED, source="event")
    PlaybookExecution.objects.create(tenant=tenant, playbook=play, account=account, status="completed",
                                     source="manual")  # no run: nothing was sent
    client.force_login(staff(tenant, Role.PRACTITIONER))

    listed = client.get(reverse("admin:playbooks_playbookexecution_changelist")).content.decode()
    shown = client.get(change_url(execution)).content.decode()

    for html in (listed, shown):
        assert f'<a href="{reverse("admin:delivery_outbox_change", args=[delivered.pk])}">webhook delivered 200</a>' in html
        assert f'<a href="{reverse("admin:delivery_outbox_change", args=[failing.pk])}">email failing (3 attempts)</a>' in html
    assert "webhook dead after" not in listed
    Outbox.objects.filter(pk=failing.pk).update(status=Outbox.Status.DEAD, attempts=8)
    assert "email dead after 8 attempts" in client.get(change_url(execution)).content.decode()
