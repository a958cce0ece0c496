"""Tenant isolation of every customer data endpoint (DESIGN.md invariant 1).

``ENDPOINTS`` is the table the other ``test_api_*`` modules share: for each endpoint, how to make a row
in a tenant, a valid create payload and a valid update payload. Tenant A is ``tenant`` (the victim),
tenant B is ``other_tenant`` (the user trying to reach A's rows). Set-up and ``snapshot()`` run in the
system context of ``tests/conftest.py`` (they see every tenant); each request runs in its own tenant scope.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Callable

import pytest
from django.apps import apps
from django.db import models

from accounts import services
from accounts.models import (
    Account, Contact, Engagement, Goal, HealthScore, JourneyHistory, JourneyStage, Note, Role, SupportTicket,
    SurveyResponse, Tag, Task, Tenant, UsageMetric,
)
from tests.factories import (
    AccountFactory, ContactFactory, EngagementFactory, GoalFactory, MembershipFactory, NoteFactory,
    SupportTicketFactory, SurveyResponseFactory, TagFactory, TaskFactory, UsageMetricFactory, health_score,
)

_seq = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_seq)}"


def account_id(tenant: Tenant) -> str:
    return str(AccountFactory(tenant=tenant).pk)


def stage(tenant: Tenant, name: str = "Onboarding") -> JourneyStage:
    return JourneyStage.objects.for_tenant(tenant).get(name=name)


def make_history(tenant: Tenant) -> JourneyHistory:
    return services.journey_move_to_stage(account=AccountFactory(tenant=tenant), stage=stage(tenant))


@dataclass(frozen=True)
class Endpoint:
    name: str
    model: type[models.Model]
    make: Callable[[Tenant], models.Model]
    create: Callable[[Tenant], dict] | None  # None: the endpoint does not create
    update: Callable[[models.Model], dict] | None  # None: the endpoint does not update
    delete: bool = True

    @property
    def url(self) -> str:
        return f"/api/{self.name}/"

    def detail(self, obj) -> str:
        return f"/api/{self.name}/{obj.pk}/"

    def __str__(self) -> str:
        return self.name


ENDPOINTS = [
    Endpoint("accounts", Account, lambda t: AccountFactory(tenant=t),
             lambda t: {"name": unique("Account"), "arr": "1000.00"}, lambda o: {"name": "Renamed"}),
    Endpoint("contacts", Contact, lambda t: ContactFactory(account=AccountFactory(tenant=t)),
             lambda t: {"account": account_id(t), "name": "Dana"}, lambda o: {"name": "Renamed"}),
    Endpoint("tags", Tag, lambda t: TagFactory(tenant=t),
             lambda t: {"name": unique("tag")}, lambda o: {"color": "red"}),
    Endpoint("journey-stages", JourneyStage, lambda t: JourneyStage.objects.create(tenant=t, name=unique("Stage")),
             lambda t: {"name": unique("Stage"), "order": 20}, lambda o: {"description": "Changed"}),
    Endpoint("journey-history", JourneyHistory, make_history, None, None, delete=False),
    Endpoint("health-scores", HealthScore, lambda t: health_score(AccountFactory(tenant=t)),
             lambda t: {"account": account_id(t), "usage_score": 50}, None),
    Endpoint("usage-metrics", UsageMetric, lambda t: UsageMetricFactory(account=AccountFactory(tenant=t)),
             lambda t: {"account": account_id(t), "date": "2024-05-01", "logins": 3}, lambda o: {"logins": 99}),
    Endpoint("surveys", SurveyResponse, lambda t: SurveyResponseFactory(account=AccountFactory(tenant=t)),
             lambda t: {"account": account_id(t), "kind": "nps", "score": 9}, lambda o: {"comment": "Changed"}),
    Endpoint("tickets", SupportTicket, lambda t: SupportTicketFactory(account=AccountFactory(tenant=t)),
             lambda t: {"account": account_id(t), "subject": "Help"}, lambda o: {"subject": "Changed"}),
    Endpoint("engagements", Engagement, lambda t: EngagementFactory(account=AccountFactory(tenant=t)),
             lambda t: {"account": account_id(t), "kind": "call"}, lambda o: {"summary": "Changed"}),
    Endpoint("goals", Goal, lambda t: GoalFactory(account=AccountFactory(tenant=t)),
             lambda t: {"account": account_id(t), "title": "Adopt reports"}, lambda o: {"title": "Changed"}),
    Endpoint("tasks", Task, lambda t: TaskFactory(account=AccountFactory(tenant=t)),
             lambda t: {"account": account_id(t), "title": "Call the champion"}, lambda o: {"title": "Changed"}),
    Endpoint("notes", Note, lambda t: NoteFactory(account=AccountFactory(tenant=t)),
             lambda t: {"account": account_id(t), "body": "Renewal looks safe."}, lambda o: {"body": "Changed"}),
]
ENDPOINT_BY_NAME = {ep.name: ep for ep in ENDPOINTS}
endpoints = pytest.mark.parametrize("ep", ENDPOINTS, ids=str)


def snapshot() -> dict:
    """Every row of every customer data table (and tenants, memberships): equal snapshots = nothing written."""
    tables = {}
    for model in [*apps.get_app_config("accounts").get_models()]:
        rows = model.objects.order_by("pk").values()
        tables[model._meta.label] = [dict(r) for r in rows]
        for m2m in model._meta.many_to_many:
            through = m2m.remote_field.through
            tables[through._meta.label] = list(through.objects.order_by("pk").values())
    return tables


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {str(row["id"]) for row in response.json()["results"]}


def header(tenant: Tenant, by: str = "id", name: str = "HTTP_X_TENANT_ID") -> dict:
    return {name: str(tenant.pk) if by == "id" else tenant.slug}


@pytest.fixture
def client_b(member_client, other_tenant):
    """A tenant admin of tenant B: the strongest role, so only the tenant boundary can stop it."""
    return member_client(other_tenant, Role.TENANT_ADMIN)


# --- reading and writing another tenant's rows ----------------------------------------------------

@endpoints
def test_it_lists_only_the_request_tenants_rows(ep, tenant, other_tenant, client_b):
    theirs = ep.make(tenant)
    mine = ep.make(other_tenant)
    listed = ids(client_b.get(ep.url, {"page_size": 500}))
    assert str(theirs.pk) not in listed
    assert str(mine.pk) in listed
    assert listed == {str(pk) for pk in ep.model.objects.for_tenant(other_tenant).values_list("pk", flat=True)}


@endpoints
def test_it_hides_another_tenants_row_from_retrieve_update_and_delete(ep, tenant, client_b):
    theirs = ep.make(tenant)
    before = snapshot()
    assert client_b.get(ep.detail(theirs)).status_code == 404
    for method in ("put", "patch"):
        expected = 404 if ep.update else 405
        response = getattr(client_b, method)(ep.detail(theirs), ep.update(theirs) if ep.update else {})
        assert response.status_code == expected, (method, response.content)
    assert client_b.delete(ep.detail(theirs)).status_code == (404 if ep.delete else 405)
    assert snapshot() == before


@endpoints
def test_it_refuses_naming_a_tenant_the_user_is_not_a_member_of(ep, tenant, other_tenant, client_b):
    theirs = ep.make(tenant)
    create = ep.create(tenant) if ep.create else {}
    update = ep.update(theirs) if ep.update else {}
    before = snapshot()
    for by, name in [("id", "HTTP_X_TENANT_ID"), ("slug", "HTTP_X_TENANT_ID"), ("id", "HTTP_X_CUSTOMER_ID")]:
        h = header(tenant, by, name)
        assert client_b.get(ep.url, **h).status_code == 403
        assert client_b.get(ep.detail(theirs), **h).status_code == 403
        assert client_b.post(ep.url, create, **h).status_code == 403
        assert client_b.patch(ep.detail(theirs), update, **h).status_code == 403
        assert client_b.delete(ep.detail(theirs), **h).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("action, method", [("move-stage", "post"), ("journey-history", "get"), ("rollup", "get")])
def test_it_hides_another_tenants_account_from_account_actions(action, method, tenant, other_tenant, client_b):
    theirs = AccountFactory(tenant=tenant)
    before = snapshot()
    url = f"/api/accounts/{theirs.pk}/{action}/"
    payload = {"stage": "Adoption"} if method == "post" else None
    assert getattr(client_b, method)(url, payload).status_code == 404
    assert getattr(client_b, method)(url, payload, **header(tenant)).status_code == 403
    assert snapshot() == before


def test_it_shows_and_changes_only_the_request_tenants_settings(tenant, other_tenant, client_b):
    response = client_b.get("/api/tenant/")
    assert response.status_code == 200
    assert response.json()["id"] == str(other_tenant.pk)
    assert client_b.get("/api/tenant/", **header(tenant)).status_code == 403
    assert client_b.patch("/api/tenant/", {"name": "Hijacked"}, **header(tenant)).status_code == 403
    assert client_b.patch("/api/tenant/", {"name": "Hijacked"}, **header(tenant, "slug")).status_code == 403
    tenant.refresh_from_db()
    assert tenant.name != "Hijacked"


def test_it_refuses_an_unknown_or_malformed_tenant_header(client_b):
    # A number names a tenant too (seed 000's X-Customer-ID): 999999 is nobody's.
    for value in [str(uuid.uuid4()), "no-such-tenant", "'; DROP TABLE x; --", "999999"]:
        assert client_b.get("/api/accounts/", HTTP_X_TENANT_ID=value).status_code == 403, value


# --- writing references to another tenant's objects ------------------------------------------------

def foreign_user(tenant: Tenant) -> int:
    return MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user.pk


# (endpoint, field, payload(A, B)): a create in B whose ``field`` names an object of A.
CROSS_TENANT_CREATES = [
    ("accounts", "parent", lambda a, b: {"name": "X", "parent": account_id(a)}),
    ("accounts", "owner", lambda a, b: {"name": "X", "owner": foreign_user(a)}),
    ("accounts", "tag_ids", lambda a, b: {"name": "X", "tag_ids": [TagFactory(tenant=a).pk]}),
    ("contacts", "account", lambda a, b: {"account": account_id(a), "name": "X"}),
    ("health-scores", "account", lambda a, b: {"account": account_id(a), "usage_score": 50}),
    ("usage-metrics", "account", lambda a, b: {"account": account_id(a), "date": "2024-01-01"}),
    ("surveys", "account", lambda a, b: {"account": account_id(a), "kind": "nps", "score": 5}),
    ("surveys", "contact", lambda a, b: {"account": account_id(b), "contact": ContactFactory(
        account=AccountFactory(tenant=a)).pk, "kind": "nps", "score": 5}),
    ("tickets", "account", lambda a, b: {"account": account_id(a), "subject": "X"}),
    ("tickets", "contact", lambda a, b: {"account": account_id(b), "subject": "X", "contact": ContactFactory(
        account=AccountFactory(tenant=a)).pk}),
    ("engagements", "account", lambda a, b: {"account": account_id(a), "kind": "call"}),
    ("engagements", "contact", lambda a, b: {"account": account_id(b), "kind": "call", "contact": ContactFactory(
        account=AccountFactory(tenant=a)).pk}),
    ("engagements", "user", lambda a, b: {"account": account_id(b), "kind": "call", "user": foreign_user(a)}),
    ("goals", "account", lambda a, b: {"account": account_id(a), "title": "X"}),
    ("tasks", "account", lambda a, b: {"account": account_id(a), "title": "X"}),
    ("tasks", "assignee", lambda a, b: {"account": account_id(b), "title": "X", "assignee": foreign_user(a)}),
    ("notes", "account", lambda a, b: {"account": account_id(a), "body": "X"}),
]


def case_ids(cases):
    return [f"{name}-{field}" for name, field, _ in cases]


@pytest.mark.parametrize("name, field, payload", CROSS_TENANT_CREATES, ids=case_ids(CROSS_TENANT_CREATES))
def test_it_rejects_creating_a_row_that_references_another_tenant(name, field, payload, tenant, other_tenant, client_b):
    data = payload(tenant, other_tenant)
    before = snapshot()
    response = client_b.post(f"/api/{name}/", data)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert snapshot() == before


CROSS_TENANT_UPDATES = [case for case in CROSS_TENANT_CREATES if ENDPOINT_BY_NAME[case[0]].update]


@pytest.mark.parametrize("name, field, payload", CROSS_TENANT_UPDATES, ids=case_ids(CROSS_TENANT_UPDATES))
def test_it_rejects_updating_a_row_to_reference_another_tenant(name, field, payload, tenant, other_tenant, client_b):
    ep = ENDPOINT_BY_NAME[name]
    mine = ep.make(other_tenant)
    value = payload(tenant, other_tenant)[field]
    before = snapshot()
    response = client_b.patch(ep.detail(mine), {field: value})
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert snapshot() == before


def test_it_rejects_moving_an_account_to_another_tenants_stage(tenant, other_tenant, client_b):
    mine = AccountFactory(tenant=other_tenant)
    theirs = JourneyStage.objects.create(tenant=tenant, name="Secret stage")
    before = snapshot()
    for value in [theirs.pk, "Secret stage"]:
        response = client_b.post(f"/api/accounts/{mine.pk}/move-stage/", {"stage": value})
        assert response.status_code == 400, response.content
        assert "stage" in response.json()
    assert snapshot() == before


@pytest.mark.parametrize("url, param, foreign", [
    ("/api/contacts/", "account", lambda a: account_id(a)),
    ("/api/accounts/", "parent", lambda a: account_id(a)),
    ("/api/accounts/", "owner", foreign_user),
    ("/api/tasks/", "assignee", foreign_user),
    ("/api/journey-history/", "stage", lambda a: stage(a).pk),
])
def test_it_answers_a_filter_on_another_tenants_object_like_an_unknown_one(url, param, foreign, tenant, client_b):
    """Filter choices are tenant-scoped too, so a filter is no oracle for another tenant's ids."""
    unknown = str(uuid.uuid4()) if param in ("account", "parent") else 987654321
    foreign_response = client_b.get(url, {param: foreign(tenant)})
    unknown_response = client_b.get(url, {param: unknown})
    assert foreign_response.status_code == unknown_response.status_code == 400
    assert param in foreign_response.json()


@pytest.mark.parametrize("ep", [ep for ep in ENDPOINTS if ep.create], ids=str)
def test_it_ignores_a_tenant_named_in_the_payload(ep, tenant, other_tenant, client_b):
    response = client_b.post(ep.url, {**ep.create(other_tenant), "tenant": str(tenant.pk), "tenant_id": str(tenant.pk)})
    assert response.status_code == 201, response.content
    assert ep.model.objects.get(pk=response.json()["id"]).tenant_id == other_tenant.pk


def test_it_accepts_a_user_who_is_a_member_of_both_tenants(tenant, other_tenant, client_b):
    both = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user
    MembershipFactory(tenant=other_tenant, user=both, role=Role.VIEWER)
    response = client_b.post("/api/tasks/", {"title": "X", "assignee": both.pk})
    assert response.status_code == 201, response.content
    assert Task.objects.get(pk=response.json()["id"]).tenant_id == other_tenant.pk


# --- one user, several tenants --------------------------------------------------------------------

@pytest.fixture
def two_tenant_user(member_client, tenant, other_tenant):
    """An admin of A (first membership) who is also a viewer of B."""
    client = member_client(tenant, Role.TENANT_ADMIN)
    MembershipFactory(user=client.user, tenant=other_tenant, role=Role.VIEWER)
    return client


def test_it_uses_the_first_membership_without_a_header(two_tenant_user, tenant, other_tenant):
    a, _ = AccountFactory(tenant=tenant), AccountFactory(tenant=other_tenant)
    assert ids(two_tenant_user.get("/api/accounts/")) == {str(a.pk)}
    assert two_tenant_user.get("/api/tenant/").json()["id"] == str(tenant.pk)


@pytest.mark.parametrize("by, name", [("id", "HTTP_X_TENANT_ID"), ("slug", "HTTP_X_TENANT_ID"),
                                      ("id", "HTTP_X_CUSTOMER_ID"), ("slug", "HTTP_X_CUSTOMER_ID")])
def test_it_switches_tenant_by_header(by, name, two_tenant_user, tenant, other_tenant):
    AccountFactory(tenant=tenant)
    b = AccountFactory(tenant=other_tenant)
    h = header(other_tenant, by, name)
    assert ids(two_tenant_user.get("/api/accounts/", **h)) == {str(b.pk)}
    assert two_tenant_user.get(f"/api/accounts/{b.pk}/", **h).status_code == 200
    assert two_tenant_user.get("/api/tenant/", **h).json()["id"] == str(other_tenant.pk)
    # the role follows the tenant: a viewer in B, so no writes there ...
    assert two_tenant_user.post("/api/accounts/", {"name": "New"}, **h).status_code == 403
    assert two_tenant_user.patch(f"/api/accounts/{b.pk}/", {"name": "New"}, **h).status_code == 403
    # ... and A's rows stay invisible while acting in B
    a = Account.objects.for_tenant(tenant).get()
    assert two_tenant_user.get(f"/api/accounts/{a.pk}/", **h).status_code == 404


def test_it_creates_in_the_tenant_named_by_the_header(member_client, tenant, other_tenant):
    client = member_client(tenant, Role.VIEWER)
    MembershipFactory(user=client.user, tenant=other_tenant, role=Role.PRACTITIONER)
    response = client.post("/api/accounts/", {"name": "Made in B"}, **header(other_tenant, "slug"))
    assert response.status_code == 201, response.content
    assert Account.objects.get(pk=response.json()["id"]).tenant_id == other_tenant.pk


def test_it_finds_a_tenant_whose_slug_looks_like_an_id(member_client, tenant):
    odd = services.tenant_create(slug=uuid.uuid4().hex, name="Hex slug")
    client = member_client(tenant)
    MembershipFactory(user=client.user, tenant=odd)
    response = client.get("/api/tenant/", HTTP_X_TENANT_ID=odd.slug)
    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(odd.pk)
