"""One guard for every password form (issue 15): the API token login, DRF's browsable-API login and the admin
login. Failed attempts are counted per client address and per username; past ``LOGIN_FAILURE_LIMIT`` failures
in ``LOGIN_FAILURE_WINDOW`` seconds on either, the form answers 429 until the window has passed, whatever the
password. A success clears the username's count.

The client address is ``REMOTE_ADDR``: an ``X-Forwarded-For`` header is only believed behind
``TRUSTED_PROXY_COUNT`` proxies (then the address the first of them saw), so a client cannot pick a new
identity per request. Counts live in the cache; with the cache down the guard lets attempts through and
logs (the per-address DRF throttle and the password hashing cost still apply).
"""

from __future__ import annotations

import hashlib
import json
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse

log = logging.getLogger(__name__)


def client_ip(request) -> str:
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= trusted:
            return hops[-trusted]
    return request.META.get("REMOTE_ADDR", "")


def _username(request) -> str:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):
            return ""
        value = body.get("username", "") if isinstance(body, dict) else ""
    else:
        value = request.POST.get("username", "")
    return str(value).strip().lower()[:254]


def _keys(request) -> list[str]:
    keys = [f"login-fail:ip:{client_ip(request)}"]
    username = _username(request)
    if username:
        keys.append("login-fail:user:" + hashlib.sha256(username.encode()).hexdigest())
    return keys


class LoginGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.paths = {"/api/auth/token/", "/api/auth/login/", "/" + settings.ADMIN_URL + "login/"}

    def __call__(self, request):
        if request.method != "POST" or request.path not in self.paths:
            return self.get_response(request)
        keys = _keys(request)
        try:
            counts = cache.get_many(keys)
        except Exception:  # the cache is down: no guard rather than no login
            log.warning("login guard: cache unavailable, attempts are not counted")
            return self.get_response(request)
        if any(count >= settings.LOGIN_FAILURE_LIMIT for count in counts.values()):
            return self._refused(request)
        response = self.get_response(request)
        succeeded = response.status_code == 200 if request.path == "/api/auth/token/" else response.status_code == 302
        try:
            if succeeded:
                cache.delete_many(keys[1:])
            else:
                for key in keys:
                    cache.add(key, 0, settings.LOGIN_FAILURE_WINDOW)
                    cache.incr(key)
        except Exception:
            log.warning("login guard: cache unavailable, an attempt was not counted")
        return response

    def _refused(self, request):
        retry = str(settings.LOGIN_FAILURE_WINDOW)
        message = "Too many failed logins from this address or for this user; try again later."
        response = (JsonResponse({"detail": message}, status=429) if request.path.startswith("/api/")
                    else HttpResponse(message, status=429, content_type="text/plain"))
        response["Retry-After"] = retry
        return response
