"""Delivery actions from real rules: the message is written in the run's transaction, sent after commit."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import services as account_services
from automation import engine
from delivery import secrets
from automation.models import Event, Run, RunStep
from delivery.models import Outbox
from tests.factories import AccountFactory, MembershipFactory, WorkflowFactory, health_score

pytestmark = pytest.mark.django_db


def churn_rule(tenant, *actions, **data):
    return WorkflowFactory(tenant=tenant, trigger_type="status_change", trigger_config={"to_status": "churned"},
                           actions=list(actions), **data)


def test_it_sends_seed_004s_payload_when_a_health_score_drops(tenant, receiver, on_commit):
    owner = MembershipFactory(tenant=tenant, user__username="admin@acme.com", user__first_name="Alice",
                              user__last_name="Administrator").user
    account = AccountFactory(tenant=tenant, owner=owner, name="TechStart Solutions", arr=Decimal("85000"),
                             renewal_date=datetime.date(2025, 3, 1))
    health_score(account, usage_score=65, engagement_score=65, support_sentiment_score=65, adoption_score=65)
    WorkflowFactory(tenant=tenant, trigger_type="health_score_change",
                    trigger_config={"threshold": 40, "direction": "decrease"},
                    actions=[{"type": "webhook", "config": {"url": receiver.url + "/webhook/health-alert"}}])
    receiver.secrets = secrets.active_webhook_secrets(tenant.pk)
    with on_commit():
        health_score(account, usage_score=25, engagement_score=30, support_sentiment_score=40, adoption_score=35)
    [request] = receiver.requests
    assert request["verified"] is True and request["path"] == "/webhook/health-alert"
    body = receiver.json()
    assert body["event_type"] == "health_score_drop"
    assert body["account"] == {"id": str(account.pk), "name": "TechStart Solutions", "arr": 85000.0,
                               "renewal_date": "2025-03-01", "status": "active", "industry": "Software"}
    assert body["health_score"] == {"current_score": 31.25, "previous_score": 65.0, "risk_level": "Critical",
                                    "usage_score": 25.0, "engagement_score": 30.0, "support_sentiment_score": 40.0,
                                    "adoption_score": 35.0}
    assert body["csm"] == {"email": "admin@acme.com", "name": "Alice Administrator"}
    message = Outbox.objects.get()
    step = RunStep.objects.get(action_type="webhook")
    assert (message.status, message.run_id, message.run_step_id) == (Outbox.Status.DELIVERED, step.run_id, step.pk)
    assert step.output["messages"][0]["message_id"] == message.message_id == request["headers"]["webhook-id"]


def test_it_writes_the_message_in_the_runs_transaction_and_nothing_when_it_rolls_back(tenant, receiver,
                                                                                      django_capture_on_commit_callbacks):
    account = AccountFactory(tenant=tenant)
    churn_rule(tenant, {"type": "webhook", "config": {"url": receiver.url}})
    with django_capture_on_commit_callbacks(execute=False):  # the event is written, not processed
        account_services.account_save(account=account, changes={"status": "churned"})
    event = Event.objects.get()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), django_capture_on_commit_callbacks(execute=False) as dispatched:
        with transaction.atomic():
            engine.process_event(tenant.pk, event.pk)
            assert Outbox.objects.filter(status="pending").count() == 1 and Run.objects.count() == 1
            raise Boom
    assert (Outbox.objects.count(), Run.objects.count(), dispatched) == (0, 0, [])
    assert Event.objects.get().processed_at is None and receiver.requests == []

    with django_capture_on_commit_callbacks(execute=True) as dispatched:
        engine.process_event(tenant.pk, event.pk)
        assert receiver.requests == []  # handed over only when the transaction commits
    handed_over = [c for c in dispatched if getattr(c, "func", c).__name__ == "dispatch"]  # (and last_run_at)
    assert len(handed_over) == 1 and Outbox.objects.get().status == Outbox.Status.DELIVERED
    assert len(receiver.requests) == 1


def test_it_renders_a_templated_body_and_headers(tenant, receiver, on_commit):
    account = AccountFactory(tenant=tenant, name="Smith & Jones <GmbH>")
    churn_rule(tenant, {"type": "webhook", "config": {
        "url": receiver.url + "/deals", "method": "PUT", "headers": {"X-Api-Key": "k-{{ account.name|slugify }}"},
        "body": {"text": "Account {{ account.name }} churned", "entity_id": "{{ entity_id }}",
                 "on": "{{ entity_type }}:{{ trigger_event }}", "fixed": 3, "tags": ["{{ account.status }}"]}}})
    with on_commit():
        account_services.account_save(account=account, changes={"status": "churned"})
    [request] = receiver.requests
    assert request["method"] == "PUT" and request["headers"]["x-api-key"] == "k-smith-jones-gmbh"
    assert receiver.json() == {"text": "Account Smith & Jones <GmbH> churned",  # JSON: not HTML-escaped
                               "entity_id": str(account.pk), "on": "account:status_change", "fixed": 3,
                               "tags": ["churned"]}


def test_it_uses_the_rules_retry_configuration(tenant):
    account = AccountFactory(tenant=tenant)
    churn_rule(tenant, {"type": "webhook", "config": {"url": "http://127.0.0.1:9/x"}}, allow_retries=True,
               retry_configuration={"max_retries": 2, "delay_minutes": 1, "backoff_multiplier": 3, "max_delay_hours": 1})
    with transaction.atomic():
        account_services.account_save(account=account, changes={"status": "churned"})
        engine.process_event(tenant.pk, Event.objects.get().pk)
    message = Outbox.objects.get()
    assert message.max_attempts == 3
    assert message.retry_policy == {"initial": 60.0, "multiplier": 3.0, "max": 3600.0}


def test_it_fails_the_step_clearly_when_a_templated_url_renders_to_nothing(tenant, on_commit):
    account = AccountFactory(tenant=tenant)
    churn_rule(tenant, {"type": "webhook", "config": {"url": "{{ event.callback_url }}"}})
    with on_commit():
        account_services.account_save(account=account, changes={"status": "churned"})
    step = RunStep.objects.get()
    assert step.status == "failed" and "is not usable" in step.error
    assert Outbox.objects.count() == 0


@pytest.mark.parametrize("config, field, message", [
    ({"url": "http://169.254.169.254/latest/meta-data"}, "url", "metadata"),
    ({"url": "http://metadata.google.internal/x"}, "url", "metadata host"),
    ({"url": "file:///etc/passwd"}, "url", "only http and https"),
    ({"url": "https://hooks.example.com/x", "method": "GET"}, "method", "must be one of"),
    ({"url": "https://hooks.example.com/x", "headers": {"webhook-signature": "v1,forged"}}, "headers", "cannot be set"),
    ({"url": "https://hooks.example.com/x", "payload": {"t": "{% load x %}"}}, "payload.t", "only {{ variables }}"),
    ({"url": "https://hooks.example.com/x", "retry_count": 99}, "retry_count", "from 0 to 10"),
])
def test_it_rejects_a_bad_webhook_config_when_the_rule_is_saved(tenant, config, field, message):
    with pytest.raises(ValidationError) as error:
        churn_rule(tenant, {"type": "webhook", "config": config})
    errors = error.value.message_dict
    assert message in errors[f"actions[0].config.{field}"][0]
