"""Pages an email's recipient reaches without logging in: unsubscribe, the open pixel and tracked links.

The unsubscribe page is behind every email's ``unsubscribe_url`` / ``List-Unsubscribe`` header.

GET shows a confirmation button (link scanners must not unsubscribe anyone); POST opts the contact
out, which is also RFC 8058's one-click unsubscribe that mail clients send. The signed token names the
tenant and the contact, so no login or tenant header is needed. Wire it in a URLconf as
``path("api/unsubscribe/<str:token>/", unsubscribe_view)``.

``open_pixel_view`` (``/t/o/<token>.gif``) and ``click_view`` (``/t/c/<token>/``) record an open or a click
(``delivery.tracking``); a token that is not ours or names no message is a 404 and records nothing.
"""

from django.core import signing
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotFound, HttpResponseRedirect
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .email import UNSUBSCRIBE_SALT, unsubscribe
from .tracking import PIXEL, click_from_token, open_from_token

PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;max-width:480px;margin:48px auto;color:#1f2933;">{}</body></html>"""


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_view(request, token: str):
    try:
        signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return HttpResponseBadRequest(PAGE.format("<p>This unsubscribe link is not valid.</p>"))
    if request.method == "GET":
        return HttpResponse(PAGE.format(
            '<p>Stop receiving these emails?</p><form method="post">'
            '<button type="submit" style="padding:8px 16px;">Unsubscribe</button></form>'))
    try:
        contact = unsubscribe(token)
    except Exception:  # the contact or tenant is gone: nothing left to send to
        return HttpResponse(PAGE.format("<p>You are unsubscribed.</p>"))
    return HttpResponse(PAGE.format(f"<p>{escape(contact.email or 'You')} will not receive these emails any more.</p>"))


NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0", "Pragma": "no-cache",
            "Expires": "0"}


def _client_meta(request) -> dict:
    return {"user_agent": request.META.get("HTTP_USER_AGENT", "")[:300]}


@require_http_methods(["GET"])
def open_pixel_view(request, token: str):
    """Every fetch counts as an open (mail clients and image proxies fetch it once per view, at most)."""
    if open_from_token(token, meta=_client_meta(request)) is None:
        return HttpResponseNotFound("Not found", content_type="text/plain")
    response = HttpResponse(PIXEL, content_type="image/gif")
    for name, value in NO_CACHE.items():
        response[name] = value
    return response


@require_http_methods(["GET"])
def click_view(request, token: str):
    """302 to the URL signed into the token (never one from the request), after recording the click."""
    found = click_from_token(token, meta=_client_meta(request))
    if found is None:
        return HttpResponseNotFound("Not found", content_type="text/plain")
    response = HttpResponseRedirect(found[1])
    response["Cache-Control"] = NO_CACHE["Cache-Control"]
    response["Referrer-Policy"] = "no-referrer"  # the tracking token stays out of the target's logs
    return response
