"""Slack, SMS, HubSpot and Salesforce: one transport each, against a local server that records requests."""

import json

import pytest

from accounts import services as account_services
from delivery import services
from automation.models import RunStep
from delivery.models import Outbox
from tests.factories import AccountFactory, ContactFactory, IntegrationCredentialFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def providers(settings, receiver):
    settings.SLACK_API_URL = receiver.url + "/slack/api"
    settings.SMS_API_URL = receiver.url + "/sms/v1"
    settings.HUBSPOT_API_URL = receiver.url + "/hubspot"
    settings.SALESFORCE_INSTANCE_URL = receiver.url + "/sf"
    return receiver


def fire_on_churn(tenant, account, *actions, on_commit):
    WorkflowFactory(tenant=tenant, trigger_type="status_change", trigger_config={"to_status": "churned"},
                    actions=list(actions))
    with on_commit():
        account_services.account_save(account=account, changes={"status": "churned"})


def body(request):
    return json.loads(request["body"])


def test_it_posts_a_slack_message_through_the_slack_api(tenant, providers, on_commit):
    IntegrationCredentialFactory(tenant=tenant, integration="slack")
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    fire_on_churn(tenant, account, {"type": "integration_action", "config": {
        "integration": "slack", "action": "post_message",
        "parameters": {"channel": "#customer-success", "text": ":rotating_light: {{ account.name }} churned"}}},
        on_commit=on_commit)
    [request] = providers.requests
    assert (request["method"], request["path"]) == ("POST", "/slack/api/chat.postMessage")
    assert request["headers"]["authorization"] == "Bearer slack-token"
    assert body(request) == {"channel": "#customer-success", "text": ":rotating_light: TechStart Solutions churned"}
    assert Outbox.objects.get().status == Outbox.Status.DELIVERED


def test_it_marks_a_slack_error_dead_and_retries_a_rate_limit(tenant, providers):
    IntegrationCredentialFactory(tenant=tenant, integration="slack")
    providers.respond((200, {}, b'{"ok": false, "error": "channel_not_found"}'),
                      (200, {}, b'{"ok": false, "error": "ratelimited"}'))
    lost = services.outbox_enqueue(tenant=tenant, channel="slack", target="#nope", payload={"text": "x"})
    limited = services.outbox_enqueue(tenant=tenant, channel="slack", target="#busy", payload={"text": "y"})
    services.deliver()
    lost.refresh_from_db()
    limited.refresh_from_db()
    assert (lost.status, lost.error) == (Outbox.Status.DEAD, "slack: channel_not_found")
    assert (limited.status, limited.error) == (Outbox.Status.FAILED, "slack: ratelimited")


def test_it_sends_an_sms_through_the_configured_provider(tenant, providers, on_commit):
    IntegrationCredentialFactory(tenant=tenant, integration="sms", config={"from": "+15550100"})
    account = AccountFactory(tenant=tenant, name="GlobalTech")
    ContactFactory(account=account, name="Dana", phone="+15550199", is_primary=True)
    fire_on_churn(tenant, account, {"type": "send_sms", "config": {
        "recipient": "primary_contact", "message": "Sorry to see {{ account.name }} go. Reply to talk."}},
        on_commit=on_commit)
    [request] = providers.requests
    assert request["path"] == "/sms/v1/messages"
    message = Outbox.objects.get()
    assert request["headers"]["idempotency-key"] == message.message_id
    assert body(request) == {"to": "+15550199", "from": "+15550100", "body": "Sorry to see GlobalTech go. Reply to talk."}


def test_it_upserts_a_hubspot_contact_from_a_seed_003_mapping(tenant, providers, on_commit):
    IntegrationCredentialFactory(tenant=tenant, integration="hubspot")
    WorkflowFactory(tenant=tenant, trigger_type="model_created", model_type="contact", actions=[
        {"type": "sync_to_external", "config": {"integration": "hubspot", "mapping": {
            "email": "{{ entity.email }}", "firstname": "{{ entity.name }}", "company": "{{ account.name }}"}}}])
    account = AccountFactory(tenant=tenant, name="GlobalTech")
    with on_commit():
        ContactFactory(account=account, name="Dana", email="dana@globaltech.test")
    [request] = providers.requests
    assert (request["method"], request["path"]) == ("POST", "/hubspot/crm/v3/objects/contacts/batch/upsert")
    assert request["headers"]["authorization"] == "Bearer hubspot-token"
    assert body(request) == {"inputs": [{"idProperty": "email", "id": "dana@globaltech.test", "properties": {
        "email": "dana@globaltech.test", "firstname": "Dana", "company": "GlobalTech"}}]}
    assert RunStep.objects.get().output["operation"] == "upsert"


def test_it_upserts_a_salesforce_contact_by_external_id_on_the_tenants_instance(tenant, providers, on_commit):
    IntegrationCredentialFactory(tenant=tenant, integration="salesforce", base_url=providers.url + "/acme-instance")
    WorkflowFactory(tenant=tenant, trigger_type="model_created", model_type="contact", actions=[
        {"type": "sync_to_external", "config": {"integration": "salesforce", "mapping": {
            "Email": "{{ entity.email }}", "LastName": "{{ entity.name }}"}}}])
    with on_commit():
        ContactFactory(account=AccountFactory(tenant=tenant), name="Scully", email="dana@fbi.test")
    [request] = providers.requests
    assert request["method"] == "PATCH"
    assert request["path"] == "/acme-instance/services/data/v60.0/sobjects/Contact/Email/dana%40fbi.test"
    assert body(request) == {"LastName": "Scully"}


def test_it_creates_a_hubspot_deal_with_an_integration_action(tenant, providers, on_commit):
    IntegrationCredentialFactory(tenant=tenant, integration="hubspot")
    account = AccountFactory(tenant=tenant, name="GlobalTech")
    fire_on_churn(tenant, account, {"type": "integration_action", "config": {
        "integration": "hubspot", "action": "create",
        "parameters": {"object": "deals", "properties": {"dealname": "Win back {{ account.name }}"}}}},
        on_commit=on_commit)
    [request] = providers.requests
    assert (request["method"], request["path"]) == ("POST", "/hubspot/crm/v3/objects/deals")
    assert body(request) == {"properties": {"dealname": "Win back GlobalTech"}}


def test_it_fails_the_step_when_the_integration_is_not_connected(tenant, providers, on_commit):
    account = AccountFactory(tenant=tenant)
    fire_on_churn(tenant, account, {"type": "integration_action", "config": {
        "integration": "slack", "action": "post_message", "parameters": {"channel": "#cs", "text": "x"}}},
        on_commit=on_commit)
    step = RunStep.objects.get()
    assert step.status == "failed" and step.error.startswith("slack is not connected for this tenant")
    assert Outbox.objects.count() == 0 and providers.requests == []


def test_it_checks_a_tenant_supplied_base_url_against_the_outbound_policy(tenant, providers, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    IntegrationCredentialFactory(tenant=tenant, integration="salesforce", base_url="http://169.254.169.254/")
    message = services.outbox_enqueue(tenant=tenant, channel="salesforce", target="Contact",
                                      payload={"operation": "create", "fields": {"LastName": "x"}})
    services.deliver()
    message.refresh_from_db()
    assert message.status == Outbox.Status.DEAD and "metadata" in message.error


@pytest.mark.parametrize("action, field", [
    ({"type": "integration_action", "config": {"integration": "teams", "action": "x"}}, "integration"),
    ({"type": "integration_action", "config": {"integration": "slack", "action": "create"}}, "action"),
    ({"type": "integration_action", "config": {"integration": "slack", "action": "post_message",
                                               "parameters": {"text": "x"}}}, "parameters.channel"),
    ({"type": "sync_to_external", "config": {"integration": "salesforce", "mapping": {}}}, "mapping"),
    ({"type": "send_sms", "config": {"recipient": "custom", "message": "x"}}, "phone"),
    ({"type": "send_email", "config": {"template_id": "x", "recipient": "custom", "custom_email": "nope"}},
     "custom_email"),
])
def test_it_rejects_bad_channel_configs_when_the_rule_is_saved(tenant, action, field):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        WorkflowFactory(tenant=tenant, trigger_type="status_change", trigger_config={"to_status": "churned"},
                        actions=[action])
    assert f"actions[0].config.{field}" in error.value.message_dict
