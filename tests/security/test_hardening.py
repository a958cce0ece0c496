"""API hardening: throttling, token login and revocation, CSRF on session auth, security headers,
passwords and secrets in the API, and ``manage.py check --deploy`` under production settings."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiToken, Note, Role
from tests.factories import AccountFactory, MembershipFactory, token_for

pytestmark = pytest.mark.django_db
BASE_DIR = Path(settings.BASE_DIR)


@pytest.fixture
def rates(monkeypatch):
    """``rates(user="3/minute", ...)``: lower throttle rates for one test (the test settings set them sky-high)."""

    def lower(**scopes):
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, **scopes})

    return lower


# --- throttling ----------------------------------------------------------------------------------

def test_it_throttles_each_user(member_client, tenant, rates):
    rates(user="3/minute")
    first, second = member_client(tenant, Role.VIEWER), member_client(tenant, Role.VIEWER)
    assert [first.get("/api/accounts/").status_code for _ in range(3)] == [200, 200, 200]
    throttled = first.get("/api/accounts/")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    assert second.get("/api/accounts/").status_code == 200  # counted per user


@pytest.mark.urls("tests.security.throttle_urls")
def test_it_throttles_evaluation_endpoints_more_strictly(member_client, tenant, rates):
    rates(user="100/minute", evaluation="2/minute")
    client = member_client(tenant, Role.PRACTITIONER)
    assert [client.post("/api/evaluate-all/").status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/api/accounts/").status_code == 200  # other endpoints are not affected


@pytest.mark.urls("tests.security.throttle_urls")
def test_one_action_of_a_viewset_can_opt_into_the_evaluation_scope(member_client, tenant, rates):
    rates(user="100/minute", evaluation="2/minute")
    client = member_client(tenant, Role.PRACTITIONER)
    assert [client.post("/api/rules/test/").status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get("/api/rules/").status_code for _ in range(3)] == [200, 200, 200]


def test_it_throttles_password_guessing_at_the_login(tenant, rates):
    rates(login="3/minute")
    user = MembershipFactory(tenant=tenant).user
    client = APIClient()
    wrong = [client.post("/api/auth/token/", {"username": user.username, "password": "guess"}).status_code
             for _ in range(3)]
    assert wrong == [400, 400, 400]
    right = client.post("/api/auth/token/", {"username": user.username, "password": "pass-word-123"})
    assert right.status_code == 429


def test_it_configures_throttling_for_every_api_view():
    conf = settings.REST_FRAMEWORK
    assert conf["DEFAULT_THROTTLE_CLASSES"] == [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ]
    assert {"anon", "user", "evaluation", "login"} <= set(conf["DEFAULT_THROTTLE_RATES"])


# --- tokens --------------------------------------------------------------------------------------

def test_it_issues_a_token_for_email_and_password(tenant):
    user = MembershipFactory(tenant=tenant).user
    response = APIClient().post("/api/auth/token/", {"username": user.email, "password": "pass-word-123"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    assert ApiToken.objects.get(user=user).matches(body["token"])
    assert APIClient().post("/api/auth/token/", {"username": user.email, "password": "nope"}).status_code == 400


def test_it_revokes_the_callers_token(member_client, tenant):
    client = member_client(tenant, Role.VIEWER)
    other = member_client(tenant, Role.VIEWER)
    assert client.get("/api/accounts/").status_code == 200

    assert client.post("/api/auth/token/revoke/").status_code == 204
    assert client.get("/api/accounts/").status_code == 401
    assert ApiToken.objects.get(user=client.user).revoked_at is not None
    assert other.get("/api/accounts/").status_code == 200  # only the caller's token

    fresh = APIClient().post("/api/auth/token/", {"username": client.user.email, "password": "pass-word-123"})
    renewed = APIClient()
    renewed.credentials(HTTP_AUTHORIZATION=f"Token {fresh.json()['token']}")
    assert renewed.get("/api/accounts/").status_code == 200


def test_it_refuses_to_revoke_without_credentials():
    assert APIClient().post("/api/auth/token/revoke/").status_code == 401


# --- CSRF on session authentication --------------------------------------------------------------

def test_it_requires_a_csrf_token_for_session_writes(tenant):
    user = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER, user__is_staff=True).user
    account = AccountFactory(tenant=tenant)
    browser = Client(enforce_csrf_checks=True)
    browser.get("/admin/login/")  # sets the csrftoken cookie, as a browser visiting a page would
    browser.force_login(user)
    payload = json.dumps({"account": str(account.pk), "body": "From the browsable API"})

    refused = browser.post("/api/notes/", payload, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not Note.objects.exists()

    token = browser.cookies["csrftoken"].value
    allowed = browser.post("/api/notes/", payload, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 201, allowed.content


def test_it_needs_no_csrf_token_with_an_api_token(tenant):
    membership = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER)
    account = AccountFactory(tenant=tenant)
    machine = Client(enforce_csrf_checks=True)
    response = machine.post("/api/notes/", json.dumps({"account": str(account.pk), "body": "From a script"}),
                            content_type="application/json",
                            HTTP_AUTHORIZATION=f"Token {token_for(membership.user)}")
    assert response.status_code == 201


# --- headers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, authenticated", [("/api/accounts/", True), ("/api/accounts/", False),
                                                 ("/api/audit-log/", True), ("/api/schema/", True)])
def test_it_sends_security_headers_on_api_responses(member_client, tenant, path, authenticated):
    client = member_client(tenant, Role.TENANT_ADMIN) if authenticated else APIClient()
    response = client.get(path)
    assert response.status_code == (200 if authenticated else 401)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


# --- passwords and secrets in the API ------------------------------------------------------------

def api_schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def properties(component: dict) -> set[str]:
    return set((component.get("properties") or {}).keys())


def test_it_takes_passwords_only_at_the_login():
    """No endpoint sets a password; one that starts to must run Django's validators (docs/security.md)."""
    schemas = api_schema()["components"]["schemas"]
    with_password = {name for name, component in schemas.items()
                     if any("password" in p.lower() for p in properties(component))}
    assert with_password == {"AuthTokenRequest"}


SECRET_NAME = ("secret", "token", "password", "key")
# Secrets the API returns after creation, reported to their owners; remove an entry once it is fixed.
KNOWN_EXPOSED = {
    ("Workflow", "webhook_token"),  # automation: the inbound webhook's bearer token on every read
    ("EventTrigger", "webhook_token"),
}


def test_it_returns_no_secret_after_creation():
    """Response schemas carry no secret-looking field except the token the login endpoint exists to issue
    (webhook signing secrets, provider keys: write-only, shown once when created)."""
    schemas = api_schema()["components"]["schemas"]
    returned = {
        (name, prop) for name, component in schemas.items() if not name.endswith("Request")
        for prop, spec in (component.get("properties") or {}).items()
        if any(marker in prop.lower() for marker in SECRET_NAME) and not spec.get("writeOnly")
    }
    # Issued once, in the response that creates them: the login token and a rotated webhook signing secret.
    assert returned - KNOWN_EXPOSED == {("AuthToken", "token"), ("NewWebhookSecret", "secret")}
    assert properties(schemas["ApiToken"]) & {"key", "digest", "token"} == set()  # the token list


# --- production settings -------------------------------------------------------------------------

def production_env(**overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_", "FIELD_ENCRYPTION_"))}
    env.update(DJANGO_SETTINGS_MODULE="csplatform.settings", DJANGO_DEBUG="false",
               DJANGO_SECRET_KEY=secrets.token_urlsafe(64), DJANGO_ALLOWED_HOSTS="cs.example.com",
               FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def manage(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=production_env(**env),
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_under_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_check_deploy_is_clean_behind_a_tls_proxy():
    result = manage("check", "--deploy", "--fail-level", "WARNING",
                    DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_are_secure_by_default():
    code = ("import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({"
            "'redirect': s.SECURE_SSL_REDIRECT, 'hsts': s.SECURE_HSTS_SECONDS, 'session': s.SESSION_COOKIE_SECURE, "
            "'csrf': s.CSRF_COOKIE_SECURE, 'proxy': s.SECURE_PROXY_SSL_HEADER, "
            "'rates': s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=production_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["redirect"] and values["hsts"] >= 31_536_000 and values["session"] and values["csrf"]
    assert values["proxy"] is None  # trusting X-Forwarded-Proto is opt-in

    def per_minute(rate: str) -> float:
        number, period = rate.split("/")
        return int(number) * 60 / {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]

    rates = values["rates"]
    assert per_minute(rates["evaluation"]) < per_minute(rates["user"])
    assert per_minute(rates["login"]) <= per_minute(rates["anon"])


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = manage("check", DJANGO_SECRET_KEY=None)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY must be set" in result.stderr
