"""Who may do what (DESIGN.md, Roles): the role matrix of the customer data endpoints, as a table."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from tests.accounts.test_api_isolation import ENDPOINT_BY_NAME, ENDPOINTS, snapshot
from tests.factories import AccountFactory, UserFactory, token_for

ROLE_LETTERS = {"A": Role.TENANT_ADMIN, "P": Role.PRACTITIONER, "C": Role.CONTRIBUTOR, "V": Role.VIEWER}

# Letters are the roles allowed (A tenant admin, P practitioner, C contributor, V viewer); every other role
# gets 403. "-" means no role may, "n/a" that the endpoint has no such operation (405 for everyone).
MATRIX = """
endpoint                   read   create   update   delete
accounts                   APCV   AP       AP       AP
contacts                   APCV   AP       AP       AP
tags                       APCV   AP       AP       AP
health-scores              APCV   AP       n/a      AP
usage-metrics              APCV   AP       AP       AP
surveys                    APCV   AP       AP       AP
tickets                    APCV   AP       AP       AP
goals                      APCV   AP       AP       AP
engagements                APCV   APC      AP       AP
tasks                      APCV   APC      AP       AP
notes                      APCV   APC      AP       AP
journey-history            APCV   n/a      n/a      n/a
journey-stages             APCV   A        A        A
tenant                     APCV   n/a      A        n/a
accounts/move-stage        n/a    AP       n/a      n/a
accounts/journey-history   APCV   n/a      n/a      n/a
accounts/rollup            APCV   n/a      n/a      n/a
"""


def matrix_cases():
    lines = [line.split() for line in MATRIX.strip().splitlines()]
    header, rows = lines[0][1:], lines[1:]
    for endpoint, *cells in rows:
        for op, allowed in zip(header, cells):
            if allowed == "n/a":
                continue
            for letter, role in ROLE_LETTERS.items():
                yield pytest.param(endpoint, op, role, letter in allowed, id=f"{endpoint}-{op}-{role}")


def test_it_has_a_matrix_row_for_every_endpoint():
    rows = {line.split()[0] for line in MATRIX.strip().splitlines()[1:]}
    assert {ep.name for ep in ENDPOINTS} <= rows


def perform(client, tenant, endpoint: str, op: str):
    """Do ``op`` on ``endpoint`` as ``client``; returns the responses (reads hit list and detail)."""
    if endpoint == "tenant":
        if op == "read":
            return [client.get("/api/tenant/")]
        return [client.patch("/api/tenant/", {"name": "Renamed tenant", "weight_usage": "50"})]
    if endpoint.startswith("accounts/"):
        account = AccountFactory(tenant=tenant)
        url = f"/api/accounts/{account.pk}/{endpoint.split('/')[1]}/"
        return [client.post(url, {"stage": "Adoption"}) if op == "create" else client.get(url)]
    ep = ENDPOINT_BY_NAME[endpoint]
    if op == "create":
        return [client.post(ep.url, ep.create(tenant))]
    row = ep.make(tenant)
    if op == "read":
        return [client.get(ep.url), client.get(ep.detail(row))]
    if op == "update":
        return [client.patch(ep.detail(row), ep.update(row))]
    return [client.delete(ep.detail(row))]


@pytest.mark.parametrize("endpoint, op, role, allowed", list(matrix_cases()))
def test_it_enforces_the_role_matrix(endpoint, op, role, allowed, member_client, tenant, monkeypatch):
    client = member_client(tenant, role)
    if not allowed:
        # snapshot between set-up and request: the refused request must write nothing
        real_post, real_patch, real_delete = client.post, client.patch, client.delete
        state = {}

        def guarded(method):
            def call(*args, **kwargs):
                state["before"] = snapshot()
                return method(*args, **kwargs)
            return call

        monkeypatch.setattr(client, "post", guarded(real_post))
        monkeypatch.setattr(client, "patch", guarded(real_patch))
        monkeypatch.setattr(client, "delete", guarded(real_delete))
    for response in perform(client, tenant, endpoint, op):
        if allowed:
            assert 200 <= response.status_code < 300, (response.status_code, response.content)
        else:
            assert response.status_code == 403, (response.status_code, response.content)
    if not allowed and op != "read":
        assert snapshot() == state["before"]


def every_request():
    for ep in ENDPOINTS:
        yield "get", ep.url
        yield "post", ep.url
        yield "get", f"{ep.url}1/"
        yield "patch", f"{ep.url}1/"
        yield "delete", f"{ep.url}1/"
    yield "get", "/api/tenant/"
    yield "patch", "/api/tenant/"
    yield "post", "/api/accounts/1/move-stage/"
    yield "get", "/api/accounts/1/rollup/"
    yield "get", "/api/"


@pytest.mark.parametrize("method, url", list(every_request()), ids=lambda v: v)
def test_it_requires_authentication(method, url, db):
    anonymous = APIClient()
    assert getattr(anonymous, method)(url).status_code == 401
    assert getattr(anonymous, method)(url, HTTP_X_TENANT_ID="some-tenant").status_code == 401
    wrong_token = APIClient()
    wrong_token.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert getattr(wrong_token, method)(url).status_code == 401


def test_it_refuses_a_user_without_a_membership(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(UserFactory())}")
    assert client.get("/api/accounts/").status_code == 403
    assert client.get("/api/tenant/").status_code == 403


def test_it_lets_a_superuser_act_as_admin_of_a_named_tenant(tenant):
    AccountFactory(tenant=tenant, name="Visible")
    superuser = UserFactory(is_superuser=True, is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(superuser)}")
    assert client.get("/api/accounts/").status_code == 403  # no membership and no tenant named
    response = client.get("/api/accounts/", HTTP_X_TENANT_ID=str(tenant.pk))
    assert [a["name"] for a in response.json()["results"]] == ["Visible"]
    assert client.patch("/api/tenant/", {"name": "Renamed"}, HTTP_X_TENANT_ID=tenant.slug).status_code == 200
