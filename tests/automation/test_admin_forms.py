"""The rule admin's friendly editors: inputs made from the registries' schemas for the trigger config, conditions
and actions (plus durations in words), posting them saves what the API saves, errors appear next to their input,
and the raw JSON under "Advanced" still works and wins when edited."""

import json
import re

import pytest
from django.urls import reverse

from automation import schemas
from automation.actions import actions as action_registry
from automation.models import Workflow
from automation.triggers import triggers
from csplatform.json_schema import duration_words
from tests.factories import WorkflowFactory, staff
from tests.form_pages import form_inputs

pytestmark = pytest.mark.django_db

ADD = "admin:automation_workflow_add"
HEALTH = "trigger_config__@health_score_change"
TASK = "actions__0.@create_task.config"
ADJUST = "actions__1.@update_health_score.config"


def add_page(client, trigger_type="health_score_change"):
    page = client.get(reverse(ADD), {"trigger_type": trigger_type})
    assert page.status_code == 200
    return page.content.decode()


def row(html: str, name: str) -> str:
    """The editor row of the input ``name``: its label, input, errors and help."""
    match = re.search(r'<div class="schema-row[^"]*" data-path="%s">(.*?)\n</div>' % re.escape(name), html, re.S)
    assert match, f"no input {name}"
    return match.group(1)


def friendly_rule(page: str, **changes) -> dict:
    """The add form as a browser posts it, with a health-score rule typed into the editors' inputs (the second
    condition and both actions are items the page's script adds, named as it names them)."""
    data = form_inputs(page)
    data.update({
        "name": "Health alert", "status": "draft",
        f"{HEALTH}.threshold": "40", f"{HEALTH}.direction": "decrease",
        f"{HEALTH}.time_window__amount": "7", f"{HEALTH}.time_window__unit": "days",
        "conditions__op": "all",
        "conditions__conditions.0.field": "industry", "conditions__conditions.0.operator": "equals",
        "conditions__conditions.0.value": "Software",
        "conditions__conditions.1.field": "arr", "conditions__conditions.1.operator": "gte",
        "conditions__conditions.1.value": "10000",
        "actions__0.type": "create_task", f"{TASK}.title": "Call {{ account.name }}", f"{TASK}.priority": "high",
        f"{TASK}.due_days": "3",
        "actions__1.type": "update_health_score", f"{ADJUST}.adjustment": "-10", f"{ADJUST}.reason": "Missed QBR",
        f"{ADJUST}.temporary": "true", f"{ADJUST}.duration__amount": "3", f"{ADJUST}.duration__unit": "days",
        "cooldown_minutes__amount": "2", "cooldown_minutes__unit": "hours",
    })
    data.update(changes)
    return data


API_RULE = {
    "name": "Health alert (API)", "trigger_type": "health_score_change",
    "trigger_config": {"threshold": 40, "direction": "decrease", "time_window": "7d"},
    "condition_config": {"all": [{"field": "industry", "operator": "equals", "value": "Software"},
                                 {"field": "arr", "operator": "gte", "value": 10000}]},
    "actions": [{"type": "create_task", "config": {"title": "Call {{ account.name }}", "priority": "high", "due_days": 3}},
                {"type": "update_health_score",
                 "config": {"adjustment": -10, "reason": "Missed QBR", "temporary": True, "duration": "3d"}}],
    "cooldown_minutes": 120,
}
DEFINITION = ("trigger_type", "model_type", "trigger_config", "conditions", "actions", "cooldown_minutes")


# --- the schemas the editors are made from ---------------------------------------------------------

def test_every_registered_trigger_and_action_has_a_config_schema_naming_exactly_the_settings_it_accepts():
    for name in triggers.keys():
        assert set(schemas.config_schema(triggers.get(name))["properties"]) == set(triggers.get(name).settings), name
    for name in action_registry.keys():
        action = action_registry.get(name)
        declared = {*action.required, *action.templated, *(action.known or ()), "delay"}
        assert set(schemas.config_schema(action)["properties"]) == declared, name
    health = schemas.config_schema(triggers.get("health_score_change"))["properties"]
    assert health["direction"]["enum"] == list(triggers.get("health_score_change").DIRECTIONS)
    assert health["time_window"]["x-duration"] == "text" and health["entering"]["type"] == "boolean"
    task = schemas.config_schema(action_registry.get("create_task"))
    assert task["required"] == ["title"] and task["properties"]["title"]["x-template"] is True
    assert task["properties"]["assignee"]["x-aliases"] == ["assigned_to"]


# --- rendering -------------------------------------------------------------------------------------

def test_the_add_form_renders_the_inputs_of_the_chosen_trigger_conditions_and_actions(client, tenant):
    client.force_login(staff(tenant))

    page = add_page(client, "health_score_change")

    assert '<input type="number" step="any" name="trigger_config__@health_score_change.threshold"' in page
    assert '<option value="decrease">decrease</option>' in row(page, f"{HEALTH}.direction")
    assert f'name="{HEALTH}.time_window__amount"' in page and f'name="{HEALTH}.time_window__unit"' in page
    assert '<select multiple name="trigger_config__@health_score_change.risk_levels"' in page
    assert f'type="checkbox" name="{HEALTH}.entering"' in page
    # the other triggers' inputs wait in templates for the script; the conditions and actions lists start empty
    assert '<template data-variant="event">' in page and 'name="trigger_config__@event.event_type"' in page
    assert 'name="conditions__conditions.__INDEX__.operator"' in page
    assert '<option value="greater_than">greater_than</option>' in page
    assert 'name="actions__INDEX__.@create_task.config.title"' not in page  # the item path is actions__<index>
    assert 'name="actions____INDEX__.@create_task.config.title"' in page
    assert '<option value="high">high</option>' in page  # create_task's priority choices
    assert "Advanced: edit as JSON" in page and '<textarea name="actions"' in page


def test_the_add_form_shows_another_triggers_inputs_when_that_one_is_chosen(client, tenant):
    client.force_login(staff(tenant))

    page = add_page(client, "status_change")

    assert '<select multiple name="trigger_config__@status_change.to_status"' in page
    assert f'name="{HEALTH}.threshold"' in page.split("<template", 1)[1]  # only in a template now
    assert 'data-path="trigger_config__@health_score_change.threshold"' not in page.split("<template", 1)[0]


def test_a_saved_rule_shows_its_values_in_the_inputs_and_durations_in_words(client, tenant):
    rule = WorkflowFactory(tenant=tenant, trigger_type="health_score_change", cooldown_minutes=90,
                           trigger_config={"threshold": 40, "time_window": "14d"},
                           conditions={"all": [{"field": "industry", "operator": "in", "value": ["Retail", "Media"]}]},
                           actions=[{"type": "create_task", "config": {"title": "Call", "due_days": 3}}])
    client.force_login(staff(tenant))

    page = client.get(reverse("admin:automation_workflow_change", args=[rule.pk])).content.decode()

    assert 'value="40"' in row(page, f"{HEALTH}.threshold")
    window = row(page, f"{HEALTH}.time_window")
    assert 'value="2"' in window and '<option value="weeks" selected>' in window and "= 2 weeks" in window
    assert 'value="Retail, Media"' in row(page, "conditions__conditions.0.value")
    assert '<option value="create_task" selected>' in row(page, "actions__0.type")
    assert 'value="3"' in row(page, "actions__0.@create_task.config.due_days")
    assert "= 1 hour 30 minutes" in page  # the cooldown
    assert "health_score_change (below 40, decrease, within 2 weeks)" in client.get(
        reverse("admin:automation_workflow_changelist")).content.decode()


# --- saving ----------------------------------------------------------------------------------------

def test_posting_the_inputs_saves_the_same_rule_the_api_saves(client, tenant, api):
    client.force_login(staff(tenant))

    response = client.post(reverse(ADD), friendly_rule(add_page(client)))

    assert response.status_code == 302, response.context["adminform"].form.errors
    created = api.post("/api/admin/automation", API_RULE, format="json")
    assert created.status_code == 201, created.json()
    mine, theirs = Workflow.objects.get(name="Health alert"), Workflow.objects.get(name="Health alert (API)")
    assert {f: getattr(mine, f) for f in DEFINITION} == {f: getattr(theirs, f) for f in DEFINITION}
    assert mine.trigger_config["time_window"] == "7d" and mine.cooldown_minutes == 120
    assert mine.actions[1]["config"]["duration"] == "3d" and mine.actions[1]["config"]["temporary"] is True


def test_an_invalid_value_shows_the_services_error_next_to_its_input_and_saves_nothing(client, tenant):
    client.force_login(staff(tenant))
    page = add_page(client)

    response = client.post(reverse(ADD), friendly_rule(page, **{f"{TASK}.title": "", f"{TASK}.due_days": "3"}))

    assert response.status_code == 200 and Workflow.objects.count() == 0
    html = response.content.decode()
    assert '<ul class="errorlist"><li>is required</li></ul>' in row(html, f"{TASK}.title")
    assert "errorlist" not in row(html, f"{TASK}.priority")
    assert "actions[0].config.title: is required" in response.context["adminform"].form.errors["actions"][0]
    # what was typed is still there
    assert 'value="Missed QBR"' in row(html, f"{ADJUST}.reason")

    response = client.post(reverse(ADD), friendly_rule(page, **{f"{HEALTH}.threshold": "forty",
                                                               "conditions__conditions.1.operator": "gte",
                                                               "conditions__conditions.1.field": "nonsense"}))
    html = response.content.decode()
    assert "must be a number" in row(html, f"{HEALTH}.threshold")
    assert Workflow.objects.count() == 0


def test_a_condition_error_is_shown_next_to_the_condition_it_names(client, tenant):
    client.force_login(staff(tenant))

    response = client.post(reverse(ADD), friendly_rule(add_page(client), **{"conditions__conditions.1.field": "secrets"}))

    html = response.content.decode()
    assert response.status_code == 200 and Workflow.objects.count() == 0
    assert "errorlist" in row(html, "conditions__conditions.1.field")
    assert "errorlist" not in row(html, "conditions__conditions.0.field")


def test_the_raw_json_under_advanced_wins_when_it_was_edited(client, tenant):
    client.force_login(staff(tenant))
    data = friendly_rule(add_page(client))
    data["actions"] = json.dumps([{"type": "create_note", "config": {"body": "typed as JSON"}}])

    response = client.post(reverse(ADD), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = Workflow.objects.get()
    assert rule.actions == [{"type": "create_note", "config": {"body": "typed as JSON"}}]
    assert rule.trigger_config["threshold"] == 40.0  # the other parts still come from their inputs


def test_an_item_is_removed_with_its_checkbox(client, tenant):
    rule = WorkflowFactory(tenant=tenant, status="paused", actions=[
        {"type": "create_note", "config": {"body": "one"}}, {"type": "create_note", "config": {"body": "two"}}])
    client.force_login(staff(tenant))
    address = reverse("admin:automation_workflow_change", args=[rule.pk])
    data = form_inputs(client.get(address).content.decode())
    data["actions__0.__remove"] = "1"

    response = client.post(address, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    rule.refresh_from_db()
    assert rule.actions == [{"type": "create_note", "config": {"body": "two"}}]


def test_saving_a_page_unchanged_keeps_the_rule_as_it_was(client, tenant):
    rule = WorkflowFactory(
        tenant=tenant, status="paused", trigger_type="field_changed", model_type="account",
        trigger_config={}, conditions={"all": [{"field": "status", "operator": "changed_to", "value": "churned"}]},
        actions=[{"type": "webhook", "config": {"url": "https://hooks.example.test/a", "headers": {"X-A": "1"},
                                                "payload": {"text": "{{ account.name }}"}, "delay": "1h"}}])
    from automation import services

    services.workflow_save(rule=rule, data={})  # stored normalised, with fields derived from the conditions
    before = {f: getattr(rule, f) for f in DEFINITION}
    assert before["trigger_config"]["fields_from"] == "conditions"
    client.force_login(staff(tenant))
    address = reverse("admin:automation_workflow_change", args=[rule.pk])

    response = client.post(address, form_inputs(client.get(address).content.decode()))

    assert response.status_code == 302, response.context["adminform"].form.errors
    rule.refresh_from_db()
    assert {f: getattr(rule, f) for f in DEFINITION} == before


def test_conditions_the_inputs_cannot_show_are_edited_as_json(client, tenant):
    nested = {"any": [{"field": "industry", "operator": "equals", "value": "Retail"},
                      {"all": [{"field": "arr", "operator": "gte", "value": 1}, {"field": "size", "operator": "equals",
                                                                                 "value": "smb"}]}]}
    rule = WorkflowFactory(tenant=tenant, status="paused", conditions=nested)
    from automation import services

    services.workflow_save(rule=rule, data={})
    client.force_login(staff(tenant))
    address = reverse("admin:automation_workflow_change", args=[rule.pk])
    page = client.get(address).content.decode()

    assert "can only be edited as JSON" in page and 'name="conditions__editor"' not in page
    assert '<details class="schema-advanced" open>' in page
    stored = rule.conditions
    assert client.post(address, form_inputs(page)).status_code == 302
    rule.refresh_from_db()
    assert rule.conditions == stored


def test_durations_read_as_words():
    assert duration_words(336) == "2 weeks"
    assert duration_words(72) == "3 days"
    assert duration_words(36) == "1 day 12 hours"
    assert duration_words(0.5) == "30 minutes"
    assert duration_words(90, "minutes") == "1 hour 30 minutes"
    assert duration_words("3d") == "3 days" and duration_words("1w") == "1 week" and duration_words("15m") == "15 minutes"
    assert duration_words(240, "hours") == "10 days"
    assert duration_words(0) == "none" and duration_words(None) == "-"
