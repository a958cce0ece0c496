"""Telegram: Bot API sendMessage against a local fake Bot API server (docs/delivery.md "Telegram")."""

import datetime
import json
import logging

import pytest
from django.utils import timezone

from delivery import services
from tests.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db

TOKEN = "123456:ABC-def_ghi"


def answer(status, data, headers=None):
    return (status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data).encode())


def refusal(code, description, **parameters):
    data = {"ok": False, "error_code": code, "description": description}
    if parameters:
        data["parameters"] = parameters
    return answer(code, data)


@pytest.fixture
def bot(settings, receiver):
    """A fake Bot API at ``{url}/tg``: answers ``ok: true`` with the sent message unless a test scripts an answer."""
    settings.TELEGRAM_API_URL = receiver.url + "/tg"
    receiver.default = answer(200, {"ok": True, "result": {"message_id": 7, "chat": {"id": 42}, "text": "x"}})
    return receiver


@pytest.fixture
def connected(api):
    """The tenant connects its bot through the credentials API (the token is all Telegram needs)."""
    response = api.post("/api/integration-credentials/", {"integration": "telegram", "token": TOKEN}, format="json")
    assert response.status_code == 201, response.content
    assert "token" not in response.json() and response.json()["connected"] is True
    return response.json()


def send(tenant, chat_id="42", text="Your card was declined. Reply here and we will help."):
    message = services.outbox_enqueue(tenant=tenant, channel="telegram", target=chat_id, payload={"text": text})
    services.deliver()
    return message


def shown(api, message):
    response = api.get(f"/api/outbox/{message.pk}/")
    assert response.status_code == 200
    return response.json()


def test_it_sends_the_contacts_chat_id_and_text_to_the_bots_send_message(tenant, api, bot, connected):
    contact = ContactFactory(account=AccountFactory(tenant=tenant), name="Ada")
    response = api.patch(f"/api/contacts/{contact.pk}/", {"telegram_chat_id": "987654321"}, format="json")
    assert response.status_code == 200 and response.json()["telegram_chat_id"] == "987654321"

    message = send(tenant, chat_id=response.json()["telegram_chat_id"], text="Hi Ada 👋")

    [request] = bot.requests
    assert (request["method"], request["path"]) == ("POST", f"/tg/bot{TOKEN}/sendMessage")
    assert json.loads(request["body"]) == {"chat_id": "987654321", "text": "Hi Ada 👋"}
    assert request["headers"]["content-type"] == "application/json"
    assert "authorization" not in request["headers"]  # the token travels in the path only
    assert shown(api, message)["status"] == "delivered"


def test_it_uses_the_tenants_own_bot_api_server_from_its_credential(tenant, api, settings, receiver):
    settings.TELEGRAM_API_URL = "http://127.0.0.1:9"  # must not be used: the tenant's server wins (and it is loopback)
    receiver.default = answer(200, {"ok": True, "result": {"message_id": 1}})
    response = api.post("/api/integration-credentials/", {
        "integration": "telegram", "token": TOKEN, "base_url": receiver.url + "/local-bot-api"}, format="json")
    assert response.status_code == 201, response.content

    message = send(tenant)

    assert [r["path"] for r in receiver.requests] == [f"/local-bot-api/bot{TOKEN}/sendMessage"]
    assert shown(api, message)["status"] == "delivered"


def test_it_refuses_a_tenant_bot_api_server_the_outbound_policy_forbids(tenant, api, settings, receiver):
    api.post("/api/integration-credentials/", {"integration": "telegram", "token": TOKEN,
                                               "base_url": receiver.url}, format="json")
    settings.OUTBOUND_ALLOW_LOOPBACK = False  # production: a tenant may not point its bot at internal addresses

    message = send(tenant)

    data = shown(api, message)
    assert data["status"] == "dead" and "private or loopback address" in data["error"]
    assert receiver.requests == []


@pytest.mark.parametrize(("code", "description"), [
    (400, "Bad Request: chat not found"),
    (403, "Forbidden: bot was blocked by the user"),
])
def test_it_gives_up_at_once_on_a_chat_telegram_will_never_reach(tenant, api, bot, connected, code, description):
    bot.respond(refusal(code, description))

    message = send(tenant)

    data = shown(api, message)
    assert (data["status"], data["attempts"]) == ("dead", 1)
    assert data["error"] == f"telegram {code}: {description}"
    assert data["last_status_code"] == code
    assert TOKEN not in json.dumps(data)
    assert len(bot.requests) == 1


def test_it_waits_as_long_as_telegrams_retry_after_asks_then_delivers(tenant, api, bot, connected):
    bot.respond(refusal(429, "Too Many Requests: retry after 120", retry_after=120))
    before = timezone.now()

    message = send(tenant)

    data = shown(api, message)
    assert (data["status"], data["error"]) == ("failed", "telegram 429: Too Many Requests: retry after 120")
    wait = datetime.datetime.fromisoformat(data["next_attempt_at"]) - before
    assert datetime.timedelta(seconds=119) < wait < datetime.timedelta(seconds=125)  # not the 5 s backoff
    services.deliver()
    assert len(bot.requests) == 1  # not due yet
    services.deliver(now=timezone.now() + datetime.timedelta(seconds=130))
    assert shown(api, message)["status"] == "delivered" and len(bot.requests) == 2


def test_it_retries_when_the_bot_api_fails_on_its_side(tenant, api, bot, connected):
    bot.respond(refusal(502, "Bad Gateway"))

    message = send(tenant)

    data = shown(api, message)
    assert (data["status"], data["error"]) == ("failed", "telegram 502: Bad Gateway")


def test_it_names_the_new_chat_when_a_group_became_a_supergroup(tenant, api, bot, connected):
    bot.respond(refusal(400, "Bad Request: group chat was upgraded to a supergroup chat",
                        migrate_to_chat_id=-1001234567890))

    data = shown(api, send(tenant, chat_id="-4242"))

    assert data["status"] == "dead" and data["error"].endswith("(the chat is now -1001234567890)")


def test_it_fails_at_once_when_the_tenant_has_not_connected_a_bot(tenant, api, bot):
    data = shown(api, send(tenant))

    assert (data["status"], data["error"]) == ("dead", "telegram is not connected for this tenant (no credential)")
    assert bot.requests == []


def test_it_keeps_the_bot_token_out_of_the_request_log(tenant, bot, connected, caplog):
    with caplog.at_level(logging.INFO, logger="httpx"):
        send(tenant)

    logged = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert logged and "sendMessage" in logged[0]
    assert not any(TOKEN in line for line in logged)


def test_it_prints_instead_of_sending_in_console_mode_like_the_embedded_demo(tenant, api, settings, receiver,
                                                                           capsys):
    settings.TELEGRAM_API_URL = "console"  # the embedded default: no credential needed, nothing leaves the host

    message = send(tenant, chat_id="100000007", text="Here is 20 % off: CRM20-ABCDEFGHJK")

    assert shown(api, message)["status"] == "delivered"
    printed = capsys.readouterr().out
    assert "Telegram message to chat 100000007" in printed and "CRM20-ABCDEFGHJK" in printed
    assert receiver.requests == []
