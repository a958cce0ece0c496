"""/readyz checks the celery broker that is configured, RabbitMQ included, and names it when it is down (a closed
loopback port)."""

import socket

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def closed_port() -> int:
    """A loopback port nothing listens on (bound once by the kernel's choice, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rabbitmq_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("scheme", ["amqp://guest:s3cret@", "redis://:s3cret@"])
def test_readyz_names_the_broker_as_down_without_taking_the_web_out_of_the_load_balancer(settings, scheme):
    """Changes still commit while the broker is down (their events wait for the sweeper): reported, not a 503."""
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_URL = f"{scheme}127.0.0.1:{closed_port()}/"
    response = Client().get("/readyz")
    body = response.json()
    assert body["checks"]["broker"].startswith("down")
    assert response.status_code == 200 and body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert "s3cret" not in response.content.decode()  # up or down, never the URL


@pytest.mark.skipif(not rabbitmq_up(), reason="no RabbitMQ on 127.0.0.1:5672 (installed on the CI machines)")
def test_readyz_checks_rabbitmq_when_it_is_the_broker(settings):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_URL = RABBITMQ
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["broker"] == "ok"


def test_readyz_adds_no_broker_line_when_the_broker_is_the_redis_it_already_checks(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/14"
    checks = Client().get("/readyz").json()["checks"]
    assert checks["redis"] == "ok" and "broker" not in checks
