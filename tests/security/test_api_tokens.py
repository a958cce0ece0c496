"""API tokens (issue 15): hashed at rest, expiring, revocable, listed without their keys; DRF's old plain-text
keys migrated to digests and still accepted (docs/security.md "API tokens")."""

from __future__ import annotations

import datetime
import hashlib
import importlib
import io
import os
import subprocess
import sys

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiToken, Membership, Role
from accounts.tokens import api_token_issue
from tests.factories import MembershipFactory, UserFactory, token_for

pytestmark = pytest.mark.django_db
PASSWORD = "pass-word-123"  # the factories' password
ACCOUNTS = "/api/accounts/"


def client_with(key: str, **headers) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}", **headers)
    return client


def login(user, **extra):
    return APIClient().post("/api/auth/token/", {"username": user.email, "password": PASSWORD, **extra})


@pytest.fixture
def member(tenant):
    return MembershipFactory(tenant=tenant, role=Role.VIEWER).user


# --- at rest -------------------------------------------------------------------------------------

def test_it_keeps_only_digests_in_the_database(member):
    keys = [login(member).json()["token"], token_for(member), login(member, name="laptop").json()["token"]]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken")
        rows = cursor.fetchall()
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)
    dump = repr(rows)
    assert len(rows) == 3
    for key in keys:
        assert key not in dump
        assert hashlib.sha256(key.encode()).hexdigest() in dump
    assert sorted(t.prefix for t in ApiToken.objects.all()) == sorted(key[:8] for key in keys)


def test_it_moves_an_old_authtoken_key_to_a_digest_that_keeps_working(member, tenant):
    old = Token.objects.create(user=member)
    refused = client_with(old.key).get(ACCOUNTS)
    assert refused.status_code == 401  # the plain table is no longer read
    migration = importlib.import_module("accounts.migrations.0007_api_tokens")

    before = timezone.now()
    migration.move_authtoken_keys(django_apps, None)

    assert not Token.objects.exists()
    moved = ApiToken.objects.get(user=member)
    assert moved.digest == hashlib.sha256(old.key.encode()).hexdigest() and moved.prefix == old.key[:8]
    assert moved.created_at == old.created
    assert before + settings.API_TOKEN_TTL <= moved.expires_at <= timezone.now() + settings.API_TOKEN_TTL
    assert client_with(old.key).get(ACCOUNTS).status_code == 200
    assert client_with(old.key[:8] + "0" * 32).get(ACCOUNTS).status_code == 401  # same prefix, wrong key


# --- expiry and revocation -----------------------------------------------------------------------

def test_it_refuses_an_expired_token(member):
    key = token_for(member, ttl=datetime.timedelta(days=1))
    assert client_with(key).get(ACCOUNTS).status_code == 200
    ApiToken.objects.filter(user=member).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    response = client_with(key).get(ACCOUNTS)
    assert response.status_code == 401
    assert response.json() == {"detail": "Token expired."}
    assert response["WWW-Authenticate"] == "Token"


def test_it_refuses_a_revoked_token_and_only_that_one(member):
    key, other_key = token_for(member), token_for(member)
    client = client_with(key)
    assert client.post("/api/auth/token/revoke/").status_code == 204
    response = client.get(ACCOUNTS)
    assert response.status_code == 401 and response.json() == {"detail": "Token revoked."}
    assert client_with(other_key).get(ACCOUNTS).status_code == 200


def test_it_refuses_a_token_it_never_issued(member):
    key = token_for(member)
    response = client_with("x" * 43).get(ACCOUNTS)
    assert response.status_code == 401 and response.json() == {"detail": "Invalid token."}
    same_prefix = key[:8] + ("x" if key[8] != "x" else "y") + key[9:]  # the row is found, the digest differs
    assert client_with(same_prefix).get(ACCOUNTS).status_code == 401
    assert client_with("y" * 5000).get(ACCOUNTS).status_code == 401


def test_it_refuses_the_token_of_an_inactive_user(member):
    key = token_for(member)
    member.is_active = False
    member.save()
    assert client_with(key).get(ACCOUNTS).status_code == 401


@pytest.mark.parametrize("how", ["query", "body"])
def test_it_revokes_all_tokens_of_the_caller(member, tenant, how):
    keys = [token_for(member) for _ in range(3)]
    someone_else = token_for(MembershipFactory(tenant=tenant).user)
    client = client_with(keys[0])
    response = (client.post("/api/auth/token/revoke/?all=true") if how == "query"
                else client.post("/api/auth/token/revoke/", {"all": True}))
    assert response.status_code == 204
    assert [client_with(key).get(ACCOUNTS).status_code for key in keys] == [401, 401, 401]
    assert client_with(someone_else).get(ACCOUNTS).status_code == 200


def test_it_asks_a_session_user_to_say_all_when_revoking(member):
    key = token_for(member)
    browser = APIClient()
    browser.force_login(member)
    assert browser.post("/api/auth/token/revoke/").status_code == 400
    assert client_with(key).get(ACCOUNTS).status_code == 200
    assert browser.post("/api/auth/token/revoke/", {"all": True}).status_code == 204
    assert client_with(key).get(ACCOUNTS).status_code == 401


# --- last use ------------------------------------------------------------------------------------

def test_it_records_the_last_use_at_most_once_a_minute(member, on_commit):
    key = token_for(member)
    token = ApiToken.objects.get(user=member)
    assert token.last_used_at is None
    with on_commit():
        assert client_with(key).get(ACCOUNTS).status_code == 200
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and timezone.now() - first < datetime.timedelta(seconds=30)

    with on_commit():
        client_with(key).get(ACCOUNTS)
    token.refresh_from_db()
    assert token.last_used_at == first  # within the minute: no write

    two_minutes_ago = timezone.now() - datetime.timedelta(minutes=2)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=two_minutes_ago)
    with on_commit():
        client_with(key).get(ACCOUNTS)
    token.refresh_from_db()
    assert token.last_used_at > two_minutes_ago + datetime.timedelta(minutes=1)


# --- tenancy -------------------------------------------------------------------------------------

def test_a_token_of_a_user_removed_from_a_tenant_is_refused_there(tenant, other_tenant):
    user = MembershipFactory(tenant=tenant, role=Role.VIEWER).user
    Membership.objects.create(user=user, tenant=other_tenant, role=Role.VIEWER)
    client = client_with(token_for(user))
    assert client.get(ACCOUNTS, HTTP_X_TENANT_ID=str(other_tenant.pk)).status_code == 200

    services.membership_revoke(membership=Membership.objects.get(user=user, tenant=other_tenant))

    assert client.get(ACCOUNTS, HTTP_X_TENANT_ID=str(other_tenant.pk)).status_code == 403
    assert client.get(ACCOUNTS, HTTP_X_TENANT_ID=str(tenant.pk)).status_code == 200


# --- login, list, delete -------------------------------------------------------------------------

def test_the_login_returns_a_new_key_and_when_it_expires(member, settings):
    settings.API_TOKEN_TTL = datetime.timedelta(days=7)
    response = login(member, name="CI pipeline")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    expires_at = datetime.datetime.fromisoformat(body["expires_at"])
    assert abs(expires_at - (timezone.now() + datetime.timedelta(days=7))) < datetime.timedelta(minutes=1)
    assert ApiToken.objects.get(user=member).name == "CI pipeline"
    assert login(member).json()["token"] != body["token"]  # each login issues its own token
    assert client_with(body["token"]).get(ACCOUNTS).status_code == 200


def test_the_login_ignores_a_stale_token_header(member):
    key = token_for(member)
    ApiToken.objects.update(revoked_at=timezone.now())
    response = client_with(key).post("/api/auth/token/", {"username": member.email, "password": PASSWORD})
    assert response.status_code == 200, response.content


def test_it_lists_the_callers_tokens_without_their_keys(member, tenant):
    key = login(member, name="laptop").json()["token"]
    other_key = token_for(member, name="script")
    token_for(MembershipFactory(tenant=tenant).user, name="someone else's")
    ApiToken.objects.filter(name="script").update(revoked_at=timezone.now())

    response = client_with(key).get("/api/auth/tokens/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["name"], r["prefix"], r["state"], r["current"]) for r in rows] == [
        ("script", other_key[:8], "revoked", False), ("laptop", key[:8], "active", True)]
    assert set(rows[0]) == {"id", "prefix", "name", "created_at", "expires_at", "last_used_at", "revoked_at",
                            "state", "current"}
    for secret in (key, other_key, *ApiToken.objects.values_list("digest", flat=True)):
        assert secret not in response.content.decode()
    assert APIClient().get("/api/auth/tokens/").status_code == 401


def test_it_revokes_one_of_the_callers_tokens_by_id(member, tenant):
    key, spare = token_for(member, name="main"), token_for(member, name="spare")
    theirs = token_for(MembershipFactory(tenant=tenant).user, name="theirs")
    client = client_with(key)
    spare_id = ApiToken.objects.get(name="spare").pk
    assert client.delete(f"/api/auth/tokens/{spare_id}/").status_code == 204
    assert client_with(spare).get(ACCOUNTS).status_code == 401
    assert client.delete(f"/api/auth/tokens/{ApiToken.objects.get(name='theirs').pk}/").status_code == 404
    assert client_with(theirs).get(ACCOUNTS).status_code == 200
    assert client.get(ACCOUNTS).status_code == 200


# --- command, admin, settings --------------------------------------------------------------------

def issue(*args) -> dict:
    out = io.StringIO()
    call_command("issue_api_token", *args, stdout=out)
    return dict(line.split(": ", 1) for line in out.getvalue().strip().splitlines())


def test_the_command_issues_a_token_for_a_user(member, settings):
    default = issue(member.email.upper())
    assert client_with(default["api_token"]).get(ACCOUNTS).status_code == 200
    expires = datetime.datetime.fromisoformat(default["expires_at"])
    assert abs(expires - (timezone.now() + settings.API_TOKEN_TTL)) < datetime.timedelta(minutes=1)

    short = issue(member.email, "--days", "2", "--name", "backup job")
    assert ApiToken.objects.get(name="backup job").expires_at == datetime.datetime.fromisoformat(short["expires_at"])
    forever = issue(member.email, "--no-expiry")
    assert forever["expires_at"] == "never"
    assert ApiToken.objects.get(prefix=forever["api_token"][:8]).expires_at is None

    with pytest.raises(CommandError):
        issue("nobody@example.com")
    with pytest.raises(CommandError):
        issue(member.email, "--days", "0")


def test_the_admin_lists_tokens_without_digests_and_revokes_them(client, member):
    token_for(member, name="to revoke")
    token = ApiToken.objects.get(user=member)
    superuser = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(superuser)
    changelist = reverse("admin:accounts_apitoken_changelist")
    page = client.get(changelist)
    assert page.status_code == 200
    assert token.prefix.encode() in page.content and token.digest.encode() not in page.content
    assert token.digest.encode() not in client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])).content
    assert client.get(reverse("admin:accounts_apitoken_add")).status_code == 403

    response = client.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_admin_shows_staff_only_their_own_tokens(client, tenant):
    staff = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN, user__is_staff=True).user
    token_for(staff, name="mine")
    token_for(MembershipFactory(tenant=tenant).user, name="a colleague's")
    client.force_login(staff)
    page = client.get(reverse("admin:accounts_apitoken_changelist"))
    assert page.status_code == 200
    assert [t.name for t in page.context["cl"].result_list] == ["mine"]


def test_drfs_token_admin_is_gone():
    from django.contrib import admin
    from rest_framework.authtoken.models import TokenProxy

    assert not admin.site.is_registered(TokenProxy)
    assert admin.site.is_registered(ApiToken)


def test_it_issues_tokens_for_api_token_ttl_days_and_refuses_less_than_one():
    code = "import django; django.setup(); from django.conf import settings; print(settings.API_TOKEN_TTL.days)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "csplatform.settings_test"}
    ok = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True,
                        timeout=60, env={**env, "API_TOKEN_TTL_DAYS": "7"})
    assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1] == "7", ok.stderr
    refused = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True,
                             timeout=60, env={**env, "API_TOKEN_TTL_DAYS": "0"})
    assert refused.returncode != 0 and "API_TOKEN_TTL_DAYS must be at least 1" in refused.stderr


def test_issue_keeps_a_lifetime_positive(member):
    with pytest.raises(ValueError):
        api_token_issue(user=member, ttl=datetime.timedelta(0))
    assert not ApiToken.objects.exists()


# --- bounded -------------------------------------------------------------------------------------

def test_it_revokes_the_least_recently_used_token_beyond_the_cap(member, settings):
    settings.API_TOKEN_MAX_PER_USER = 3
    used_key = login(member).json()["token"]
    # Used (the touch itself runs on commit, which a test's transaction never reaches).
    ApiToken.objects.filter(prefix=used_key[:8]).update(last_used_at=timezone.now())
    idle_keys = [login(member).json()["token"] for _ in range(2)]

    newest = login(member).json()["token"]

    assert client_with(idle_keys[0]).get(ACCOUNTS).status_code == 401  # never used and oldest: revoked
    for key in (used_key, idle_keys[1], newest):
        assert client_with(key).get(ACCOUNTS).status_code == 200
    assert ApiToken.objects.filter(user=member, revoked_at__isnull=True).count() == 3


def test_it_deletes_tokens_dead_for_longer_than_the_keep_period(member, settings):
    settings.API_TOKEN_KEEP_DAYS = 90
    now = timezone.now()
    live, _ = api_token_issue(user=member, name="live")
    long_revoked, _ = api_token_issue(user=member, name="long revoked")
    just_expired, _ = api_token_issue(user=member, name="just expired")
    long_expired, _ = api_token_issue(user=member, name="long expired")
    ApiToken.objects.filter(pk=long_revoked.pk).update(revoked_at=now - datetime.timedelta(days=91))
    ApiToken.objects.filter(pk=just_expired.pk).update(expires_at=now - datetime.timedelta(days=89))
    ApiToken.objects.filter(pk=long_expired.pk).update(expires_at=now - datetime.timedelta(days=91))

    out = io.StringIO()
    call_command("purge_history", stdout=out)

    assert set(ApiToken.objects.filter(user=member).values_list("name", flat=True)) == {"live", "just expired"}
    assert "api tokens dead for more than 90 days: deleted 2" in out.getvalue()
