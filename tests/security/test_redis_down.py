"""Redis down (issue 15, "degrade, don't die"): the API still reads and writes, throttles fail open, and an
event the broker could not take stays pending for the sweeper. Redis is "down" as a closed loopback port."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import override_settings

from automation.models import Event
from csplatform.celery import app
from tests.factories import AccountFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

CLOSED = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there
DOWN_CACHE = {"default": {"BACKEND": "csplatform.cache.FailOpenRedisCache", "LOCATION": CLOSED,
                          "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}


@override_settings(CACHES=DOWN_CACHE)
def test_the_api_reads_and_writes_with_the_cache_down(api, tenant):
    assert cache.get("anything", "missing") == "missing"  # a miss, not an error
    assert api.get("/api/accounts/").status_code == 200
    created = api.post("/api/accounts/", {"name": "Initech"}, format="json")
    assert created.status_code == 201, created.content
    assert api.get(f"/api/accounts/{created.json()['id']}/").status_code == 200


@pytest.fixture
def broker_down():
    saved = {k: app.conf[k] for k in ("task_always_eager", "broker_url", "broker_connection_retry",
                                      "broker_connection_max_retries", "task_publish_retry")}
    app.conf.update(task_always_eager=False, broker_url=CLOSED, broker_connection_retry=False,
                    broker_connection_max_retries=0, task_publish_retry=False)
    app._pool = None  # a producer pool made earlier points at the real broker: start a new one (and after)
    yield
    app.conf.update(saved)
    app._pool = None


def test_a_change_commits_and_its_event_waits_for_the_sweeper_when_the_broker_is_down(
        tenant, broker_down, django_capture_on_commit_callbacks):
    WorkflowFactory(tenant=tenant, trigger_type="model_updated", model_type="account",
                    actions=[{"type": "create_note", "config": {"body": "x"}}])
    account = AccountFactory(tenant=tenant)
    with django_capture_on_commit_callbacks(execute=True):  # the dispatch fails: logged, not raised
        account.industry = "Aerospace"
        account.save()
    event = Event.objects.get()
    assert event.processed_at is None and event.failed_at is None  # pending: the sweeper's
