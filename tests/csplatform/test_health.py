"""/healthz and /readyz: liveness, and readiness that names what is down (a closed loopback port for Redis)."""

import datetime

import pytest
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_a_login():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database_redis_and_migrations(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert {k: v for k, v in checks.items() if k != "scheduler"} == {"database": "ok", "redis": "ok", "migrations": "ok"}


def test_readyz_names_redis_when_it_is_down_but_stays_ready(settings):
    """Redis down degrades (the cache and throttles fail open, events wait for the sweeper): taking every web
    process out of the load balancer for it would turn that into an outage."""
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready" and body["checks"]["redis"].startswith("down")
    assert body["checks"]["database"] == "ok"


def test_readyz_is_503_naming_the_database_when_it_is_down(settings):
    from csplatform import health

    def down():
        raise ConnectionError("connection refused")

    settings.REDIS_URL = ""
    original, health.CHECKS["database"] = health.CHECKS["database"], down
    try:
        response = Client().get("/readyz")
    finally:
        health.CHECKS["database"] = original
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "down: ConnectionError"


def test_readyz_reports_a_silent_scheduler_without_becoming_unready(settings):
    """The heartbeat is advisory: beat being down must not take every web process out of the load balancer."""
    from automation.heartbeat import heartbeat_record

    settings.REDIS_URL = ""
    heartbeat_record(now=timezone.now() - datetime.timedelta(minutes=10))
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["scheduler"].startswith("silent for 6")


def test_readyz_says_the_scheduler_is_ok_after_a_tick(settings):
    from automation import scheduling

    settings.REDIS_URL = ""
    scheduling.tick()
    assert Client().get("/readyz").json()["checks"]["scheduler"] == "ok"
