"""Admin: tenant admins change trigger settings (validated like the API), executions are history."""

import json

import pytest
from django.contrib import admin as django_admin
from django.urls import reverse

from accounts.models import Account, Role
from playbooks import services
from playbooks.admin import PlaybookExecutionInline, attach_execution_inline_to_account_page
from playbooks.models import PlaybookExecution, PlaybookTrigger
from tests.factories import AccountFactory, SurveyResponseFactory, staff

pytestmark = pytest.mark.django_db


def change_url(obj):
    return reverse(f"admin:playbooks_{obj._meta.model_name}_change", args=[obj.pk])


def test_it_lists_only_the_users_tenant_triggers(client, tenant, other_tenant):
    services.playbook_triggers_ensure(tenant)
    services.playbook_triggers_ensure(other_tenant)
    client.force_login(staff(tenant, Role.VIEWER))

    response = client.get(reverse("admin:playbooks_playbooktrigger_changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count == 5


def test_it_lets_a_tenant_admin_change_a_config_and_validates_it(client, tenant):
    trigger = services.playbook_triggers_ensure(tenant)["voc"]
    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    config = {**trigger.trigger_config, "nps_threshold": 500}

    bad = client.post(change_url(trigger), {"trigger_config": json.dumps(config), "auto_trigger_enabled": "on"})
    assert bad.status_code == 200 and "nps_threshold: must be between -100 and 100" in bad.content.decode()

    good = client.post(change_url(trigger), {"trigger_config": json.dumps({"nps_threshold": 0}),
                                             "auto_trigger_enabled": "on"})
    assert good.status_code == 302
    trigger.refresh_from_db()
    assert trigger.trigger_config["nps_threshold"] == 0 and trigger.trigger_config["csat_threshold"] == 3.6
    assert trigger.auto_trigger_enabled is True


def test_it_does_not_let_a_practitioner_change_trigger_settings(client, tenant):
    trigger = services.playbook_triggers_ensure(tenant)["voc"]
    client.force_login(staff(tenant, Role.PRACTITIONER))

    response = client.post(change_url(trigger), {"trigger_config": "{}", "auto_trigger_enabled": "on"})

    assert response.status_code == 403
    trigger.refresh_from_db()
    assert trigger.auto_trigger_enabled is False


def test_it_tests_triggers_from_the_admin(client, tenant):
    SurveyResponseFactory(account=AccountFactory(tenant=tenant, name="Grumpy"), score=0)
    trigger = services.playbook_triggers_ensure(tenant)["voc"]
    client.force_login(staff(tenant, Role.PRACTITIONER))

    response = client.post(reverse("admin:playbooks_playbooktrigger_changelist"),
                           {"action": "test_now", "_selected_action": [trigger.pk]}, follow=True)

    assert "VoC Sprint triggered for 1 account(s): Grumpy" in response.content.decode()
    assert PlaybookTrigger.objects.get(pk=trigger.pk).trigger_count == 0


def test_it_finishes_an_execution_in_the_admin(client, tenant):
    SurveyResponseFactory(account=AccountFactory(tenant=tenant), score=0)
    services.playbook_trigger_save(tenant=tenant, playbook_type="voc", changes={"auto_trigger_enabled": True})
    services.playbook_triggers_evaluate_all(tenant=tenant)
    execution = PlaybookExecution.objects.get()
    client.force_login(staff(tenant, Role.PRACTITIONER))

    response = client.post(change_url(execution), {"status": "completed", "outcome": "Saved"})

    assert response.status_code == 302
    execution.refresh_from_db()
    assert execution.status == "completed" and execution.finished_at is not None


def test_it_can_show_executions_on_the_account_page(client, tenant):
    account_admin = django_admin.site._registry[Account]
    before = account_admin.inlines
    SurveyResponseFactory(account=AccountFactory(tenant=tenant, name="Grumpy"), score=0)
    services.playbook_trigger_save(tenant=tenant, playbook_type="voc", changes={"auto_trigger_enabled": True})
    services.playbook_triggers_evaluate_all(tenant=tenant)
    account = Account.objects.get(name="Grumpy")
    client.force_login(staff(tenant, Role.VIEWER))
    try:
        attach_execution_inline_to_account_page()
        assert PlaybookExecutionInline in account_admin.inlines
        response = client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    finally:
        account_admin.inlines = before

    assert response.status_code == 200
    assert "playbook executions (latest 10)" in response.content.decode().lower()
    assert "NPS -100 is below 10" in response.content.decode()
