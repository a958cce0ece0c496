"""The admin speaks words (issue 14, §6): labels made from field and setting names read as words ("DAU/MAU
threshold", "ID field", "URL"), and change pages are titled by what a CSM knows (the rule, the account, the
journey, the time), never "run 5" or an id."""

import datetime
import html as markup
import re

import pytest
from django.urls import reverse

from accounts.models import Role
from automation.models import Event, RunStep
from crm.models import CRMPlaybook
from crm.services import crm_journeys_ensure, start_journey
from csplatform.schema_forms import label_words
from playbooks.models import PlaybookTrigger
from tests.factories import AccountFactory, ContactFactory, OutboxFactory, RunFactory, WorkflowFactory, staff

pytestmark = pytest.mark.django_db
AT = datetime.datetime(2026, 12, 3, 14, 2, tzinfo=datetime.timezone.utc)


def page(client, name: str, *args) -> str:
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return markup.unescape(response.content.decode())


def title(html: str) -> str:
    return " ".join(re.search(r"<title>(.*?)</title>", html, re.S).group(1).split())


def breadcrumbs(html: str) -> str:
    crumbs = re.search(r'<div class="breadcrumbs">(.*?)</div>', html, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", crumbs).split())


@pytest.mark.parametrize(("name", "words"), [
    ("dau_mau_threshold", "DAU/MAU threshold"), ("id_field", "ID field"), ("url", "URL"), ("webhook_url", "Webhook URL"),
    ("csat_below", "CSAT below"), ("duration_ms", "Duration (ms)"), ("arr", "ARR"), ("due_days", "Due days"),
])
def test_a_setting_name_reads_as_words(name, words):
    assert label_words(name) == words


def test_the_rule_editor_labels_settings_as_words(client, tenant):
    client.force_login(staff(tenant))
    html = page(client, "admin:automation_workflow_add")
    webhook_url = re.search(r'<label for="id_actions__[\w@]*webhook_config_url"[^>]*>([^<]*)</label>', html)
    assert webhook_url and webhook_url.group(1) == "URL"  # (in the action's inputs a new webhook action brings)
    assert ">ID field</label>" in html and ">Id field</label>" not in html and ">Url</label>" not in html


def test_the_playbook_trigger_settings_label_dau_mau_as_words(client, tenant):
    client.force_login(staff(tenant))
    trigger = PlaybookTrigger.objects.for_tenant(tenant).get(playbook_type="activation")
    html = page(client, "admin:playbooks_playbooktrigger_change", trigger.pk)
    assert ">DAU/MAU threshold</label>" in html and "Dau mau" not in html


def test_id_fields_are_labelled_id_not_id(client, tenant):
    client.force_login(staff(tenant, Role.VIEWER))
    event = Event.objects.create(tenant=tenant, type="health_score_change", model="account", object_id="42")
    html = page(client, "admin:automation_event_change", event.pk)
    assert "Object ID:" in html and "Object id:" not in html


def test_a_run_page_is_titled_by_its_rule_account_and_time_and_lists_its_steps_in_words(client, tenant):
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    run = RunFactory(workflow=WorkflowFactory(tenant=tenant, name="Health drop alert"), account=account, created_at=AT)
    RunStep.objects.create(tenant=tenant, run=run, position=0, action_type="send_email", status="failed")
    client.force_login(staff(tenant, Role.VIEWER))

    html = page(client, "admin:automation_run_change", run.pk)

    assert title(html).startswith("Health drop alert on TechStart Solutions, 3 Dec 14:02 |")
    assert breadcrumbs(html).endswith("Health drop alert on TechStart Solutions, 3 Dec 14:02")
    assert f"run {run.pk}" not in html
    assert "Step 1, send email (failed)" in html


def test_an_event_page_is_titled_by_what_happened_to_which_account(client, tenant):
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    event = Event.objects.create(tenant=tenant, type="health_score_change", model="account", object_id=str(account.pk),
                                 account=account, created_at=AT)
    client.force_login(staff(tenant, Role.VIEWER))
    html = page(client, "admin:automation_event_change", event.pk)
    assert title(html).startswith("Health score change on TechStart Solutions, 3 Dec 14:02 |")


def test_a_journey_execution_is_titled_by_journey_contact_account_and_time(client, tenant):
    crm_journeys_ensure(tenant)
    journey = CRMPlaybook.objects.for_tenant(tenant).get(name="winback")
    contact = ContactFactory(account=AccountFactory(tenant=tenant, name="TechStart Solutions"), name="Dana")
    execution = start_journey(contact, journey, {})
    execution.started_at = AT
    execution.save()
    client.force_login(staff(tenant))

    html = page(client, "admin:crm_crmplaybookexecution_change", execution.pk)

    assert title(html).startswith(f"{journey} for Dana at TechStart Solutions, 3 Dec 14:02 |")
    assert re.search(r"Step 1, \w+ \(", html) and "step 0 " not in html  # steps by number and channel
    listing = page(client, "admin:crm_crmplaybookexecution_changelist")
    link = reverse("admin:crm_crmplaybookexecution_change", args=[execution.pk])
    assert re.search(rf'<a href="{re.escape(link)}">{re.escape(str(journey))}</a>', listing)  # the name opens it


def test_a_message_page_names_it_in_the_breadcrumbs_too(client, tenant):
    message = OutboxFactory(tenant=tenant, target="https://hooks.example.com/at-risk")
    client.force_login(staff(tenant, Role.VIEWER))
    html = page(client, "admin:delivery_outbox_change", message.pk)
    assert breadcrumbs(html).endswith("Webhook to https://hooks.example.com/at-risk (Pending)")
    assert message.message_id not in breadcrumbs(html)
