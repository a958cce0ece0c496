"""Transports: one small class per channel that sends one outbox message and says how it went.

A transport gets the ``Outbox`` row (inside the message's tenant context, outside any lock or
transaction) and returns a ``Result``; it never writes the row itself. ``Result.permanent`` marks
failures that no retry can fix (a 4xx other than 408/429, a refused or malformed URL, an opted-out
recipient, a missing credential); everything else is retried on the message's schedule.

HTTP goes through ``http_call``: httpx with connect/read timeouts and an overall deadline, no
redirects, no proxies from the environment, at most a small excerpt of the response read. URLs a
tenant controls (webhook targets, a credential's base URL) pass the outbound policy first and the
connection goes to the checked address (``policy.Target``), with the original Host and TLS name
(SNI + certificate check). Keep-alive clients are kept per worker thread and per (host, address).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import smtplib
import socket
import ssl
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import quote

import certifi
import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from accounts.models import Contact
from csplatform.registry import Registry

from . import feedback, policy, signing, tracking
from .secrets import active_webhook_secrets
from .models import IntegrationCredential
from .retry import parse_retry_after

USER_AGENT = "csplatform-delivery/1.0"
#: Headers a tenant's action config may not set (signing, framing and routing belong to us).
RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "webhook-id", "webhook-timestamp",
                    "webhook-signature"}
READ_LIMIT = 16 * 1024
#: ``TELEGRAM_API_URL`` value that prints Telegram messages instead of sending them.
CONSOLE = "console"


@dataclass
class Result:
    ok: bool
    status_code: int | None = None
    body: str = ""
    error: str = ""
    permanent: bool = False
    retry_after: float | None = None


def classify(status: int, body: str, retry_after: float | None) -> Result:
    if 200 <= status < 300:
        return Result(True, status, body)
    permanent = 400 <= status < 500 and status not in (408, 429)
    return Result(False, status, body, error=f"HTTP {status}", permanent=permanent, retry_after=retry_after)


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(settings.OUTBOUND_TIMEOUT, connect=settings.OUTBOUND_CONNECT_TIMEOUT)


@functools.lru_cache(maxsize=8)
def _tls_context(cafile: str) -> ssl.SSLContext:
    """Built once per CA file (building one costs tens of milliseconds): certifi's roots by default, or
    ``OUTBOUND_CA_BUNDLE`` (a private CA, the tests' own)."""
    return ssl.create_default_context(cafile=cafile or certifi.where())


_clients = threading.local()
MAX_CLIENTS = 32
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def _client(scheme: str, host: str, ip: str, port: int) -> httpx.Client:
    """A keep-alive client per thread and per (host, checked address): a pooled connection is only ever
    reused for the same host name (and TLS name) it was opened for. Least recently used ones are closed."""
    key = (os.getpid(), scheme, host, ip, port, settings.OUTBOUND_CA_BUNDLE, settings.OUTBOUND_TIMEOUT,
           settings.OUTBOUND_CONNECT_TIMEOUT)
    cache = getattr(_clients, "cache", None)
    if cache is None:
        cache = _clients.cache = OrderedDict()
    client = cache.get(key)
    if client is None:
        # TCP_NODELAY: httpcore writes a request's headers and body in two writes; with Nagle's algorithm the
        # body waits for the receiver to acknowledge the headers, which costs a one-message-at-a-time worker
        # about three quarters of its throughput on loopback (bench/delivery_bench.py, "receiver ceiling").
        transport = httpx.HTTPTransport(
            verify=_tls_context(settings.OUTBOUND_CA_BUNDLE), trust_env=False, socket_options=NO_DELAY,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=30))
        client = httpx.Client(timeout=_timeout(), transport=transport, follow_redirects=False, trust_env=False)
        cache[key] = client
        while len(cache) > MAX_CLIENTS:
            cache.popitem(last=False)[1].close()
    cache.move_to_end(key)
    return client


def http_call(method: str, url: str, *, headers: dict, content: bytes = b"", check: bool = True) -> Result:
    """One HTTP request; ``check`` applies the outbound policy (tenant-controlled URLs)."""
    try:
        if check:
            target = policy.check_url(url)
        else:
            policy.parse(url)
            target = None
    except policy.Refused as exc:
        return Result(False, error=f"refused: {exc}", permanent=True)
    except LookupError as exc:
        return Result(False, error=str(exc))
    if target is None:
        parts = httpx.URL(url)
        client = _client(parts.scheme, parts.host, "", parts.port or 0)
        return _request(client, method, url, dict(headers), content, {})
    result = Result(False, error="no address")
    for ip in (target.ip, *target.others):  # every address passed the policy; try the next if one refuses
        pinned = target.with_ip(ip)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        client = _client(target.scheme, target.host, ip, target.port)
        result = _request(client, method, pinned.pinned_url, {**headers, "Host": target.host_header}, content,
                          extensions)
        if not result.error.startswith("ConnectError"):
            break
    return result


def _request(client: httpx.Client, method: str, url: str, headers: dict, content: bytes, extensions: dict) -> Result:
    deadline = time.monotonic() + settings.OUTBOUND_TOTAL_TIMEOUT
    try:
        request = client.build_request(method, url, headers=headers, content=content, extensions=extensions)
        response = client.send(request, stream=True)
        try:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= READ_LIMIT or time.monotonic() > deadline:
                    break
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        return Result(False, error=f"timed out ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Result(False, error=f"{type(exc).__name__}: {exc}")
    body = b"".join(chunks).decode("utf-8", errors="replace")[: settings.OUTBOX_RESPONSE_EXCERPT]
    return classify(response.status_code, body, parse_retry_after(response.headers.get("retry-after"), timezone.now()))


def encode_body(payload) -> bytes:
    """A string payload is sent as it is; anything else as compact JSON with sorted keys (stable bytes)."""
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


class Transport:
    channel = ""

    def send(self, message) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError


#: ``transports.get(channel)`` is None for a channel nobody registered (``services.send`` says so).
transports: Registry[Transport] = Registry("transport", strict=False)


def register(cls):
    transports.register(cls.channel)(cls())
    return cls


@register
class WebhookTransport(Transport):
    """Seed 004/003 webhooks: JSON (or templated) body, Standard Webhooks signature headers."""

    channel = "webhook"

    def send(self, message) -> Result:
        body = encode_body(message.payload)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        headers.update({k: str(v) for k, v in (message.headers or {}).items() if k.lower() not in RESERVED_HEADERS})
        secrets = getattr(message, "signing_secrets", None) or active_webhook_secrets(message.tenant_id)
        headers.update(signing.headers(secrets, message.message_id, body))
        return http_call(message.method or "POST", message.target, headers=headers, content=body)


@register
class EmailTransport(Transport):
    """Through Django's email backend (SMTP in production, console/file embedded, locmem in tests)."""

    channel = "email"

    def send(self, message) -> Result:
        data = message.payload or {}
        if data.get("contact_id"):
            contact = Contact.objects.for_tenant(message.tenant_id).filter(pk=data["contact_id"]).first()
            if contact is not None and contact.email_opt_out:
                return Result(False, error="the recipient has opted out of email", permanent=True)
        # Checked here, at send time, so every sender (rules, CRM journeys, playbooks) skips bounced addresses.
        suppressed = feedback.suppressed_reasons(message.tenant_id, [message.target])
        if suppressed:
            return Result(False, error=f"the recipient is {next(iter(suppressed.values()))}", permanent=True)
        # X-Mailgun-Variables comes back in Mailgun's events as user-variables: it links a bounce to its message.
        headers = {"X-Message-Id": message.message_id,
                   "X-Mailgun-Variables": json.dumps({"message_id": message.message_id}), **(data.get("headers") or {})}
        email = EmailMultiAlternatives(subject=data.get("subject", ""), body=data.get("text", ""),
                                       from_email=data.get("from_email") or settings.DEFAULT_FROM_EMAIL,
                                       to=[message.target], headers=headers)
        if data.get("html"):
            email.attach_alternative(tracking.instrument_html(data["html"], message), "text/html")
        try:
            sent = email.send()
        except smtplib.SMTPRecipientsRefused as exc:
            return Result(False, error=f"recipient refused: {exc}", permanent=True)
        except smtplib.SMTPResponseException as exc:
            return Result(False, status_code=exc.smtp_code, error=f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                          permanent=500 <= exc.smtp_code < 600)
        except (smtplib.SMTPException, OSError) as exc:
            return Result(False, error=f"{type(exc).__name__}: {exc}")
        return Result(bool(sent), error="" if sent else "the email backend sent nothing")


class IntegrationTransport(Transport):
    """HTTP APIs reached with the tenant's ``IntegrationCredential``; base URL from it or settings."""

    setting = ""

    def credential(self, message):
        return IntegrationCredential.objects.for_tenant(message.tenant_id).filter(integration=self.channel).first()

    def unavailable(self, tenant_id) -> str:
        if IntegrationCredential.objects.for_tenant(tenant_id).filter(integration=self.channel).exists():
            return ""
        return f"no {self.channel} integration credential for this tenant"

    def url(self, credential, base: str, path: str) -> str:
        return base + path

    def auth_headers(self, credential) -> dict:
        return {"Authorization": f"Bearer {credential.token}"}

    def call(self, message, method: str, path: str, body: dict) -> Result:
        credential = self.credential(message)
        if credential is None:
            return Result(False, error=f"{self.channel} is not connected for this tenant (no credential)", permanent=True)
        base = (credential.base_url or getattr(settings, self.setting, "") or "").rstrip("/")
        if not base:
            return Result(False, error=f"no base URL for {self.channel} (settings.{self.setting})", permanent=True)
        headers = {**self.auth_headers(credential), "Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Idempotency-Key": message.message_id}
        result = http_call(method, self.url(credential, base, path), headers=headers, content=encode_body(body),
                           check=bool(credential.base_url))
        return self.check_body(result, credential)

    def check_body(self, result: Result, credential) -> Result:
        return result


def channel_unavailable(tenant_id, channel: str) -> str:
    """Why ``channel`` cannot send for this tenant now (e.g. no credential), or "" when it can."""
    transport = transports.get(channel)
    if transport is None:
        return f"there is no {channel} transport"
    check = getattr(transport, "unavailable", None)
    return check(tenant_id) if check else ""


@register
class SlackTransport(IntegrationTransport):
    channel = "slack"
    setting = "SLACK_API_URL"
    RETRYABLE = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}

    def send(self, message) -> Result:
        return self.call(message, "POST", "/chat.postMessage", {"channel": message.target, **(message.payload or {})})

    def check_body(self, result: Result, credential) -> Result:
        if not result.ok:
            return result
        try:
            data = json.loads(result.body or "{}")
        except ValueError:
            return result
        if isinstance(data, dict) and data.get("ok") is False:
            error = str(data.get("error") or "unknown_error")
            return Result(False, result.status_code, result.body, error=f"slack: {error}",
                          permanent=error not in self.RETRYABLE)
        return result


@register
class SmsTransport(IntegrationTransport):
    """A generic JSON SMS provider: ``POST {base}/messages {"to", "from", "body"}``."""

    channel = "sms"
    setting = "SMS_API_URL"

    def send(self, message) -> Result:
        credential = self.credential(message)
        sender = (credential.config or {}).get("from") if credential else None
        return self.call(message, "POST", "/messages", {"to": message.target, "from": sender or settings.SMS_FROM,
                                                        "body": (message.payload or {}).get("body", "")})


@register
class TelegramTransport(IntegrationTransport):
    """Bot API ``sendMessage``: ``POST {base}/bot{token}/sendMessage {"chat_id", "text"}``.

    Telegram puts the bot token in the path, so it is masked in every error and response kept (and in
    httpx's request log). An ``ok: false`` answer is a failure: 4xx ("chat not found", "bot was blocked")
    is permanent, 429 and 5xx are retried, ``parameters.retry_after`` counts like ``Retry-After``. With
    ``TELEGRAM_API_URL = "console"`` (the embedded default) messages are printed instead, as the console
    email backend does: nothing leaves the machine and no credential is needed."""

    channel = "telegram"
    setting = "TELEGRAM_API_URL"
    MAX_TEXT = 4096  # Telegram refuses longer messages (a permanent 400)

    @staticmethod
    def printing(credential=None) -> bool:
        return settings.TELEGRAM_API_URL == CONSOLE and not (credential and credential.base_url)

    def unavailable(self, tenant_id) -> str:
        return "" if self.printing() else super().unavailable(tenant_id)

    def url(self, credential, base: str, path: str) -> str:
        return f"{base}/bot{quote(credential.token, safe=':')}{path}"

    def auth_headers(self, credential) -> dict:
        return {}

    def send(self, message) -> Result:
        text = str((message.payload or {}).get("text", ""))[: self.MAX_TEXT]
        if self.printing(self.credential(message)):
            sys.stdout.write(f"Telegram message to chat {message.target} (console, not sent; {message.message_id}):\n"
                             f"{text}\n{'-' * 79}\n")
            sys.stdout.flush()
            return Result(True, body="printed to the console (TELEGRAM_API_URL=console)")
        return self.call(message, "POST", "/sendMessage", {"chat_id": message.target, "text": text})

    def check_body(self, result: Result, credential) -> Result:
        result.body, result.error = (_mask(text, credential.token) for text in (result.body, result.error))
        try:
            data = json.loads(result.body or "{}")
        except ValueError:
            return result
        if not isinstance(data, dict) or data.get("ok") is not False:
            return result
        code = data.get("error_code") if isinstance(data.get("error_code"), int) else result.status_code or 0
        parameters = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
        error = f"telegram {code}: {data.get('description') or 'unknown error'}"
        if parameters.get("migrate_to_chat_id"):
            error += f" (the chat is now {parameters['migrate_to_chat_id']})"
        waits = [w for w in (result.retry_after, parameters.get("retry_after")) if isinstance(w, (int, float))]
        return Result(False, result.status_code, result.body, error=error,
                      permanent=400 <= code < 500 and code not in (408, 429), retry_after=max(waits, default=None))


def _mask(text: str, token: str) -> str:
    return text.replace(token, "***").replace(quote(token, safe=":"), "***") if token else text


class _MaskBotTokens(logging.Filter):
    """httpx logs every request's URL at INFO; a Telegram URL carries the bot token in its path."""

    PATH = re.compile(r"/bot[^/]+/")

    def filter(self, record) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.PATH.sub("/bot***/", str(a)) if isinstance(a, httpx.URL) else a
                                for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_MaskBotTokens())


@register
class HubSpotTransport(IntegrationTransport):
    """CRM v3 objects: upsert by an id property (batch upsert of one), create, or update."""

    channel = "hubspot"
    setting = "HUBSPOT_API_URL"

    def send(self, message) -> Result:
        data = message.payload or {}
        obj = quote(message.target, safe="")
        properties = data.get("properties") or {}
        operation = data.get("operation", "upsert")
        if operation == "create" or (operation == "upsert" and not data.get("id")):
            return self.call(message, "POST", f"/crm/v3/objects/{obj}", {"properties": properties})
        if operation == "update":
            query = f"?idProperty={quote(data['id_property'])}" if data.get("id_property") else ""
            return self.call(message, "PATCH", f"/crm/v3/objects/{obj}/{quote(str(data['id']), safe='')}{query}",
                             {"properties": properties})
        return self.call(message, "POST", f"/crm/v3/objects/{obj}/batch/upsert", {"inputs": [
            {"idProperty": data.get("id_property") or "email", "id": str(data["id"]), "properties": properties}]})


@register
class SalesforceTransport(IntegrationTransport):
    """REST sObjects: upsert by an external id field, create, or update by record id."""

    channel = "salesforce"
    setting = "SALESFORCE_INSTANCE_URL"

    def send(self, message) -> Result:
        data = message.payload or {}
        root = f"/services/data/{settings.SALESFORCE_API_VERSION}/sobjects/{quote(message.target, safe='')}"
        fields = data.get("fields") or {}
        operation = data.get("operation", "upsert")
        if operation == "create" or (operation == "upsert" and not data.get("id")):
            return self.call(message, "POST", root + "/", fields)
        record = quote(str(data["id"]), safe="")
        if operation == "update":
            return self.call(message, "PATCH", f"{root}/{record}", fields)
        field = quote(data.get("external_id_field") or "Email", safe="")
        return self.call(message, "PATCH", f"{root}/{field}/{record}", fields)

