"""Delivery feedback: how an outbox message ended is announced (``outbox_message_finished``) and the CRM
records it on the step execution that sent it (automation never imports crm)."""

import pytest
from django.core import mail

from delivery import services
from delivery.signals import outbox_message_finished
from delivery.models import Outbox
from crm.models import CRMStepExecution
from crm.scheduler import execute_pending_steps
from crm.services import start_journey
from tests.crm.conftest import T0
from tests.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def contact(tenant):
    account = AccountFactory(tenant=tenant, name="Globex")
    return ContactFactory(account=account, name="Ada Lovelace", email="ada@globex.test", is_primary=True)


def email_step(tenant, contact):
    execution = start_journey(contact, "payment_failed_rescue", {"amount": "49.00"}, now=T0)
    assert execute_pending_steps(now=T0)["sent"] == 1
    step = CRMStepExecution.objects.get(execution=execution, step_order=0)
    assert step.status == "sent" and step.outbox_message_id
    return step, Outbox.objects.get(message_id=step.outbox_message_id)


def test_a_delivered_crm_email_leaves_its_step_sent(tenant, contact):
    step, message = email_step(tenant, contact)
    services.deliver()
    step.refresh_from_db()
    assert (step.status, step.error) == ("sent", "") and len(mail.outbox) == 1


def test_a_dead_crm_email_fails_its_step_with_the_reason_and_a_requeued_delivery_restores_it(tenant, contact):
    step, message = email_step(tenant, contact)
    contact.email_opt_out = True  # checked again when the email is sent: a permanent failure
    contact.save()
    services.deliver()
    step.refresh_from_db()
    assert step.status == "failed"
    assert step.error == "delivery failed: the recipient has opted out of email"

    contact.email_opt_out = False
    contact.save()
    services.outbox_requeue(message)
    services.deliver()
    step.refresh_from_db()
    assert (step.status, step.error) == ("sent", "")


def test_it_announces_each_final_outcome_once_and_survives_a_failing_receiver(tenant, receiver):
    seen = []

    def listen(sender, message, status, **kwargs):
        seen.append((message.message_id, status))

    def broken(sender, message, status, **kwargs):
        Outbox.objects.filter(pk=message.pk).update(error="written by a broken receiver")
        raise RuntimeError("boom")

    receiver.respond(500, 200, 404)
    outbox_message_finished.connect(listen)
    outbox_message_finished.connect(broken)
    try:
        first = services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={},
                                        retry_policy=({"schedule": [0]}, 3))
        services.deliver()  # 500 (failed: not final, not announced), then at once 200
        second = services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={})
        services.deliver()  # 404: dead
    finally:
        outbox_message_finished.disconnect(listen)
        outbox_message_finished.disconnect(broken)
    assert seen == [(first.message_id, "delivered"), (second.message_id, "dead")]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.error, second.status, second.error) == ("delivered", "", "dead", "HTTP 404")


def test_the_sweeper_announces_a_message_it_gives_up_on(tenant, settings):
    from datetime import timedelta

    from django.utils import timezone

    seen = []
    outbox_message_finished.connect(lambda sender, message, status, **kw: seen.append(status), weak=False,
                                    dispatch_uid="test-sweeper")
    try:
        message = services.outbox_enqueue(tenant=tenant, channel="webhook", target="https://example.com/h",
                                          payload={}, retry_policy=({}, 1), dispatch=False)
        Outbox.objects.filter(pk=message.pk).update(status="sending", attempts=1, claimed_at=timezone.now())
        services.reclaim_stuck(now=timezone.now() + timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT + 1))
    finally:
        outbox_message_finished.disconnect(dispatch_uid="test-sweeper")
    assert seen == ["dead"]


def test_a_crm_email_to_a_suppressed_address_is_skipped_with_the_reason(tenant, contact):
    from delivery.feedback import suppression_add  # noqa: PLC0415 - only this test suppresses

    suppression_add(tenant=tenant, email=contact.email, reason="hard_bounce")
    execution = start_journey(contact, "payment_failed_rescue", {"amount": "49.00"}, now=T0)
    execute_pending_steps(now=T0)
    step = CRMStepExecution.objects.get(execution=execution, step_order=0)
    assert step.status == "skipped" and "suppressed" in step.error and not step.outbox_message_id
    assert mail.outbox == []
