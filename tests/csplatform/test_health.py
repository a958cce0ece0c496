"""/healthz and /readyz: liveness, and readiness that names what is down (a closed loopback port for Redis)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_a_login():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database_redis_and_migrations(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "migrations": "ok"}


def test_readyz_is_503_naming_redis_when_it_is_down(settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["checks"]["redis"].startswith("down")
    assert body["checks"]["database"] == "ok"
