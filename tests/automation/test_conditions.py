"""The condition language: every case answered alike in memory (``evaluate``) and in SQL (``to_q``);
the input forms of seeds 001 and 003; validation errors that name the field; changes; traces."""

import datetime
import json
from decimal import Decimal

import pytest
from django.db import connection

from accounts.models import COMPONENTS, Account, Contact, JourneyStage, UsageMetric
from automation.conditions import (
    MAX_LEAVES, OPERATORS, ConditionError, NotCompilable, evaluate, normalize, to_q, validate,
)
from tests.factories import (
    AccountFactory, ContactFactory, EngagementFactory, TagFactory, UsageMetricFactory, UserFactory, health_score,
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2025, 6, 11, 12, 0, tzinfo=datetime.timezone.utc)  # a Wednesday
TODAY = NOW.date()
DAY = datetime.timedelta(days=1)
G, E, T = "GlobalTech", "GlobalTech Europe", "TechStart"
EVERYONE = {G, E, T}


def leaf(field, operator, value=None):
    return {"field": field, "operator": operator, "value": value}


def same_answer(tree, objects, queryset, label=lambda obj: obj.name, now=NOW):
    """The labels of the objects satisfying ``tree``, after asserting that memory and SQL agree."""
    in_memory = {label(obj) for obj in objects if evaluate(tree, obj, now=now)}
    pks = set(queryset.filter(to_q(tree, queryset.model, now=now)).values_list("pk", flat=True))
    in_sql = {label(obj) for obj in objects if obj.pk in pks}
    assert in_memory == in_sql, f"in memory {sorted(in_memory)} but in SQL {sorted(in_sql)}"
    return in_memory


@pytest.fixture
def world(tenant):
    """GlobalTech (enterprise, VIP + emea, healthy, owned), its child GlobalTech Europe (emea, at risk) and
    TechStart (a trial with no score, renewal date, employee count, tags or owner)."""
    owner = UserFactory(email="casey@vendor.test", first_name="Casey")
    vip, emea = TagFactory(tenant=tenant, name="VIP"), TagFactory(tenant=tenant, name="emea")
    globaltech = AccountFactory(tenant=tenant, name=G, industry="Technology", size="enterprise", arr=Decimal("500000"),
                                employee_count=5000, renewal_date=TODAY + 200 * DAY, owner=owner)
    europe = AccountFactory(tenant=tenant, name=E, parent=globaltech, industry="Technology", size="mid_market",
                            arr=Decimal("120000"), employee_count=800, renewal_date=TODAY + 20 * DAY)
    techstart = AccountFactory(tenant=tenant, name=T, industry="Software", size="startup", status="trial",
                               arr=Decimal("15000"), employee_count=None, renewal_date=None)
    globaltech.tags.add(vip, emea)
    europe.tags.add(emea)
    health_score(globaltech, **dict.fromkeys(COMPONENTS, 85))
    health_score(europe, **dict.fromkeys(COMPONENTS, 55))
    for account, days in ((globaltech, 1), (europe, 10), (techstart, 40)):
        Account.objects.filter(pk=account.pk).update(updated_at=NOW - days * DAY)
    return list(Account.objects.for_tenant(tenant).order_by("name"))


@pytest.fixture
def accounts(tenant):
    return Account.objects.for_tenant(tenant)


CASES = [
    # equality: text is case-insensitive, values are read as the field's type
    ("equals", leaf("industry", "equals", "technology"), {G, E}),
    ("eq alias", leaf("industry", "eq", "SOFTWARE"), {T}),
    ("not_equals", leaf("industry", "not_equals", "Technology"), {T}),
    ("neq alias on a choice", leaf("status", "neq", "trial"), {G, E}),
    ("equals a number written as text", leaf("employee_count", "equals", "800"), {E}),
    ("equals a date", leaf("renewal_date", "equals", (TODAY + 20 * DAY).isoformat()), {E}),
    ("equals null", leaf("employee_count", "equals", None), {T}),
    ("not_equals null", leaf("employee_count", "not_equals", None), {G, E}),
    # ordering; a missing value satisfies none of them
    ("greater_than", leaf("arr", "greater_than", 100000), {G, E}),
    ("gt alias, decimal text", leaf("arr", "gt", "120000.00"), {G}),
    ("less_than", leaf("arr", "less_than", 120000), {T}),
    ("lt alias", leaf("arr", "lt", 120000.5), {E, T}),
    ("gte", leaf("arr", "gte", 120000), {G, E}),
    ("greater_than_or_equal alias", leaf("arr", "greater_than_or_equal", 120000), {G, E}),
    ("lte", leaf("arr", "lte", 120000), {E, T}),
    ("gt skips a missing score", leaf("health_score", "gt", 50), {G, E}),
    ("lt skips a missing score", leaf("health_score", "lt", 60), {E}),
    ("lte skips a missing count", leaf("employee_count", "lte", 5000), {G, E}),
    # lists
    ("in", leaf("size", "in", ["startup", "enterprise"]), {G, T}),
    ("in is case-insensitive", leaf("name", "in", ["globaltech", "TECHSTART"]), {G, T}),
    ("in an empty list", leaf("size", "in", []), set()),
    ("not_in", leaf("size", "not_in", ["startup", "enterprise"]), {E}),
    ("not_in an empty list", leaf("size", "not_in", []), EVERYONE),
    ("in numbers", leaf("employee_count", "in", [800, 5000]), {G, E}),
    ("not_in keeps a missing value", leaf("employee_count", "not_in", [800]), {G, T}),
    # text search
    ("contains is case-insensitive", leaf("name", "contains", "TECH"), EVERYONE),
    ("contains", leaf("name", "contains", "europe"), {E}),
    ("not_contains", leaf("name", "not_contains", "europe"), {G, T}),
    # emptiness
    ("is_empty on a date", leaf("renewal_date", "is_empty"), {T}),
    ("is_not_empty on a date", leaf("renewal_date", "is_not_empty"), {G, E}),
    ("is_empty on blank text", leaf("risk_level", "is_empty"), {T}),
    ("is_not_empty on text", leaf("risk_level", "is_not_empty"), {G, E}),
    ("is_empty on a relation", leaf("parent", "is_empty"), {G, T}),
    ("is_not_empty on a relation", leaf("parent", "is_not_empty"), {E}),
    ("is_empty on the owner", leaf("owner", "is_empty"), {E, T}),
    ("is_empty on a relation never set", leaf("stage", "is_empty"), EVERYONE),
    # many-to-many tags: membership
    ("tags contains", leaf("tags", "contains", "vip"), {G}),
    ("tags.name contains", leaf("tags.name", "contains", "EMEA"), {G, E}),
    ("tags not_contains", leaf("tags", "not_contains", "vip"), {E, T}),
    ("tags in", leaf("tags.name", "in", ["vip", "partner"]), {G}),
    ("tags equals", leaf("tags.name", "equals", "emea"), {G, E}),
    ("tags not_equals", leaf("tags.name", "not_equals", "emea"), {T}),
    ("tags is_empty", leaf("tags", "is_empty"), {T}),
    ("tags is_not_empty", leaf("tags", "is_not_empty"), {G, E}),
    ("two tags need not be one tag", {"all": [leaf("tags", "contains", "vip"), leaf("tags", "contains", "emea")]}, {G}),
    # dotted paths
    ("parent.name", leaf("parent.name", "equals", "globaltech"), {E}),
    ("parent.name not_equals holds without a parent", leaf("parent.name", "not_equals", "GlobalTech"), {G, T}),
    ("parent.industry", leaf("parent.industry", "equals", "Technology"), {E}),
    ("a relation compares its name", leaf("parent", "equals", "GlobalTech"), {E}),
    ("parent.arr", leaf("parent.arr", "gt", 100), {E}),
    ("company. prefix on an account", leaf("company.employee_count", "greater_than", 1000), {G}),
    ("owner.email", leaf("owner.email", "equals", "CASEY@vendor.test"), {G}),
    ("owner.first_name", leaf("owner.first_name", "contains", "cas"), {G}),
    ("risk_level", leaf("risk_level", "equals", "healthy"), {G}),
    # relative dates against now
    ("updated before 7 days ago", leaf("updated_at", "less_than", "7 days ago"), {E, T}),
    ("updated since 7 days ago", leaf("updated_at", "gte", "7 days ago"), {G}),
    ("updated after 2 weeks ago", leaf("updated_at", "greater_than", "2 weeks ago"), {G, E}),
    ("updated after 36 hours ago", leaf("updated_at", "gt", "36 hours ago"), {G}),
    ("updated before 1 month ago", leaf("updated_at", "lt", "1 month ago"), {T}),
    ("updated since yesterday", leaf("updated_at", "gte", "yesterday"), {G}),
    ("updated before an ISO date", leaf("updated_at", "lt", (TODAY - 5 * DAY).isoformat()), {E, T}),
    ("renewal within 30 days", leaf("renewal_date", "lte", "in 30 days"), {E}),
    ("renewal after today", leaf("renewal_date", "greater_than", "today"), {G, E}),
    ("renewal within a year", leaf("renewal_date", "lt", "in 1 year"), {G, E}),
    ("renewal 20 days from now", leaf("renewal_date", "equals", "20 days from now"), {E}),
    # groups
    ("all", {"all": [leaf("industry", "equals", "Technology"), leaf("arr", "lt", 200000)]}, {E}),
    ("any", {"any": [leaf("size", "equals", "startup"), leaf("parent", "is_not_empty")]}, {E, T}),
    ("none", {"none": [leaf("size", "equals", "startup"), leaf("parent", "is_not_empty")]}, {G}),
    ("any inside all inside none", {"none": [{"all": [
        leaf("industry", "equals", "technology"),
        {"any": [leaf("arr", "gt", 200000), leaf("tags", "contains", "vip")]},
    ]}]}, {E, T}),
    ("none over a missing value", {"none": [leaf("health_score", "gt", 60)]}, {E, T}),
    ("none over not_equals without a parent", {"none": [leaf("parent.name", "not_equals", "GlobalTech")]}, {E}),
    ("none inside none", {"none": [{"none": [leaf("health_score", "gt", 60)]}]}, {G}),
    ("an empty all", {"all": []}, EVERYONE),
    ("an empty any", {"any": []}, set()),
    ("an empty none", {"none": []}, EVERYONE),
    ("no conditions", None, EVERYONE),
    # seed 003
    ("seed 003 logic and group", [
        leaf("arr", "gt", 100000), {"logic": "AND"},
        {"group": [leaf("size", "in", ["startup"]), {"logic": "OR"}, leaf("company.industry", "equals", "technology")]},
    ], {G, E}),
    ("seed 003 AND binds tighter than OR", [
        leaf("size", "equals", "startup"), {"logic": "OR"},
        leaf("industry", "equals", "technology"), {"logic": "AND"}, leaf("arr", "lt", 200000),
    ], {E, T}),
    # seed 001
    ("account_filter", {"type": "account_filter", "config": {
        "industry": ["Technology"], "arr_min": 100000, "health_score_max": 70}}, {E}),
    ("account_filter small/medium sizes", {"type": "account_filter", "config": {"size": ["small", "medium"]}}, {E}),
    ("account_filter churn_risk_min", {"type": "account_filter", "config": {"churn_risk_min": 40}}, {E}),
    ("account_filter churn_risk_max", {"type": "account_filter", "config": {"churn_risk_max": 20}}, {G}),
    ("account_filter arr range", {"type": "account_filter", "config": {"arr_min": 15000, "arr_max": 120000}}, {E, T}),
    ("condition_config keyed by type", {"account_filter": {"industry": ["Software"]}}, {T}),
    ("custom", {"type": "custom", "config": leaf("arr", "greater_than", 100000)}, {G, E}),
]


@pytest.mark.parametrize("tree, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_it_answers_alike_in_memory_and_in_sql(world, accounts, tree, expected):
    assert same_answer(tree, world, accounts) == expected


def test_it_covers_every_operator_in_the_table():
    used = {node["operator"] for _, tree, _ in CASES for node in _leaves(normalize(tree))}
    assert OPERATORS - used == {"changed", "changed_to", "changed_from", "time_window"}  # tested below


def _leaves(node):
    if "op" in node:
        for child in node["conditions"]:
            yield from _leaves(child)
    else:
        yield node


def test_it_compiles_a_rich_tree_to_one_query(world, accounts, django_assert_num_queries):
    tree = {"all": [leaf("tags", "contains", "emea"), leaf("parent.name", "not_equals", "Acme"),
                    {"none": [leaf("updated_at", "lt", "30 days ago")]},
                    {"type": "engagement_history", "config": {"engagement_count_min": 0}}]}
    q = to_q(tree, Account, now=NOW)
    with django_assert_num_queries(1):
        assert {a.name for a in accounts.filter(q)} == {G, E}


def test_it_follows_paths_from_a_contact(world, tenant):
    for account in world:
        ContactFactory(tenant=tenant, account=account, name=f"at {account.name}")
    contacts = Contact.objects.for_tenant(tenant)
    cases = [
        (leaf("account.industry", "equals", "technology"), {f"at {G}", f"at {E}"}),
        (leaf("company.employee_count", "greater_than", 1000), {f"at {G}"}),
        (leaf("company.industry", "equals", "Software"), {f"at {T}"}),
        (leaf("account.parent.name", "equals", "GlobalTech"), {f"at {E}"}),
        (leaf("account.tags.name", "contains", "vip"), {f"at {G}"}),
        (leaf("account", "equals", "techstart"), {f"at {T}"}),
        (leaf("company.renewal_date", "lte", "in 30 days"), {f"at {E}"}),
        (leaf("account.owner.email", "is_not_empty"), {f"at {G}"}),
    ]
    for tree, expected in cases:
        validate(tree, Contact)
        assert same_answer(tree, list(contacts), contacts) == expected, tree


def test_it_tests_membership_in_a_json_list(world, tenant):
    globaltech, europe, techstart = world
    UsageMetricFactory(account=globaltech, date=TODAY, features_used=["dashboards", "reports"])
    UsageMetricFactory(account=europe, date=TODAY, features_used=[])
    UsageMetricFactory(account=techstart, date=TODAY, features_used=["api"])
    rows = UsageMetric.objects.for_tenant(tenant).select_related("account")
    def by_account(metric):
        return (metric.account.name)
    if not connection.features.supports_json_field_contains:  # SQLite (embedded mode): evaluate in memory
        with pytest.raises(NotCompilable):
            to_q(leaf("features_used", "contains", "reports"), UsageMetric)
        return
    assert same_answer(leaf("features_used", "contains", "reports"), list(rows), rows, by_account) == {G}
    assert same_answer(leaf("features_used", "not_contains", "reports"), list(rows), rows, by_account) == {E, T}
    assert same_answer(leaf("features_used", "is_empty"), list(rows), rows, by_account) == {E}
    assert same_answer(leaf("account.tags", "contains", "vip"), list(rows), rows, by_account) == {G}


# --- engagement history (seed 001) ------------------------------------------------------------------

@pytest.fixture
def engaged(world):
    globaltech, europe, techstart = world
    EngagementFactory(account=globaltech, kind="meeting", outcome="completed", occurred_at=NOW - 3 * DAY)
    EngagementFactory(account=globaltech, kind="call", outcome="missed", occurred_at=NOW - 10 * DAY)
    EngagementFactory(account=europe, kind="email", outcome="completed", occurred_at=NOW - 40 * DAY)
    EngagementFactory(account=techstart, kind="meeting", outcome="scheduled", occurred_at=NOW + 2 * DAY)  # not yet
    return world


def history(**config):
    return {"type": "engagement_history", "config": config}


ENGAGEMENT_CASES = [
    ("engaged within 7 days", history(last_engagement_days=7), {G}),
    ("2 engagements within 30 days", history(last_engagement_days=30, engagement_count_min=2), {G}),
    ("2 engagements within 60 days", history(last_engagement_days=60, engagement_count_min=2), {G}),
    ("any engagement ever", history(engagement_count_min=1), {G, E}),
    ("an email", history(engagement_types=["email"]), {E}),
    ("a missed one", history(outcomes=["missed"]), {G}),
    ("a call within 5 days", history(last_engagement_days=5, engagement_types=["call"]), set()),
    ("last_days greater_than", leaf("engagements.last_days", "greater_than", 30), {E}),
    ("last_days equals", leaf("engagements.last_days", "equals", 3), {G}),
    ("last_days not_equals", leaf("engagements.last_days", "not_equals", 3), {E, T}),
    ("last_days in", leaf("engagements.last_days", "in", [3, 40]), {G, E}),
    ("last_days gte", leaf("engagements.last_days", "gte", 40), {E}),
    ("last_days lt", leaf("engagements.last_days", "lt", 40), {G}),
    ("last_days lte", leaf("engagements.last_days", "lte", 39), {G}),
    ("never engaged", leaf("engagements.last_days", "is_empty"), {T}),
    ("count equals 0", leaf("engagements.count", "equals", 0), {T}),
    ("count less_than 2", leaf("engagements.count", "less_than", 2), {E, T}),
    ("count not_in", leaf("engagements.count", "not_in", [1]), {G, T}),
    ("count with options", {"field": "engagements.count", "operator": "gte", "value": 1,
                            "options": {"kinds": ["meeting"], "within_days": 7}}, {G}),
    ("inactive for a month or never", {"any": [leaf("engagements.last_days", "gt", 30),
                                               leaf("engagements.last_days", "is_empty")]}, {E, T}),
]


@pytest.mark.parametrize("tree, expected", [c[1:] for c in ENGAGEMENT_CASES], ids=[c[0] for c in ENGAGEMENT_CASES])
def test_it_reads_engagement_history_alike_in_memory_and_in_sql(engaged, accounts, tree, expected):
    validate(tree, Account)
    assert same_answer(tree, engaged, accounts) == expected


# --- time conditions (seed 001) ---------------------------------------------------------------------

SATURDAY, SUNDAY = NOW + 3 * DAY, NOW + 4 * DAY


@pytest.mark.parametrize("config, now, expected", [
    ({"business_hours_only": True, "timezone": "UTC"}, NOW, True),
    ({"business_hours_only": True, "timezone": "UTC"}, NOW.replace(hour=9), True),
    ({"business_hours_only": True, "timezone": "UTC"}, NOW.replace(hour=17), False),  # 17:00 is closed
    ({"business_hours_only": True, "timezone": "UTC"}, SATURDAY, False),
    ({"business_hours_only": True, "timezone": "Asia/Tokyo"}, NOW, False),  # 21:00 in Tokyo
    ({"business_hours_only": True, "timezone": "Asia/Tokyo"}, NOW.replace(hour=1), True),  # 10:00 in Tokyo
    ({"business_hours_only": False, "timezone": "UTC"}, SATURDAY.replace(hour=23), True),
    ({"timezone": "UTC", "excluded_dates": ["2025-06-11"]}, NOW, False),
    ({"timezone": "UTC", "excluded_dates": ["2025-06-12"]}, NOW, True),
    ({"timezone": "UTC", "days_of_week": [3]}, NOW, True),  # ISO 3 = Wednesday
    ({"timezone": "UTC", "days_of_week": [1, 2]}, NOW, False),
    ({"timezone": "UTC", "days_of_week": [0]}, SUNDAY, True),  # 0 = Sunday, as JavaScript counts
    ({"timezone": "UTC", "days_of_week": [7]}, SUNDAY, True),  # 7 = Sunday, as ISO counts
    ({"business_hours_only": True, "timezone": "UTC", "days_of_week": [6]}, SATURDAY.replace(hour=10), True),
])
def test_it_checks_time_windows(tenant, config, now, expected):
    account = AccountFactory(tenant=tenant)
    assert evaluate({"type": "time_condition", "config": config}, account, now=now) is expected


def test_it_uses_the_tenant_timezone_when_the_window_names_none(tenant):
    tenant.timezone = "America/New_York"
    tenant.save()
    account = Account.objects.get(pk=AccountFactory(tenant=tenant).pk)
    window = {"type": "time_condition", "config": {"business_hours_only": True}}
    assert evaluate(window, account, now=NOW) is False  # 08:00 in New York
    assert evaluate(window, account, now=NOW.replace(hour=14)) is True


def test_it_refuses_to_compile_the_clock_or_changes():
    with pytest.raises(NotCompilable) as caught:
        to_q([leaf("arr", "gt", 1), {"type": "time_condition", "config": {"business_hours_only": True}}], Account)
    assert caught.value.field == "conditions[1].config"
    with pytest.raises(NotCompilable) as caught:
        to_q({"any": [leaf("status", "changed_to", "active")]}, Account)
    assert caught.value.field == "any[0]"


# --- changes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("condition, expected", [
    (leaf("status", "changed"), True),
    (leaf("status", "changed_to", "ACTIVE"), True),
    (leaf("status", "changed_to", "churned"), False),
    (leaf("status", "changed_to", ["churned", "active"]), True),
    (leaf("status", "changed_from", "trial"), True),
    (leaf("status", "changed_from", "active"), False),
    (leaf("industry", "changed"), False),  # not among the changes
    (leaf("arr", "changed_to", 20000), True),  # "20000.00" from a JSON payload is read as a number
    (leaf("arr", "changed_from", "15000"), True),
    (leaf("size", "changed"), False),  # old == new
    (leaf("size", "changed_to", "startup"), False),
    (leaf("company.employee_count", "changed_to", 12), True),  # found under the resolved path
])
def test_it_checks_changes_of_one_save(world, condition, expected):
    techstart = world[2]
    changes = {"status": {"old": "trial", "new": "active"}, "arr": {"old": "15000.00", "new": "20000.00"},
               "size": {"old": "startup", "new": "startup"}, "employee_count": {"old": None, "new": 12}}
    validate(condition, Account)
    assert evaluate(condition, techstart, changes=changes, now=NOW) is expected
    assert evaluate(condition, techstart, now=NOW) is False  # no changes: nothing changed


def test_it_reads_a_changed_foreign_key_as_the_related_name(world, tenant):
    """Events report foreign keys as ids ({"current_stage": {"old": 3, "new": 6}}); conditions speak names."""
    globaltech, europe, _ = world
    stages = dict(JourneyStage.objects.for_tenant(tenant).values_list("name", "pk"))
    changes = {"current_stage": {"old": stages["Adoption"], "new": stages["At Risk"]},
               "parent": {"old": None, "new": str(globaltech.pk)}}
    trace = []
    assert evaluate(leaf("stage", "changed_to", "at risk"), europe, changes=changes, trace=trace)
    assert trace[0]["actual"] == {"old": "Adoption", "new": "At Risk"}
    assert evaluate(leaf("stage", "changed_from", "Adoption"), europe, changes=changes)
    assert not evaluate(leaf("stage", "changed_to", "Churn"), europe, changes=changes)
    assert evaluate(leaf("parent", "changed_to", "GlobalTech"), europe, changes=changes)
    assert evaluate(leaf("parent.name", "changed"), europe, changes=changes)
    assert evaluate(leaf("parent_id", "changed_to", str(globaltech.pk)), europe, changes=changes)


# --- trace ---------------------------------------------------------------------------------------------

def test_it_traces_every_leaf_with_its_values(world):
    globaltech = world[0]
    trace = []
    tree = {"any": [leaf("industry", "equals", "Software"), {"none": [leaf("updated_at", "less_than", "7 days ago")]},
                    leaf("arr", "gte", 100000), leaf("tags", "contains", "vip")]}
    assert evaluate(tree, globaltech, now=NOW, trace=trace) is True
    assert trace[:3] == [
        {"field": "industry", "operator": "equals", "expected": "Software", "actual": "Technology", "passed": False},
        {"field": "updated_at", "operator": "less_than", "expected": (NOW - 7 * DAY).isoformat(),
         "actual": (NOW - DAY).isoformat(), "passed": False},
        {"field": "arr", "operator": "gte", "expected": 100000, "actual": 500000, "passed": True},
    ]
    assert sorted(trace[3]["actual"]) == ["VIP", "emea"] and trace[3]["passed"] is True  # not short-circuited
    json.dumps(trace)  # ready for a JSONField


def test_it_traces_the_clock_and_changes(tenant):
    account = AccountFactory(tenant=tenant, status="active")
    trace = []
    tree = [{"type": "time_condition", "config": {"timezone": "Europe/Paris", "days_of_week": [3]}},
            leaf("status", "changed_to", "active")]
    assert evaluate(tree, account, now=NOW, changes={"status": {"old": "trial", "new": "active"}}, trace=trace)
    assert trace[0]["actual"] == "2025-06-11T14:00:00+02:00" and trace[0]["passed"] is True
    assert trace[1] == {"field": "status", "operator": "changed_to", "expected": "active",
                        "actual": {"old": "trial", "new": "active"}, "passed": True}


@pytest.mark.parametrize("value, field, expected", [
    ("7 days ago", "updated_at", (NOW - 7 * DAY).isoformat()),
    ("3 hours ago", "updated_at", (NOW - datetime.timedelta(hours=3)).isoformat()),
    ("10 minutes from now", "updated_at", (NOW + datetime.timedelta(minutes=10)).isoformat()),
    ("now", "updated_at", NOW.isoformat()),
    ("today", "updated_at", "2025-06-11T00:00:00+00:00"),
    ("2025-01-31", "updated_at", "2025-01-31T00:00:00+00:00"),
    ("2025-01-31T08:30:00+01:00", "updated_at", "2025-01-31T08:30:00+01:00"),
    ("in 30 days", "renewal_date", "2025-07-11"),
    ("2 weeks ago", "renewal_date", "2025-05-28"),
    ("today", "renewal_date", "2025-06-11"),
    ("Yesterday", "renewal_date", "2025-06-10"),
    ("tomorrow", "renewal_date", "2025-06-12"),
    ("1 month ago", "renewal_date", "2025-05-11"),
    ("in 1 year", "renewal_date", "2026-06-11"),
    ("5 days from now", "renewal_date", "2025-06-16"),
])
def test_it_resolves_relative_dates_against_now(world, value, field, expected):
    trace = []
    evaluate(leaf(field, "less_than", value), world[0], now=NOW, trace=trace)
    assert trace[0]["expected"] == expected


def test_it_moves_months_on_the_calendar(world):
    trace = []
    evaluate(leaf("renewal_date", "lt", "in 1 month"), world[0], now=NOW.replace(month=1, day=31), trace=trace)
    assert trace[0]["expected"] == "2025-02-28"


# --- normalize ---------------------------------------------------------------------------------------

A = leaf("industry", "equals", "Technology")
B = {"field": "arr", "operator": "gt", "value": 1000}
B_CANONICAL = leaf("arr", "greater_than", 1000)


@pytest.mark.parametrize("raw", [
    [A, B],
    {"all": [A, B]},
    {"op": "all", "conditions": [A, B]},
    {"logic": "AND", "conditions": [A, B]},
    {"type": "group", "logic": "and", "conditions": [A, B]},
    {"group": [A, B]},
    [A, {"logic": "AND"}, B],
    {"all": [A, {"all": [B]}]},
    {"any": [{"all": [[A], {"any": [B]}]}]},
    [{"type": "custom", "config": A}, B],
    {"all": [A, B, {}]},
])
def test_it_normalizes_every_and_form_to_one_tree(raw):
    assert normalize(raw) == {"op": "all", "conditions": [A, B_CANONICAL]}


@pytest.mark.parametrize("raw", [
    {"any": [A, B]},
    {"op": "any", "conditions": [A, B]},
    {"logic": "OR", "conditions": [A, B]},
    {"type": "group", "logic": "OR", "group": [A, B]},
    [A, {"logic": "or"}, B],
    {"group": [A, {"logic": "OR"}, B]},
    {"all": [{"any": [A, {"any": [B]}]}]},
])
def test_it_normalizes_every_or_form_to_one_tree(raw):
    assert normalize(raw) == {"op": "any", "conditions": [A, B_CANONICAL]}


@pytest.mark.parametrize("raw", [None, {}, [], {"all": []}, {"any": [{"all": []}]}])
def test_it_normalizes_no_conditions_to_an_empty_all(raw):
    assert normalize(raw) == {"op": "all", "conditions": []}


@pytest.mark.parametrize("raw", [A, [A], {"any": [A]}, {"type": "custom", "config": A}, {"custom": A}])
def test_it_wraps_a_single_condition_in_an_all(raw):
    assert normalize(raw) == {"op": "all", "conditions": [A]}


def test_it_keeps_none_groups_and_or_precedence():
    c = leaf("size", "equals", "smb")
    assert normalize([A, {"logic": "OR"}, B, {"logic": "AND"}, c]) == {
        "op": "any", "conditions": [A, {"op": "all", "conditions": [B_CANONICAL, c]}]}
    assert normalize({"none": [A]}) == {"op": "none", "conditions": [A]}
    assert normalize({"logic": "NONE", "conditions": [A, B]}) == {"op": "none", "conditions": [A, B_CANONICAL]}


def test_it_compiles_seed_001_typed_conditions_into_leaves():
    assert normalize({"type": "account_filter", "config": {
        "industry": ["Technology", "Software"], "size": ["small", "enterprise"], "arr_min": 10000, "arr_max": 90000,
        "health_score_min": 40, "health_score_max": 80, "churn_risk_min": 70, "churn_risk_max": 90}}) == {
        "op": "all", "conditions": [
            leaf("industry", "in", ["Technology", "Software"]), leaf("size", "in", ["smb", "enterprise"]),
            leaf("arr", "gte", 10000), leaf("arr", "lte", 90000),
            leaf("health_score", "gte", 40), leaf("health_score", "lte", 80),
            leaf("health_score", "lte", 30), leaf("health_score", "gte", 10),  # churn risk = 100 - health score
        ]}
    assert normalize({"type": "account_filter", "config": {"industry": [], "size": None}}) == {
        "op": "all", "conditions": []}  # an empty multi-select filters nothing
    assert normalize(history(last_engagement_days=30, engagement_count_min=2, engagement_types=["meeting"],
                             outcomes=["completed"])) == {"op": "all", "conditions": [
        {"field": "engagements.last_days", "operator": "lte", "value": 30,
         "options": {"kinds": ["meeting"], "outcomes": ["completed"]}},
        {"field": "engagements.count", "operator": "gte", "value": 2,
         "options": {"kinds": ["meeting"], "outcomes": ["completed"], "within_days": 30}},
    ]}
    window = {"business_hours_only": True, "timezone": "Europe/Paris"}
    assert normalize({"type": "time_condition", "config": window}) == {
        "op": "all", "conditions": [{"field": "__now__", "operator": "time_window", "value": {
            "business_hours_only": True, "timezone": "Europe/Paris", "excluded_dates": [], "days_of_week": []}}]}


def test_it_reads_seed_001_condition_config_keyed_by_type():
    assert normalize({"account_filter": {"size": ["small", "medium"]},
                      "engagement_history": {"engagement_count_min": 1}}) == {"op": "all", "conditions": [
        leaf("size", "in", ["smb", "mid_market"]), leaf("engagements.count", "gte", 1)]}


def test_it_normalizes_a_normalized_tree_to_itself():
    raw = [{"type": "account_filter", "config": {"industry": ["Technology"], "churn_risk_min": 50}},
           {"logic": "OR"},
           {"group": [leaf("tags", "contains", "vip"), {"logic": "AND"},
                      {"none": [leaf("updated_at", "lt", "7 days ago")]}]},
           {"logic": "AND"}, {"type": "time_condition", "config": {"days_of_week": [1, 2, 3]}},
           {"logic": "OR"}, history(last_engagement_days=14, outcomes=["completed"])]
    tree = normalize(raw)
    assert normalize(tree) == tree
    assert normalize(json.loads(json.dumps(tree))) == tree


@pytest.mark.parametrize("alias, canonical", [
    ("eq", "equals"), ("EQUALS", "equals"), ("==", "equals"), ("neq", "not_equals"), ("!=", "not_equals"),
    ("gt", "greater_than"), (">", "greater_than"), ("lt", "less_than"), ("greater_than_or_equal", "gte"),
    ("Greater Than Or Equal", "gte"), (">=", "gte"), ("less_than_or_equal", "lte"), ("<=", "lte"),
    ("not-in", "not_in"), ("does_not_contain", "not_contains"), ("not_empty", "is_not_empty"),
])
def test_it_normalizes_operator_aliases(alias, canonical):
    value = [1] if canonical in ("in", "not_in") else 1
    assert normalize(leaf("arr", alias, value))["conditions"][0]["operator"] == canonical


# --- errors that name the field -------------------------------------------------------------------------

def nested(levels):
    node = A
    for i in range(levels):
        node = {"none" if i % 2 else "any": [node]}
    return node


@pytest.mark.parametrize("raw, field, words", [
    ([A, leaf("arr", "between", 1)], "conditions[1].operator", "Unknown operator 'between'"),
    ([A, {"field": "arr", "value": 1}], "conditions[1].operator", "needs an operator"),
    ({"all": [A, leaf("size", "in", "smb")]}, "all[1].value", "needs a list"),
    ([leaf("size", "in", ["smb", None])], "conditions[0].value", "is_empty"),
    ([leaf("arr", "gt", {"$gt": 1})], "conditions[0].value", "single value"),
    ([leaf("arr", "gt")], "conditions[0].value", "needs a value"),
    ([leaf("arr; DROP TABLE", "gt", 1)], "conditions[0].field", "field name"),
    ([A | {"extra": 1}], "conditions[0].extra", "Unknown key"),
    ([{"logic": "AND"}, A], "conditions[0]", "between two conditions"),
    ([A, {"logic": "OR"}], "conditions[1]", "between two conditions"),
    ([A, {"logic": "XOR"}, B], "conditions[1].logic", "AND or OR"),
    ({"any": [A, {"logic": "OR"}, B]}, "any[1]", "plain list"),
    ([A, {"group": [A, {"type": "playbook"}]}], "conditions[1].group[1].type", "Unknown condition type"),
    ([{"type": "account_filter", "config": {"region": ["EU"]}}], "conditions[0].config.region", "Unknown setting"),
    ([{"type": "account_filter", "config": {"arr_min": "lots"}}], "conditions[0].config.arr_min", "number"),
    ([{"type": "engagement_history", "config": {"last_engagement_days": -1}}],
     "conditions[0].config.last_engagement_days", "whole number"),
    ([{"type": "time_condition", "config": {"timezone": "Mars/Olympus"}}], "conditions[0].config.timezone", "IANA"),
    ([{"type": "time_condition", "config": {"days_of_week": [8]}}], "conditions[0].config.days_of_week", "Monday"),
    ([{"type": "time_condition", "config": {"excluded_dates": ["11/06/2025"]}}],
     "conditions[0].config.excluded_dates", "YYYY-MM-DD"),
    ([leaf("__now__", "equals", 1)], "conditions[0].operator", "time_window"),
    ([{"field": "arr", "operator": "gt", "value": 1, "options": {"kinds": ["call"]}}], "conditions[0].options",
     "engagement fields"),
    ([{"foo": 1}], "conditions[0]", "Unrecognised condition"),
    ([A] * (MAX_LEAVES + 1), f"conditions[{MAX_LEAVES}]", "Too many conditions"),
    (nested(11), "any[0].none[0].any[0].none[0].any[0].none[0].any[0].none[0].any[0].none[0]", "too deep"),
])
def test_it_refuses_malformed_conditions_naming_the_path(raw, field, words):
    with pytest.raises(ConditionError) as caught:
        normalize(raw)
    assert caught.value.field == field
    assert words in caught.value.message


def test_it_accepts_the_deepest_and_largest_trees_allowed():
    assert normalize(nested(10)) == normalize(normalize(nested(10)))
    assert len(normalize([A] * MAX_LEAVES)["conditions"]) == MAX_LEAVES


@pytest.mark.parametrize("raw, field, words", [
    ([A, leaf("nope", "equals", 1)], "conditions[1].field", "Unknown field 'nope' on Account"),
    ([leaf("parent.nope", "equals", 1)], "conditions[0].field", "Unknown field 'nope'"),
    ([leaf("tenant.slug", "equals", "acme")], "conditions[0].field", "leaves the tenant"),
    ([leaf("tenant_id", "is_not_empty")], "conditions[0].field", "leaves the tenant"),
    ([leaf("parent.tenant.name", "equals", "x")], "conditions[0].field", "leaves the tenant"),
    ([leaf("owner.password", "equals", "x")], "conditions[0].field", "reads a user"),
    ([leaf("owner.is_superuser", "equals", True)], "conditions[0].field", "reads a user"),
    ([leaf("owner.memberships.role", "equals", "x")], "conditions[0].field", "reads a user"),
    ([leaf("_state", "is_empty")], "conditions[0].field", "private"),
    ([leaf("contacts.email", "contains", "x")], "conditions[0].field", "reverse relations"),
    ([leaf("industry.name", "equals", "x")], "conditions[0].field", "not a relation"),
    ([leaf("parent.parent.parent.parent.name", "equals", "x")], "conditions[0].field", "too long"),
    ([leaf("industry", "greater_than", 5)], "conditions[0].operator", "does not apply"),
    ([leaf("tags", "changed")], "conditions[0].operator", "does not apply"),
    ([leaf("arr", "greater_than", "lots")], "conditions[0].value", "not a number"),
    ([leaf("employee_count", "gt", 7.5)], "conditions[0].value", "whole number"),
    ([leaf("renewal_date", "lt", "next tuesday")], "conditions[0].value", "7 days ago"),
    ([leaf("size", "in", ["smb", "huge"])], "conditions[0].value[1]", "'huge' is not a size"),
    ([leaf("status", "changed_to", "gone")], "conditions[0].value", "'gone' is not a status"),
    ([leaf("tags", "equals", None)], "conditions[0].value", "is_empty"),
    ([leaf("size", "in", "smb")], "conditions[0].value", "needs a list"),
    ([history(engagement_types=["pigeon"])], "conditions[0].config.options.kinds[0]", "'pigeon' is not one of"),
    ([leaf("engagements.count", "contains", 1)], "conditions[0].operator", "does not apply"),
    (nested(11), "any[0].none[0].any[0].none[0].any[0].none[0].any[0].none[0].any[0].none[0]", "too deep"),
])
def test_it_validates_against_the_model_naming_the_field(raw, field, words):
    with pytest.raises(ConditionError) as caught:
        validate(raw, Account)
    assert caught.value.field == field
    assert words in caught.value.message
    assert str(caught.value).startswith(field)


def test_it_names_the_canonical_path_when_validating_a_normalized_tree():
    with pytest.raises(ConditionError) as caught:
        validate(normalize({"any": [A, {"all": [B, leaf("nope", "is_empty")]}]}), Account)
    assert caught.value.field == "conditions[1].conditions[1].field"


@pytest.mark.parametrize("field", [
    "company.employee_count", "company.industry", "account.industry", "account.parent.name", "account.tags",
    "account.owner.email", "name", "email", "is_primary",
])
def test_it_accepts_paths_of_a_contact(field):
    validate(leaf(field, "is_not_empty"), Contact)


@pytest.mark.parametrize("field", [
    "company.employee_count", "employee_count", "parent.name", "parent_id", "owner", "owner.email",
    "owner.first_name", "tags", "tags.name", "stage", "current_stage.name", "engagements.last_days",
])
def test_it_accepts_paths_of_an_account(field):
    validate(leaf(field, "is_empty"), Account)


def test_it_refuses_unsafe_paths_even_without_validate(world):
    for tree in ([leaf("tenant.name", "equals", "x")], [leaf("owner.password", "is_empty")]):
        with pytest.raises(ConditionError):
            evaluate(tree, world[0], now=NOW)
        with pytest.raises(ConditionError):
            to_q(tree, Account, now=NOW)


def test_it_refuses_engagement_fields_outside_accounts():
    with pytest.raises(ConditionError) as caught:
        validate(leaf("engagements.count", "gte", 1), Contact)
    assert caught.value.field == "field" and "accounts only" in caught.value.message
