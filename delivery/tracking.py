"""Open and click tracking of emails (docs/delivery.md "Email engagement").

When an email is sent (``EmailTransport``), its HTML part gets a 1×1 pixel at ``/t/o/<token>.gif`` and every
``http(s)`` link becomes ``/t/c/<token>/``. Both tokens are signed with Django's signing (the site's secret
key, a salt of their own) and carry the tenant, the message id and, for a link, the original URL: the
redirect can only go where the email pointed, and a forged or altered token finds nothing (a 404).
Unsubscribe links and ``mailto:`` are left alone. Fetching the pixel or following a link records an
``EmailEvent`` on the message, in the message's tenant.
"""

from __future__ import annotations

import html as html_lib
import re

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.models import Tenant
from csplatform.tenancy import tenant_context

from .models import EmailEvent, Outbox

OPEN_SALT = "delivery.tracking.open"
CLICK_SALT = "delivery.tracking.click"
# A href with an absolute http(s) URL, in double or single quotes (Django's autoescape writes double quotes).
LINK = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
# The smallest transparent GIF (1×1, 43 bytes).
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
         b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def _base() -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/")


def open_url(message: Outbox) -> str:
    token = signing.dumps({"t": str(message.tenant_id), "m": message.message_id}, salt=OPEN_SALT, compress=True)
    return f"{_base()}/t/o/{token}.gif"


def click_url(message: Outbox, url: str) -> str:
    token = signing.dumps({"t": str(message.tenant_id), "m": message.message_id, "u": url}, salt=CLICK_SALT,
                          compress=True)
    return f"{_base()}/t/c/{token}/"


def _tracked(url: str) -> bool:
    """Links we rewrite: not our own unsubscribe page or tracking links (rewriting those would break
    one-click unsubscribe or nest redirects)."""
    own = _base()
    return not (url.startswith(f"{own}/api/unsubscribe/") or url.startswith(f"{own}/t/"))


def instrument_html(html: str, message: Outbox) -> str:
    """The HTML part as sent: links rewritten to signed redirects and the open pixel before ``</body>``
    (or at the end). Attribute values are HTML-escaped, so the URL is unescaped before it is signed."""

    def rewrite(match: re.Match) -> str:
        url = html_lib.unescape(match.group(3))
        if not _tracked(url):
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{html_lib.escape(click_url(message, url))}{match.group(2)}"

    html = LINK.sub(rewrite, html)
    pixel = (f'<img src="{html_lib.escape(open_url(message))}" width="1" height="1" alt="" '
             f'style="display:block;border:0;width:1px;height:1px;" />')
    ends = list(BODY_END.finditer(html))
    if ends:
        at = ends[-1].start()
        return html[:at] + pixel + html[at:]
    return html + pixel


def _message_of(token: str, salt: str) -> tuple[Tenant, Outbox, dict] | None:
    """The email a signed token names, looked up in the token's tenant only; None for a bad token or an
    unknown message."""
    try:
        data = signing.loads(token, salt=salt)
        tenant = Tenant.objects.filter(pk=data["t"]).first()
    except (signing.BadSignature, KeyError, TypeError, ValueError, ValidationError):
        return None
    if tenant is None:
        return None
    with tenant_context(tenant):
        message = (Outbox.objects.for_tenant(tenant)
                   .filter(message_id=data.get("m"), channel=Outbox.Channel.EMAIL).first())
    return (tenant, message, data) if message is not None else None


def _record(message: Outbox, kind: str, *, url: str = "", meta: dict | None = None, at=None) -> EmailEvent:
    payload = message.payload if isinstance(message.payload, dict) else {}
    return EmailEvent.objects.create(tenant_id=message.tenant_id, message=message, contact_id=payload.get("contact_id"),
                                     email=message.target, kind=kind, url=url, meta=meta or {}, at=at or timezone.now())


def email_open_record(message: Outbox, *, meta: dict | None = None, at=None) -> EmailEvent:
    """Record that ``message`` was opened (the pixel; the demo's seed). Call it in the message's tenant context."""
    return _record(message, EmailEvent.Kind.OPEN, meta=meta, at=at)


def open_from_token(token: str, *, meta: dict | None = None) -> EmailEvent | None:
    """Record the open a pixel token names; None (nothing recorded) for a bad token."""
    found = _message_of(token, OPEN_SALT)
    if found is None:
        return None
    tenant, message, _ = found
    with tenant_context(tenant):
        return email_open_record(message, meta=meta)


def click_from_token(token: str, *, meta: dict | None = None) -> tuple[EmailEvent, str] | None:
    """Record the click of a tracked link; returns the event and the URL the email pointed to (from the
    signed token only), or None (nothing recorded) for a bad token."""
    found = _message_of(token, CLICK_SALT)
    if found is None or not isinstance(found[2].get("u"), str) or not _is_web_url(found[2]["u"]):
        return None
    tenant, message, data = found
    with tenant_context(tenant):
        return _record(message, EmailEvent.Kind.CLICK, url=data["u"], meta=meta), data["u"]


def _is_web_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def engagement_annotations() -> dict:
    """Per-message open and click figures, for ``Outbox`` querysets (one join, filtered aggregates)."""
    K = EmailEvent.Kind
    return {
        "opens": models.Count("email_events", filter=models.Q(email_events__kind=K.OPEN)),
        "first_opened_at": models.Min("email_events__at", filter=models.Q(email_events__kind=K.OPEN)),
        "clicks": models.Count("email_events", filter=models.Q(email_events__kind=K.CLICK)),
    }
