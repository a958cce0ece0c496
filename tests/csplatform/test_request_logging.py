"""Log lines carry the request id and the tenant id (JSON lines with LOG_FORMAT=json); X-Request-ID is echoed;
periodic work logs one INFO line when it did something and nothing at INFO when idle."""

import io
import json
import logging
import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from pythonjsonlogger.json import JsonFormatter

from automation import scheduling
from automation.tasks import run_due_runs_task, sweep_events_task
from csplatform.logs import ContextFilter, did_work, logging_config
from csplatform.tenancy import system_context, tenant_context
from tests.factories import AccountFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines():
    """The root logger also writes through the handler LOG_FORMAT=json configures; returns the parsed lines."""
    config = logging_config("INFO", "json")
    options = {k: v for k, v in config["formatters"]["json"].items() if k != "()"}
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(**options))
    handler.addFilter(ContextFilter(missing=None))
    loggers = [logging.getLogger(name) for name in ("", *config["loggers"])]  # django's do not propagate
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


def test_it_writes_json_lines_with_the_request_id_and_the_tenant_of_an_api_request(api, tenant, json_lines):
    with tenant_context(None):  # as a real request starts: no scope of the test's set-up
        response = api.get("/api/accounts/", HTTP_X_TENANT_ID=str(tenant.pk))
    assert response.status_code == 200
    request_id = response["X-Request-ID"]
    lines = [line for line in json_lines() if line.get("request_id") == request_id]
    access = [line for line in lines if line["logger"] == "csplatform.requests"]
    assert len(access) == 1
    assert access[0]["tenant_id"] == str(tenant.pk)
    assert access[0]["level"] == "INFO" and access[0]["status_code"] == 200 and access[0]["path"] == "/api/accounts/"
    assert access[0]["message"].startswith("GET /api/accounts/ 200 ")
    assert {"time", "message", "logger", "level"} <= set(access[0])
    assert "request" not in access[0]  # Django's request object is not dumped into the line


def test_it_logs_an_api_error_with_the_request_id_and_the_tenant(api, tenant, json_lines):
    with tenant_context(None):
        response = api.get("/api/accounts/999999999/", HTTP_X_REQUEST_ID="trace-42")
    assert response.status_code == 404 and response["X-Request-ID"] == "trace-42"
    warning = [line for line in json_lines() if line["logger"] == "django.request"]
    assert len(warning) == 1  # written once, by the middleware, while the id is still set
    assert warning[0]["request_id"] == "trace-42" and warning[0]["tenant_id"] == str(tenant.pk)
    assert warning[0]["message"] == "Not Found: /api/accounts/999999999/"


def test_it_echoes_a_sane_x_request_id(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123_x.y:z")
    assert response["X-Request-ID"] == "abc-123_x.y:z"


@pytest.mark.parametrize("incoming", ["", "has space", "x" * 129, "semi;colon", "new\nline", "ünïcode"])
def test_it_replaces_an_insane_x_request_id_with_a_new_uuid(client, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_it_gives_every_request_its_own_id(client):
    assert client.get("/healthz")["X-Request-ID"] != client.get("/healthz")["X-Request-ID"]


def test_it_adds_the_current_tenant_to_lines_logged_in_its_context(tenant, caplog):
    caplog.handler.addFilter(ContextFilter(missing="-"))
    with caplog.at_level(logging.INFO, logger="tests"):
        with tenant_context(tenant):
            logging.getLogger("tests").info("inside")
        with system_context("test"):
            logging.getLogger("tests").info("outside")
    inside, outside = caplog.records
    assert inside.tenant_id == str(tenant.pk) and inside.request_id == "-"
    assert outside.tenant_id == "-"


def test_it_uses_the_task_id_as_the_request_id_of_a_celery_task(caplog):
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.DEBUG, logger="automation"):
        result = sweep_events_task.apply()
    lines = [r for r in caplog.records if r.name.startswith("automation")]
    assert lines and {r.request_id for r in lines} == {result.id}


def test_an_idle_tick_logs_nothing_at_info(caplog):
    with caplog.at_level(logging.INFO):
        outcome = scheduling.tick()
    assert outcome.ok
    assert [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO] == []


def test_idle_periodic_tasks_log_nothing_at_info(caplog):
    with caplog.at_level(logging.INFO):
        sweep_events_task.apply()
        run_due_runs_task.apply()
    assert [r.getMessage() for r in caplog.records if r.name.startswith(("automation", "csplatform"))] == []


def test_a_tick_that_did_work_logs_one_info_summary(tenant, caplog):
    WorkflowFactory(tenant=tenant, trigger_type="time_based", trigger_config={"check_every": "1h"},
                    conditions={}, actions=[{"type": "create_note", "config": {"content": "hi"}}])
    AccountFactory(tenant=tenant)
    with caplog.at_level(logging.INFO):
        scheduling.tick()
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(info) == 1 and info[0].startswith("tick: {'automation.scheduled_rules': {")


def test_system_context_entries_are_logged_at_debug_only(caplog):
    with caplog.at_level(logging.INFO, logger="csplatform.tenancy"):
        with system_context("something cross-tenant"):
            pass
    assert caplog.records == []


def test_did_work_reads_summaries():
    assert not did_work({"tenants": 3, "slots": 0, "runs": 0, "errors": 0})
    assert did_work({"tenants": 1, "runs": 2})
    assert not did_work({"evaluated": [], "failed": {}}) and not did_work(0) and not did_work(None)
    assert did_work({"crm.execute_pending_steps": {"executions": 1}})


def test_log_format_must_be_text_or_json():
    with pytest.raises(ImproperlyConfigured):
        logging_config("INFO", "xml")
    assert logging_config("debug", "text")["root"]["level"] == "DEBUG"
