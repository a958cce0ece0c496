"""The unsubscribe page behind every email's ``unsubscribe_url`` / ``List-Unsubscribe`` header.

GET shows a confirmation button (link scanners must not unsubscribe anyone); POST opts the contact
out, which is also RFC 8058's one-click unsubscribe that mail clients send. The signed token names the
tenant and the contact, so no login or tenant header is needed. Wire it in a URLconf as
``path("api/unsubscribe/<str:token>/", unsubscribe_view)``.
"""

from django.core import signing
from django.http import HttpResponse, HttpResponseBadRequest
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .email import UNSUBSCRIBE_SALT, unsubscribe

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
