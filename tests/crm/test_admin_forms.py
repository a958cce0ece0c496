"""A journey's steps in the admin: conditions and A/B variants as inputs (errors next to them, the JSON under
"Advanced"), delays and the re-entry cooldown as durations shown in words."""

import json
import re

import pytest
from django.urls import reverse

from accounts.models import Role
from crm.models import CRMPlaybook, CRMStep
from crm.services import crm_journeys_ensure
from tests.factories import staff
from tests.form_pages import form_inputs

pytestmark = pytest.mark.django_db


@pytest.fixture
def rescue(client, tenant):
    crm_journeys_ensure(tenant)
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    return CRMPlaybook.objects.for_tenant(tenant).get(name="payment_failed_rescue")


def page_of(client, journey) -> str:
    response = client.get(reverse("admin:crm_crmplaybook_change", args=[journey.pk]))
    assert response.status_code == 200
    return response.content.decode()


def row(html: str, name: str) -> str:
    match = re.search(r'<div class="schema-row[^"]*" data-path="%s">(.*?)\n</div>' % re.escape(name), html, re.S)
    assert match, f"no input {name}"
    return match.group(1)


def steps(journey):
    return list(CRMStep.objects.filter(playbook=journey).order_by("order"))


def test_steps_show_their_delays_in_words_and_their_conditions_as_inputs(client, rescue):
    html = page_of(client, rescue)

    assert "= 1 day" in html and "= 2 days" in html  # the chat step (+24 h) and the owner step (+48 h)
    assert 'name="steps-1-delay_hours__amount"' in html
    assert 'name="steps-0-conditions__editor"' in html and 'name="steps-0-variants__editor"' in html
    assert 'name="steps-0-conditions__conditions.__INDEX__.field"' in html


def test_the_journey_list_shows_the_re_entry_cooldown_in_words(client, rescue):
    CRMPlaybook.objects.filter(pk=rescue.pk).update(reentry_cooldown_hours=336)

    listed = client.get(reverse("admin:crm_crmplaybook_changelist")).content.decode()

    assert '<td class="field-reentry_cooldown">2 weeks</td>' in listed


def test_saving_the_journey_unchanged_changes_no_step(client, rescue):
    before = [(s.delay_hours, s.conditions, s.variants) for s in steps(rescue)]

    response = client.post(reverse("admin:crm_crmplaybook_change", args=[rescue.pk]), form_inputs(page_of(client, rescue)))

    assert response.status_code == 302
    assert [(s.delay_hours, s.conditions, s.variants) for s in steps(rescue)] == before


def test_a_step_edited_through_its_inputs(client, rescue):
    data = form_inputs(page_of(client, rescue))
    data.update({
        "steps-1-delay_hours__amount": "36", "steps-1-delay_hours__unit": "hours",
        "steps-1-conditions__conditions.0.field": "account.status", "steps-1-conditions__conditions.0.operator": "in",
        "steps-1-conditions__conditions.0.value": "active, trial",
        "steps-1-variants__0.name": "A", "steps-1-variants__0.weight": "70",
        "steps-1-variants__1.name": "B", "steps-1-variants__1.weight": "30",
        "steps-1-variants__1.subject": "Still there, {{ contact.name }}?",
        "reentry_cooldown_hours__amount": "2", "reentry_cooldown_hours__unit": "weeks",
    })

    response = client.post(reverse("admin:crm_crmplaybook_change", args=[rescue.pk]), data)

    assert response.status_code == 302, [f.errors for f in response.context["inline_admin_formsets"][0].formset]
    chat = steps(rescue)[1]
    assert str(chat.delay_hours) == "36.00"
    assert chat.conditions == {"conditions": [{"field": "account.status", "operator": "in", "value": ["active", "trial"]}]}
    assert chat.variants == [{"name": "A", "weight": 70},
                             {"name": "B", "weight": 30, "subject": "Still there, {{ contact.name }}?"}]
    rescue.refresh_from_db()
    assert rescue.reentry_cooldown_hours == 336
    assert "= 1 day 12 hours" in page_of(client, rescue)


def test_a_bad_condition_is_shown_next_to_it_and_nothing_is_saved(client, rescue):
    before = [(s.conditions, s.delay_hours) for s in steps(rescue)]
    data = form_inputs(page_of(client, rescue))
    data.update({"steps-0-conditions__conditions.0.field": "account.password",
                 "steps-0-conditions__conditions.0.operator": "equals",
                 "steps-0-conditions__conditions.0.value": "x", "steps-1-delay_hours__amount": "5"})

    response = client.post(reverse("admin:crm_crmplaybook_change", args=[rescue.pk]), data)

    assert response.status_code == 200
    html = response.content.decode()
    assert "errorlist" in row(html, "steps-0-conditions__conditions.0.field")
    assert "errorlist" not in row(html, "steps-0-conditions__conditions.0.operator")
    assert [(s.conditions, s.delay_hours) for s in steps(rescue)] == before


def test_a_steps_raw_json_wins_when_edited(client, rescue):
    data = form_inputs(page_of(client, rescue))
    typed = {"field": "account.status", "operator": "equals", "value": "active"}
    data["steps-0-conditions"] = json.dumps(typed)

    response = client.post(reverse("admin:crm_crmplaybook_change", args=[rescue.pk]), data)

    assert response.status_code == 302
    assert steps(rescue)[0].conditions == typed


def test_a_condition_written_as_a_single_leaf_is_edited_as_json_and_kept(client, rescue):
    leaf = {"field": "account.status", "operator": "equals", "value": "active"}
    CRMStep.objects.filter(pk=steps(rescue)[0].pk).update(conditions=leaf)
    html = page_of(client, rescue)

    assert 'name="steps-0-conditions__editor"' not in html and "can only be edited as JSON" in html
    assert client.post(reverse("admin:crm_crmplaybook_change", args=[rescue.pk]), form_inputs(html)).status_code == 302
    assert steps(rescue)[0].conditions == leaf


def test_the_code_expiry_is_a_duration_in_words(client, tenant, rescue):
    from crm.services import crm_settings_for

    settings = crm_settings_for(tenant)
    listed = client.get(reverse("admin:crm_crmsettings_changelist")).content.decode()
    assert '<td class="field-code_expiry">1 week</td>' in listed
    address = reverse("admin:crm_crmsettings_change", args=[settings.pk])
    data = form_inputs(client.get(address).content.decode())
    data.update({"discount_expiry_days__amount": "10", "discount_expiry_days__unit": "days"})

    assert client.post(address, data).status_code == 302
    settings.refresh_from_db()
    assert settings.discount_expiry_days == 10
