"""Logging: every line says which request (or celery task) and which tenant it belongs to.

* ``logging_config(level, fmt)`` builds ``settings.LOGGING`` from ``LOG_LEVEL`` and ``LOG_FORMAT``
  (``text``: one readable line; ``json``: python-json-logger, one JSON object a line).
* ``request_id``: a context variable, set by ``csplatform.request_id.RequestIdMiddleware`` for a request
  and by the celery signal receivers below for a task (the task id).
* ``ContextFilter`` (on the handler, so on every record whatever its logger) adds ``request_id`` and
  ``tenant_id``: the tenant of ``csplatform.tenancy``'s current context, else the tenant the API resolved
  for the record's ``request`` (Django's own request log lines are written after the view has left its
  tenant context), else none.
* ``did_work`` / ``log_summary``: periodic work logs one INFO line when it did something, DEBUG otherwise.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
from typing import Any

from celery import signals
from django.core.exceptions import ImproperlyConfigured

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s tenant=%(tenant_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant_id)s"
# Record attributes left out of JSON lines: Django's request log lines carry the request object itself.
JSON_SKIPPED = ["request", "server_time"]


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``tenant_id`` to every record (``missing`` when unknown); never drops one."""

    def __init__(self, missing: str | None = None):
        super().__init__()
        self.missing = missing

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get() or self.missing
        if getattr(record, "tenant_id", None) is None:
            record.tenant_id = _tenant_id(record) or self.missing
        return True


def _tenant_id(record: logging.LogRecord) -> str | None:
    # Logging is configured before the app registry is ready; tenancy defines a model, so it is read late.
    from .tenancy import current_tenant_id  # see the comment above

    tenant_id = current_tenant_id()
    if tenant_id is None:
        tenant = getattr(getattr(record, "request", None), "tenant", None)
        tenant_id = str(tenant.pk) if tenant is not None else None
    return tenant_id


def logging_config(level: str = "INFO", fmt: str = "text") -> dict:
    """``settings.LOGGING``: one console handler (stderr) with the context filter, for every logger."""
    level = level.upper()
    if fmt not in FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "json":
        formatter = {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FIELDS,
                     "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                     "reserved_attrs": [*_reserved(), *JSON_SKIPPED]}
    else:
        formatter = {"format": TEXT_FORMAT}
    handler = {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["context"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "csplatform.logs.ContextFilter", "missing": None if fmt == "json" else "-"}},
        "formatters": {fmt: formatter},
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": level},
        # Django's own loggers write through the same handler (its defaults add a second, unformatted one).
        "loggers": {name: {"handlers": ["console"], "level": level, "propagate": False}
                    for name in ("django", "django.server")}
        # httpx logs every request at INFO: at 1,000 deliveries/s that line costs a worker ~100 us per message
        # (docs/performance.md "Delivery"); the outbox records every attempt anyway.
        | {name: {"handlers": ["console"], "level": "DEBUG" if level == "DEBUG" else "WARNING", "propagate": False}
           for name in ("httpx", "httpcore")},
    }


def _reserved() -> list[str]:
    from pythonjsonlogger.core import RESERVED_ATTRS  # only when JSON lines are asked for

    return list(RESERVED_ATTRS)


# --- periodic work: one INFO line when it did something -----------------------------------------------

def did_work(result: Any) -> bool:
    """Whether a periodic job's summary says it did something (non-zero counts; ``tenants`` alone is not work)."""
    if isinstance(result, dict):
        return any(did_work(value) for key, value in result.items() if key != "tenants")
    if isinstance(result, (list, tuple, set)):
        return any(did_work(value) for value in result)
    return bool(result)


def log_summary(logger: logging.Logger, what: str, result: Any, *, errors: Any = None, **extra) -> None:
    """One line per run of periodic work: INFO when it did something, WARNING with errors, DEBUG when idle.
    ``extra`` goes on the record (e.g. ``request_id`` of a task whose context has already been left)."""
    if errors:
        logger.warning("%s: %s; errors: %s", what, result, errors, extra=extra)
    else:
        logger.log(logging.INFO if did_work(result) else logging.DEBUG, "%s: %s", what, result, extra=extra)


# --- celery: the task id is the request id; the worker logs through settings.LOGGING ---------------------

_task_tokens: dict[str, contextvars.Token] = {}


@signals.task_prerun.connect(dispatch_uid="csplatform.logs.task_prerun")
def _task_started(task_id=None, task=None, **kwargs) -> None:
    eager = bool(getattr(getattr(task, "request", None), "is_eager", False))
    if eager and request_id.get():
        return  # run in-process (eager mode): its lines belong to the request or command that called it
    if task_id:
        _task_tokens[task_id] = request_id.set(task_id)


@signals.task_postrun.connect(dispatch_uid="csplatform.logs.task_postrun")
def _task_finished(task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is not None:
        try:
            request_id.reset(token)
        except ValueError:  # set in another context (should not happen): just clear it
            request_id.set(None)


@signals.setup_logging.connect(dispatch_uid="csplatform.logs.setup_logging")
def _celery_logging(**kwargs) -> None:
    """Workers and beat log like the web processes (LOG_LEVEL, LOG_FORMAT), not in celery's own format."""
    from django.conf import settings  # celery sends this before it has loaded Django

    logging.config.dictConfig(settings.LOGGING)
