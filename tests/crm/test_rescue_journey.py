"""Issue 7's "Done when": payment_failed_rescue across simulated time (the clock is the ``now`` passed to
the scheduler; nothing sleeps)."""

import datetime
import re

import pytest

from crm import triggers
from crm.models import CRMDiscountCode, CRMPlaybookExecution
from crm.scheduler import execute_pending_steps
from crm.services import execution_convert, start_journey

from .conftest import T0, hours, outbox, reload, steps_of

pytestmark = pytest.mark.django_db


def test_it_runs_the_rescue_email_at_once_chat_with_code_deferred_by_quiet_hours_then_owner_then_completes(
        tenant, account, contact, sms, owner):
    execution = start_journey(contact, "payment_failed_rescue", {"amount": "49.00"}, now=T0)
    assert execution.status == "active" and execution.next_step_at == T0

    # the email, at once
    assert execute_pending_steps(now=T0)["sent"] == 1
    [email] = outbox(tenant)
    assert (email.channel, email.target) == ("email", "ada@globex.test")
    assert "Globex" in email.payload["subject"] and "49.00" in email.payload["text"]
    assert "<a href" in email.payload["html"] and email.idempotency_key == f"crm:{execution.pk}:0"
    execution = reload(execution)
    assert (execution.current_step, execution.next_step_at) == (1, T0 + hours(24))
    upcoming = steps_of(execution)[1]
    assert (upcoming.channel, upcoming.status, upcoming.scheduled_for) == ("chat", "scheduled", T0 + hours(24))

    # The contact asks for quiet afternoons (13:00-16:00 New York): the chat falls inside them.
    contact.quiet_hours_start, contact.quiet_hours_end = datetime.time(13), datetime.time(16)
    contact.save()
    assert execute_pending_steps(now=T0 + hours(23.9)) == {"executions": 0, "errors": 0}
    assert execute_pending_steps(now=T0 + hours(24))["deferred"] == 1
    window_end = T0 + hours(26)  # 16:00 in New York = 20:00 UTC
    chat = steps_of(execution)[1]
    assert (chat.status, chat.scheduled_for) == ("deferred", window_end)
    assert reload(execution).next_step_at == window_end and len(outbox(tenant)) == 1  # deferred, not sent
    assert execute_pending_steps(now=window_end - hours(0.1)) == {"executions": 0, "errors": 0}

    # the chat message with a 20 % code at the end of the quiet hours
    assert execute_pending_steps(now=window_end)["sent"] == 1
    sms_message = outbox(tenant, channel="sms")[0]
    assert sms_message.target == "+15550101"
    code = CRMDiscountCode.objects.get()
    assert re.fullmatch(r"CRM20-[A-Z2-9]{10}", code.code) and code.percent == 20
    assert code.contact == contact and code.execution_id == execution.pk
    assert code.expires_at == window_end + datetime.timedelta(days=7)
    assert code.code in sms_message.payload["body"]
    chat = steps_of(execution)[1]
    assert (chat.status, chat.sent_at, chat.discount_code) == ("sent", window_end, code)
    assert chat.outbox_message_id == sms_message.message_id

    # the owner notification 48 hours later, with the contact and the code, then completion
    assert execute_pending_steps(now=window_end + hours(47.9)) == {"executions": 0, "errors": 0}
    assert execute_pending_steps(now=window_end + hours(48))["sent"] == 1
    owner_mail = outbox(tenant, channel="email", target=owner.email)[0]
    assert "Ada Lovelace" in owner_mail.payload["subject"]
    assert code.code in owner_mail.payload["text"] and "ada@globex.test" in owner_mail.payload["text"]
    execution = reload(execution)
    assert (execution.status, execution.completed_at, execution.next_step_at) == (
        "completed", window_end + hours(48), None)
    assert [s.status for s in steps_of(execution)] == ["sent", "sent", "sent"]
    assert execute_pending_steps(now=window_end + hours(500)) == {"executions": 0, "errors": 0}


def test_it_stops_the_remaining_steps_when_the_rescue_converts_in_between(tenant, account, contact, sms):
    execution = start_journey(contact, "payment_failed_rescue", now=T0)
    execute_pending_steps(now=T0)
    execution_convert(execution=execution, value="49.00", now=T0 + hours(3))
    for at in (24, 72, 200):
        assert execute_pending_steps(now=T0 + hours(at)) == {"executions": 0, "errors": 0}
    execution = reload(execution)
    assert (execution.status, str(execution.conversion_value), execution.converted_at) == (
        "converted", "49.00", T0 + hours(3))
    assert [s.status for s in steps_of(execution)] == ["sent", "cancelled"]  # the chat never goes out
    assert len(outbox(tenant)) == 1 and not CRMDiscountCode.objects.exists()


def test_it_cancels_a_deferred_step_when_the_journey_converts(tenant, account, contact, sms):
    execution = start_journey(contact, "payment_failed_rescue", now=T0)
    execute_pending_steps(now=T0)
    contact.quiet_hours_start, contact.quiet_hours_end = datetime.time(13), datetime.time(16)
    contact.save()
    execute_pending_steps(now=T0 + hours(24))  # 14:00 in New York: deferred to 16:00
    assert steps_of(execution)[1].status == "deferred"
    execution_convert(execution=execution, now=T0 + hours(25))
    assert steps_of(execution)[1].status == "cancelled"
    assert execute_pending_steps(now=T0 + hours(26)) == {"executions": 0, "errors": 0}


def test_it_converts_the_rescue_automatically_when_the_payment_succeeds(tenant, account, contact, sms,
                                                                       django_capture_on_commit_callbacks):
    from django.test import Client

    def recovered() -> float:
        for line in Client().get("/metrics").content.decode().splitlines():
            if line.startswith("crm_rescue_recovered_total "):
                return float(line.split()[-1])
        return 0.0

    before = recovered()
    with django_capture_on_commit_callbacks(execute=True):  # the engine processes the event on commit
        triggers.payment_failed(account, amount="99.00", invoice_id="in_1")
    execution = CRMPlaybookExecution.objects.get()
    assert execution.contact == contact and execution.context["invoice_id"] == "in_1"
    assert steps_of(execution)[0].status == "sent"  # the email "at once": right after the start committed
    with django_capture_on_commit_callbacks(execute=True):
        triggers.payment_succeeded(account, amount="99.00", invoice_id="in_1")
    execution = reload(execution)
    assert (execution.status, str(execution.conversion_value)) == ("converted", "99.00")
    assert recovered() == before + 1
    with django_capture_on_commit_callbacks(execute=True):
        triggers.payment_succeeded(account, amount="99.00")
    assert recovered() == before + 1  # once


def test_it_records_a_failing_step_and_goes_on_to_the_next(tenant, account, contact, sms):
    contact.phone = ""
    contact.save()
    execution = start_journey(contact, "payment_failed_rescue", now=T0)
    execute_pending_steps(now=T0)
    assert execute_pending_steps(now=T0 + hours(24))["failed"] == 1
    chat = steps_of(execution)[1]
    assert chat.status == "failed" and "no chat" in chat.error
    assert not CRMDiscountCode.objects.exists()  # no code for a message that was not sent
    execution = reload(execution)
    assert (execution.status, execution.current_step, execution.next_step_at) == ("active", 2, T0 + hours(72))
    execute_pending_steps(now=T0 + hours(72))
    assert reload(execution).status == "completed"


def test_it_records_an_unexpected_error_and_never_leaves_the_execution_stuck(tenant, account, contact, monkeypatch):
    import crm.scheduler

    def broken(*args, **kwargs):
        raise RuntimeError("transport exploded")

    monkeypatch.setattr(crm.scheduler, "send", broken)
    execution = start_journey(contact, "churn_risk", now=T0)
    result = execute_pending_steps(now=T0)
    assert result["failed"] == 1
    step = steps_of(execution)[0]
    assert step.status == "failed" and "transport exploded" in step.error
    assert reload(execution).next_step_at == T0 + hours(48)


def test_it_fails_chat_without_a_chat_transport_instead_of_pretending(tenant, account, contact):
    execution = start_journey(contact, "milestone_congrats", now=T0)  # step 0: chat; no SMS credential
    execute_pending_steps(now=T0)
    step = steps_of(execution)[0]
    assert step.status == "failed" and "not configured" in step.error
    assert reload(execution).current_step == 1


def test_it_completes_every_default_journey(tenant, account, contact, sms):
    executions = [start_journey(contact, name, now=T0) for name in (
        "payment_failed_rescue", "trial_ending", "inactivity_nudge", "winback", "milestone_congrats", "churn_risk")]
    for day in range(12):
        execute_pending_steps(now=T0 + hours(24 * day))
    assert {reload(e).status for e in executions} == {"completed"}
    assert CRMPlaybookExecution.objects.count() == 6
    sent = [s for e in executions for s in steps_of(e)]
    assert len(sent) == 13 and {s.status for s in sent} == {"sent"}
    assert sorted(CRMDiscountCode.objects.values_list("percent", flat=True)) == [10, 15, 20, 30]
