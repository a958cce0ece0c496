"""A request id for every request, on every log line it causes and in the response's ``X-Request-ID``.

An incoming ``X-Request-ID`` (set by the proxy or the caller) is kept when it is sane (1-128 letters,
digits and ``._:-``), so one id follows a call through the proxy's, the platform's and the caller's logs;
anything else is replaced by a new uuid4. The middleware runs first, so every layer below it logs with
the id. It writes one access line per request (``csplatform.requests``: method, path, status, duration,
tenant), at DEBUG for probes, scrapes and static files, and Django's own 4xx/5xx line while the id is
still set (Django would write it after the middleware has returned).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from django.conf import settings
from django.utils.log import log_response

from .logs import request_id

HEADER = "X-Request-ID"
SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
QUIET_PATHS = ("/metrics", "/healthz", "/readyz")
log = logging.getLogger("csplatform.requests")


def request_id_for(incoming: str | None) -> str:
    """The caller's id if it is sane, else a new one."""
    return incoming if incoming and SANE.fullmatch(incoming) else uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.quiet = (*QUIET_PATHS, "/" + settings.STATIC_URL.lstrip("/"))

    def __call__(self, request):
        rid = request_id_for(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = rid
        token = request_id.set(rid)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[HEADER] = rid
            self._log(request, response, time.monotonic() - started)
            return response
        finally:
            request_id.reset(token)

    def _log(self, request, response, elapsed: float) -> None:
        tenant = getattr(request, "tenant", None)  # set when the API resolved the request's tenant
        level = logging.DEBUG if request.path.startswith(self.quiet) else logging.INFO
        log.log(level, "%s %s %s %.1fms", request.method, request.path, response.status_code, elapsed * 1000,
                extra={"method": request.method, "path": request.path, "status_code": response.status_code,
                       "duration_ms": round(elapsed * 1000, 1),
                       "tenant_id": str(tenant.pk) if tenant is not None else None})
        if response.status_code >= 400:
            # Django's "Not Found: /x" line, written here so it carries the id (it then skips its own).
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
