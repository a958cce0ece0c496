"""A rule's rate limit and retries are edited with inputs like its conditions and actions (their JSON under
"Advanced"), durations in words and errors next to the input they name; a condition's field offers the fields of
the rule's subject, and still takes any path the engine reads (issue 14, §4)."""

import re

import pytest
from django.urls import reverse

from automation.models import Workflow
from tests.factories import WorkflowFactory, staff
from tests.form_pages import form_inputs

pytestmark = pytest.mark.django_db

ADD = "admin:automation_workflow_add"


def row(html: str, name: str) -> str:
    """The editor row of the input ``name``: its label, input, errors and help."""
    match = re.search(r'<div class="schema-row[^"]*" data-path="%s">(.*?)\n</div>' % re.escape(name), html, re.S)
    assert match, f"no input {name}"
    return match.group(1)


def manual_rule(page: str, **changes) -> dict:
    data = form_inputs(page)
    data.update({"name": "Limited", "status": "draft", "trigger_type": "manual", **changes})
    return data


@pytest.fixture
def admin_client(client, tenant):
    client.force_login(staff(tenant))
    return client


def test_a_saved_limit_and_retries_show_in_inputs_with_durations_in_words(admin_client, tenant):
    rule = WorkflowFactory(tenant=tenant, status="draft", allow_retries=True,
                           rate_limiting={"limit": 5, "period": "day", "reset_strategy": "fixed"},
                           retry_configuration={"max_retries": 3, "delay_minutes": 90, "max_delay_hours": 48})
    html = admin_client.get(reverse("admin:automation_workflow_change", args=[rule.pk])).content.decode()

    assert 'value="5"' in row(html, "rate_limiting__limit") and ">Runs allowed<" in row(html, "rate_limiting__limit")
    assert '<option value="day" selected>' in row(html, "rate_limiting__period")
    assert '<option value="fixed" selected>' in row(html, "rate_limiting__reset_strategy")
    assert "1 hour 30 minutes" in row(html, "retry_configuration__delay_minutes")
    assert "2 days" in row(html, "retry_configuration__max_delay_hours")
    assert "Advanced: edit as JSON" in html and 'name="rate_limiting"' in html  # the JSON stays available


def test_posting_the_inputs_saves_the_limit_and_retries(admin_client, tenant):
    page = admin_client.get(reverse(ADD), {"trigger_type": "manual"}).content.decode()
    response = admin_client.post(reverse(ADD), manual_rule(page, **{
        "rate_limiting__limit": "10", "rate_limiting__period": "hour", "rate_limiting__burst_limit": "2",
        "allow_retries": "on", "retry_configuration__max_retries": "3",
        "retry_configuration__delay_minutes__amount": "2", "retry_configuration__delay_minutes__unit": "hours",
        "retry_configuration__backoff_multiplier": "2",
    }))
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = Workflow.objects.for_tenant(tenant).get(name="Limited")
    assert rule.rate_limiting == {"limit": 10, "period": "hour", "burst_limit": 2}
    assert rule.retry_configuration == {"max_retries": 3, "delay_minutes": 120, "backoff_multiplier": 2}


def test_empty_inputs_mean_no_limit(admin_client, tenant):
    page = admin_client.get(reverse(ADD), {"trigger_type": "manual"}).content.decode()
    assert admin_client.post(reverse(ADD), manual_rule(page)).status_code == 302
    rule = Workflow.objects.for_tenant(tenant).get(name="Limited")
    assert (rule.rate_limiting, rule.retry_configuration) == ({}, {})


def test_a_bad_value_is_named_next_to_its_input_and_nothing_is_saved(admin_client, tenant):
    page = admin_client.get(reverse(ADD), {"trigger_type": "manual"}).content.decode()
    response = admin_client.post(reverse(ADD), manual_rule(page, **{
        "rate_limiting__period": "day", "retry_configuration__max_retries": "12"}))
    html = response.content.decode()
    assert response.status_code == 200
    assert "must be a positive integer" in row(html, "rate_limiting__limit")
    assert not Workflow.objects.for_tenant(tenant).filter(name="Limited").exists()

    response = admin_client.post(reverse(ADD), manual_rule(page, **{"retry_configuration__max_retries": "12"}))
    assert "must be at most 10" in row(response.content.decode(), "retry_configuration__max_retries")


def datalist(html: str) -> list[str]:
    found = re.search(r'<datalist id="id_conditions__field__suggestions">(.*?)</datalist>', html, re.S)
    assert found, "no suggestions for the condition's field"
    return re.findall(r'<option value="([^"]*)">', found.group(1))


def test_a_conditions_field_offers_the_fields_of_the_rules_subject(admin_client):
    html = admin_client.get(reverse(ADD), {"trigger_type": "health_score_change"}).content.decode()
    fields = datalist(html)
    assert {"industry", "arr", "status", "owner.email", "parent.name", "engagements.last_days"} <= set(fields)
    assert not any(name.startswith("tenant") or "password" in name for name in fields)
    assert 'list="id_conditions__field__suggestions"' in html

    contact = admin_client.get(reverse(ADD), {"trigger_type": "model_created", "model_type": "contact"}).content.decode()
    assert {"email", "account.industry"} <= set(datalist(contact))


def test_a_conditions_field_still_takes_a_dotted_path_not_offered(admin_client, tenant):
    page = admin_client.get(reverse(ADD), {"trigger_type": "manual"}).content.decode()
    response = admin_client.post(reverse(ADD), manual_rule(page, **{
        "conditions__op": "all", "conditions__conditions.0.field": "company.employee_count",
        "conditions__conditions.0.operator": "gte", "conditions__conditions.0.value": "50"}))
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = Workflow.objects.for_tenant(tenant).get(name="Limited")
    assert rule.conditions["conditions"][0]["field"] in ("company.employee_count", "employee_count")
