"""Chat steps over Telegram, and the fallback when the contact has no address on the tenant's chat transport:
Telegram, then Slack, then SMS (docs/crm.md "Channels"). The payment rescue's chat step (step 1, +24 h, 20 %
code) is the example; the fake Bot API is the ``receiver`` fixture answering like Telegram."""

import json

import pytest

from crm.models import CRMDiscountCode
from crm.scheduler import execute_pending_steps
from crm.services import crm_settings_for, start_journey
from delivery.models import IntegrationCredential, Outbox
from delivery.services import deliver

from .conftest import T0, hours, reload, steps_of

pytestmark = pytest.mark.django_db

BOT_TOKEN = "4242:bot-token"


@pytest.fixture
def telegram(api, settings, receiver):
    """A fake Bot API, and the tenant's bot connected through the credentials API."""
    settings.TELEGRAM_API_URL = receiver.url
    receiver.default = (200, {}, b'{"ok": true, "result": {"message_id": 1}}')
    response = api.post("/api/integration-credentials/", {"integration": "telegram", "token": BOT_TOKEN},
                        format="json")
    assert response.status_code == 201, response.content
    return receiver


@pytest.fixture
def slack(tenant):
    return IntegrationCredential.objects.create(tenant=tenant, integration="slack", token="xoxb")


def use_chat_transport(tenant, transport):
    row = crm_settings_for(tenant)
    row.chat_transport = transport
    row.save()


def set_chat_id(api, contact, chat_id):
    response = api.patch(f"/api/contacts/{contact.pk}/", {"telegram_chat_id": chat_id}, format="json")
    assert response.status_code == 200, response.content


def run_to_the_chat_step(contact, context=None):
    execution = start_journey(contact, "payment_failed_rescue", context or {}, now=T0)
    execute_pending_steps(now=T0)  # the email
    execute_pending_steps(now=T0 + hours(24))  # the chat, with the 20 % code
    return execution, steps_of(execution)[1]


def message_of(step):
    return Outbox.objects.get(message_id=step.outbox_message_id)


def test_it_sends_the_rescue_chat_and_its_code_to_the_contacts_telegram_chat(tenant, api, contact, telegram):
    use_chat_transport(tenant, "telegram")
    set_chat_id(api, contact, "555000111")

    execution, chat = run_to_the_chat_step(contact)
    deliver()

    assert (chat.status, chat.recipient, chat.error) == ("sent", "555000111", "")
    code = CRMDiscountCode.objects.get(execution=execution)
    assert code.percent == 20 and chat.discount_code == code
    [request] = [r for r in telegram.requests if r["path"] == f"/bot{BOT_TOKEN}/sendMessage"]
    body = json.loads(request["body"])
    assert body["chat_id"] == "555000111" and code.code in body["text"]
    assert message_of(chat).status == Outbox.Status.DELIVERED


def test_it_falls_back_to_sms_when_the_contact_has_no_telegram_chat(tenant, contact, sms, telegram):
    use_chat_transport(tenant, "telegram")  # Ada has a phone but no telegram_chat_id; no Slack either

    _, chat = run_to_the_chat_step(contact)

    message = message_of(chat)
    assert (chat.status, message.channel, message.target) == ("sent", "sms", "+15550101")
    assert chat.error == ("sent over sms instead: telegram: the contact has no telegram_chat_id; "
                          "slack: no chat_id in the journey's context")
    assert chat.discount_code.code in message.payload["body"]
    assert telegram.requests == []


def test_it_tries_slack_before_sms(tenant, contact, sms, slack, telegram):
    use_chat_transport(tenant, "telegram")

    _, chat = run_to_the_chat_step(contact, {"chat_id": "U024BE7LH"})

    message = message_of(chat)
    assert (message.channel, message.target) == ("slack", "U024BE7LH")
    assert chat.error.startswith("sent over slack instead: telegram: the contact has no telegram_chat_id")


def test_it_falls_back_to_telegram_when_the_contact_has_no_phone(tenant, api, contact, sms, telegram):
    contact.phone = ""
    contact.save()
    set_chat_id(api, contact, "555000222")  # the tenant keeps the default: chat over SMS

    execution, chat = run_to_the_chat_step(contact)
    deliver()

    message = message_of(chat)
    assert (message.channel, message.target, message.status) == ("telegram", "555000222", Outbox.Status.DELIVERED)
    chat = steps_of(execution)[1]  # the delivery keeps the note saying which way it went
    assert (chat.status, chat.error) == ("sent", "sent over telegram instead: sms: the contact has no phone number")


def test_it_skips_a_transport_the_tenant_has_not_connected(tenant, api, contact, sms):
    use_chat_transport(tenant, "telegram")
    set_chat_id(api, contact, "555000333")  # but no Telegram bot is connected

    _, chat = run_to_the_chat_step(contact)

    assert message_of(chat).channel == "sms"
    assert chat.error.startswith("sent over sms instead: telegram: not configured "
                                 "(no telegram integration credential for this tenant)")


def test_it_fails_the_step_naming_what_each_transport_lacked_when_none_reaches_the_contact(tenant, contact):
    contact.phone = ""
    contact.save()

    execution, chat = run_to_the_chat_step(contact)

    assert chat.status == "failed"
    assert chat.error == ("no chat address for Ada Lovelace: sms: the contact has no phone number; "
                          "telegram: the contact has no telegram_chat_id; slack: no chat_id in the journey's context")
    assert not CRMDiscountCode.objects.exists()  # no code for a message that never went out
    assert reload(execution).current_step == 2  # the journey goes on to the owner


def test_it_fails_the_step_when_telegram_says_the_bot_was_blocked(tenant, api, contact, telegram):
    use_chat_transport(tenant, "telegram")
    set_chat_id(api, contact, "555000444")
    telegram.default = (403, {}, json.dumps({"ok": False, "error_code": 403,
                                             "description": "Forbidden: bot was blocked by the user"}).encode())

    execution, chat = run_to_the_chat_step(contact)
    deliver()

    assert message_of(chat).status == Outbox.Status.DEAD
    chat = steps_of(execution)[1]
    assert (chat.status, chat.error) == ("failed", "delivery failed: telegram 403: Forbidden: bot was blocked by the user")
