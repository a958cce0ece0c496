"""One login guard for every password form (csplatform/login_guard.py): failures counted per client address
and per username; X-Forwarded-For does not give a client a new identity."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
PASSWORD = "pass-word-123"


@pytest.fixture
def guard(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    cache.clear()
    yield
    cache.clear()


def token_login(client, username, password, **extra):
    return client.post("/api/auth/token/", {"username": username, "password": password}, format="json", **extra)


def test_rotating_x_forwarded_for_does_not_dodge_the_guard(tenant, guard):
    user = MembershipFactory(tenant=tenant).user
    client = APIClient()
    wrong = [token_login(client, f"someone{i}@x.test", "guess", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
             for i in range(3)]
    assert wrong == [400, 400, 400]
    refused = token_login(client, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert refused.status_code == 429 and refused["Retry-After"] and "Too many" in refused.json()["detail"]


def test_guessing_one_users_password_from_many_addresses_is_stopped(tenant, guard):
    user = MembershipFactory(tenant=tenant).user
    for i in range(3):
        assert token_login(APIClient(REMOTE_ADDR=f"203.0.113.{i}"), user.username, "guess").status_code == 400
    assert token_login(APIClient(REMOTE_ADDR="203.0.113.99"), user.username, PASSWORD).status_code == 429
    other = MembershipFactory(tenant=tenant).user  # another user from a fresh address is not affected
    assert token_login(APIClient(REMOTE_ADDR="203.0.113.98"), other.username, PASSWORD).status_code == 200


def test_the_admin_login_is_guarded_too(tenant, guard):
    user = MembershipFactory(tenant=tenant, user__is_staff=True).user
    client = Client(REMOTE_ADDR="192.0.2.10")
    for _ in range(3):
        assert client.post("/admin/login/", {"username": user.username, "password": "guess"}).status_code == 200
    assert client.post("/admin/login/", {"username": user.username, "password": PASSWORD}).status_code == 429


def test_a_success_clears_the_users_count(tenant, guard):
    user = MembershipFactory(tenant=tenant).user
    for i in range(2):
        token_login(APIClient(REMOTE_ADDR=f"192.0.2.{i}"), user.username, "guess")
    assert token_login(APIClient(REMOTE_ADDR="192.0.2.50"), user.username, PASSWORD).status_code == 200
    for i in range(2):
        token_login(APIClient(REMOTE_ADDR=f"192.0.2.{60 + i}"), user.username, "guess")
    assert token_login(APIClient(REMOTE_ADDR="192.0.2.70"), user.username, PASSWORD).status_code == 200


def test_behind_a_trusted_proxy_the_address_it_saw_is_the_clients(tenant, guard, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    user = MembershipFactory(tenant=tenant).user
    proxy = APIClient(REMOTE_ADDR="10.0.0.2")  # every request comes through the load balancer
    for _ in range(3):
        token_login(proxy, f"nobody-{user.pk}@x.test", "guess", HTTP_X_FORWARDED_FOR="spoofed, 203.0.113.5")
    assert token_login(proxy, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 429
    assert token_login(proxy, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.6").status_code == 200
