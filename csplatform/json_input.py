"""Reading JSON from outside, and what the API answers to input Django refuses (``bad_request``, the 400
handler) or to a URL no route matches (``not_found``, the 404 handler). Every API body (``SafeJSONParser``)
and the raw bodies of inbound webhooks (``loads``). What the standard parser lets through and a later step
chokes on is refused here, as a 400 that names the problem, instead of a 500 somewhere deeper:

* nesting deeper than ``MAX_DEPTH`` (the parser itself raises RecursionError near 1,000 levels, and code that
  walks a value recursively, such as the condition language, would do so much earlier);
* NUL characters and unpaired surrogates in strings or keys (PostgreSQL cannot store them in text or jsonb).
"""

from __future__ import annotations

import json

from django.http import JsonResponse
from django.views.defaults import bad_request as html_bad_request
from django.views.defaults import page_not_found as html_page_not_found
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64


class BadJSON(ValueError):
    """The body is not JSON the platform accepts (the message says why)."""


def loads(raw: bytes | str):
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadJSON(f"JSON nested too deeply (at most {MAX_DEPTH} levels)") from None
    check(value)
    return value


def check(value) -> None:
    """Raise BadJSON if ``value`` (parsed JSON) nests too deeply or holds a string PostgreSQL cannot store."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise BadJSON(f"JSON nested too deeply (at most {MAX_DEPTH} levels)")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise BadJSON("JSON strings may not contain NUL characters (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadJSON("JSON strings may not contain unpaired surrogates (\\ud800-\\udfff)") from None


class SafeJSONParser(JSONParser):
    """DRF's JSON parser with ``check``: a 400 naming the problem for what would fail later as a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested too deeply (at most {MAX_DEPTH} levels)") from None
        try:
            check(value)
        except BadJSON as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        return value


def bad_request(request, exception=None):
    """``handler400``: what Django refuses before a view answers (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too
    many fields, a bad Host) is JSON for the API, naming the reason; the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"Bad request: {exception}" if exception else "Bad request."}, status=400)
    return html_bad_request(request, exception)


def not_found(request, exception=None):
    """``handler404``: a URL that no route matches is a JSON 404 on the API (the documented ``Error`` shape),
    the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return html_page_not_found(request, exception)
