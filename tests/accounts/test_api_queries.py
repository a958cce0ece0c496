"""No N+1 on list endpoints: a page of 25 rows costs the same number of queries as a page of 5."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.models import JourneyStage, Role
from tests.factories import (
    AccountFactory, ContactFactory, EngagementFactory, GoalFactory, MembershipFactory, NoteFactory,
    SupportTicketFactory, SurveyResponseFactory, TagFactory, TaskFactory, UsageMetricFactory, health_score,
)

ROWS = 30
# Auth token + membership + count + page + one prefetch (account tags): anything more is per row.
MAX_QUERIES = 5


def rich_accounts(tenant, n=ROWS):
    """Accounts with everything the list shows: owner, tags, stage, scores, a parent."""
    owner = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER).user
    tags = [TagFactory(tenant=tenant, name=name) for name in ("gold", "silver", "bronze")]
    stages = list(JourneyStage.objects.for_tenant(tenant))
    parent = AccountFactory(tenant=tenant, owner=owner)
    accounts = []
    for i in range(n):
        account = AccountFactory(tenant=tenant, owner=owner, parent=parent if i % 2 else None)
        account.tags.set(tags[: 1 + i % 3])
        services.journey_move_to_stage(account=account, stage=stages[i % len(stages)])
        services.journey_move_to_stage(account=account, stage=stages[(i + 1) % len(stages)])
        health_score(account, usage_score=40 + i)
        health_score(account, usage_score=50 + i, adoption_score=60)
        accounts.append(account)
    return accounts


def per_account(factory):
    def build(tenant, n=ROWS):
        user = MembershipFactory(tenant=tenant, role=Role.CONTRIBUTOR).user
        account = AccountFactory(tenant=tenant, owner=user)
        contact = ContactFactory(account=account)
        return [factory(account=account, contact=contact, user=user) for _ in range(n)]
    return build


def scores(tenant, n=ROWS):
    return [health_score(AccountFactory(tenant=tenant), usage_score=i + 50) for i in range(n)]


def history(tenant, n=ROWS):
    stages = list(JourneyStage.objects.for_tenant(tenant))
    rows = []
    for i in range(n // 2):
        account = AccountFactory(tenant=tenant)
        rows.append(services.journey_move_to_stage(account=account, stage=stages[0], moved_by=None))
        rows.append(services.journey_move_to_stage(account=account, stage=stages[1 + i % 5], moved_by=None))
    return rows


BUILDERS = {
    "accounts": rich_accounts,
    "contacts": per_account(lambda account, contact, user: ContactFactory(account=account)),
    "tags": lambda tenant, n=ROWS: [TagFactory(tenant=tenant) for _ in range(n)],
    "journey-stages": lambda tenant, n=ROWS: [
        JourneyStage.objects.create(tenant=tenant, name=f"S{i}") for i in range(n)],
    "journey-history": history,
    "health-scores": scores,
    "usage-metrics": per_account(lambda account, contact, user: UsageMetricFactory(account=account)),
    "surveys": per_account(lambda account, contact, user: SurveyResponseFactory(account=account, contact=contact)),
    "tickets": per_account(lambda account, contact, user: SupportTicketFactory(account=account, contact=contact)),
    "engagements": per_account(lambda account, contact, user: EngagementFactory(account=account, contact=contact,
                                                                               user=user)),
    "goals": per_account(lambda account, contact, user: GoalFactory(account=account)),
    "tasks": per_account(lambda account, contact, user: TaskFactory(account=account, assignee=user, created_by=user)),
    "notes": per_account(lambda account, contact, user: NoteFactory(account=account, author=user)),
}


class Queries(CaptureQueriesContext):
    """The queries a request makes, without the savepoints of ATOMIC_REQUESTS."""

    def __init__(self):
        super().__init__(connection)

    def __len__(self):
        return len(self.sql)

    @property
    def sql(self) -> list[str]:
        return [q["sql"] for q in self.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def count_queries(client, url, params) -> int:
    with Queries() as queries:
        response = client.get(url, params)
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == params["page_size"]
    return len(queries)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_it_lists_without_a_query_per_row(name, api, tenant):
    BUILDERS[name](tenant)
    url = f"/api/{name}/"
    small = count_queries(api, url, {"page_size": 5})
    large = count_queries(api, url, {"page_size": 25})
    assert small == large, f"{name}: {small} queries for 5 rows, {large} for 25"
    assert large <= MAX_QUERIES, f"{name}: {large} queries for one page"


@pytest.mark.parametrize("params", [
    {"risk_level": "at_risk"}, {"health_score_min": 10}, {"stage": "Adoption"}, {"search": "Account"},
    {"tag": "Silver"}, {"ordering": "-health_trend"}, {"ordering": "-arr"},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_it_filters_and_orders_accounts_without_a_query_per_row(params, api, tenant):
    rich_accounts(tenant)
    small = count_queries(api, "/api/accounts/", {**params, "page_size": 1})
    with Queries() as queries:
        response = api.get("/api/accounts/", {**params, "page_size": 25})
    assert response.status_code == 200
    assert len(queries) == small, queries.sql


def test_it_reads_an_accounts_history_and_rollup_in_a_fixed_number_of_queries(api, tenant):
    parent = rich_accounts(tenant, n=1)[0]
    for _ in range(10):
        child = AccountFactory(tenant=tenant, parent=parent)
        health_score(child, usage_score=70)
    stages = list(JourneyStage.objects.for_tenant(tenant))
    for stage in stages:
        services.journey_move_to_stage(account=parent, stage=stage)
    with Queries() as queries:
        assert api.get(f"/api/accounts/{parent.pk}/journey-history/").status_code == 200
    assert len(queries) <= MAX_QUERIES, queries.sql
    with Queries() as queries:
        assert api.get(f"/api/accounts/{parent.pk}/rollup/").status_code == 200
    # the rollup reads one query per hierarchy level, never one per account
    assert len(queries) <= MAX_QUERIES + 2, queries.sql


@pytest.mark.parametrize("by", ["id", "slug"])
def test_naming_the_tenant_in_a_header_costs_no_extra_query(by, api, tenant):
    rich_accounts(tenant, n=4)  # and their parent: five
    params = {"page_size": 5}
    without = count_queries(api, "/api/accounts/", params)
    with Queries() as queries:
        response = api.get("/api/accounts/", params, HTTP_X_TENANT_ID=str(tenant.pk) if by == "id" else tenant.slug)

    assert response.status_code == 200 and len(response.json()["results"]) == 5
    assert len(queries) == without, queries.sql


def test_an_account_read_shows_its_tags_and_still_applies_filters_given_to_it(api, tenant):
    account = rich_accounts(tenant, n=3)[2]  # tagged gold, silver and bronze
    url = f"/api/accounts/{account.pk}/"

    with Queries() as queries:
        body = api.get(url).json()
    assert sorted(body["tags"]) == ["bronze", "gold", "silver"]
    assert len(queries) <= 4, queries.sql  # token, membership, the account with its trend, its tags
    assert api.get(url, {"status": account.status}).status_code == 200
    assert api.get(url, {"arr_min": account.arr + 1}).status_code == 404  # a detail outside the filter


def test_the_list_counts_accounts_without_computing_their_trend(api, tenant):
    rich_accounts(tenant, n=2)
    with Queries() as queries:
        response = api.get("/api/accounts/", {"ordering": "-health_trend", "page_size": 1})
    assert response.json()["count"] == 3
    counts = [sql for sql in queries.sql if "COUNT(" in sql]
    assert len(counts) == 1 and "accounts_healthscore" not in counts[0], counts  # Django drops the unused annotation
