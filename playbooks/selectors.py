"""Set-based reads the playbook evaluators are built from.

Each signal source is one query grouped by account (mostly a Django ``values("account_id")
.annotate(...)`` queryset, scoped with ``for_tenant`` and its window): survey responses (NPS, CSAT,
comments), usage (averages, DAU/MAU, the trend between the window's halves, feature sets), notes,
support tickets. ``AccountSignals`` puts the sources an evaluator needs into ONE SQL statement as
common table expressions LEFT JOINed to the tenant's accounts, computes the derived signals (NPS,
adoption index, churn risk, ...) as column arithmetic and filters in the database. Each table is
read once per evaluation, whatever the number of accounts, and only the affected accounts come
back to Python: a tenant of 100,000 accounts evaluates in seconds.

Derived expressions and conditions are small SQL templates over named columns (``{nps_count}``;
``{@s_catalog}`` names a source table); they use standard SQL only (CASE, COALESCE, NULLIF, CTEs),
so the embedded SQLite mode runs them too. Row-level security applies to every table read.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Aggregate, Count, F, FloatField, JSONField, OuterRef, Q, QuerySet, Subquery, Sum
from psycopg.types.numeric import FloatLoader

from accounts.models import Account, HealthScore, Note, RiskLevel, SupportTicket, SurveyResponse, UsageMetric

# Accounts that left are not evaluated: no play can save or grow them.
INACTIVE_STATUSES = (Account.Status.CHURNED, Account.Status.CANCELLED)
ACCOUNT_COLUMNS = ("id", "name", "health_score", "risk_level", "licensed_seats", "renewal_date", "status")


def evaluated_accounts(tenant) -> QuerySet[Account]:
    return Account.objects.for_tenant(tenant).exclude(status__in=INACTIVE_STATUSES)


# --- the query builder ---------------------------------------------------------------------------

EVALUATION_WORK_MEM = "64MB"

NAME = re.compile(r"\{(@?\w+)\}")


@dataclass
class Source:
    alias: str
    sql: str
    params: list
    columns: tuple[str, ...]
    requires: tuple[str, ...] = ()
    joined: bool = True  # LEFT JOINed on account_id; False: only referred to (``{@alias}``)
    shared: bool = False  # read from the run's ``SignalStore`` when there is one (a signal family's query)


class SignalStore:
    """The signal families of one evaluate-all run, each read once and shared by every evaluator that needs it.

    Usage feeds three evaluators and surveys two; each family's query (the same SQL and parameters whatever
    evaluator asks) runs once into a temporary table that is dropped when the run's transaction ends, and the
    evaluators' statements read that table instead of the base table. On other databases (the embedded SQLite
    mode) it stores nothing: every statement reads the base tables, as without a store."""

    def __init__(self):
        self.tables: dict[tuple, str] = {}
        self.evaluated: dict[str, int] = {}  # tenant id -> evaluated accounts
        self.prefix = f"playbook_signals_{uuid.uuid4().hex[:12]}"

    def close(self) -> None:
        """Drop the tables now (an enclosing transaction, such as a test's, may go on for long after)."""
        if self.tables:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {', '.join(map(_qn, self.tables.values()))}")
            self.tables.clear()

    def table(self, sql: str, params: list) -> str | None:
        if connection.vendor != "postgresql":
            return None
        assert connection.in_atomic_block, "a SignalStore lives in one transaction (its tables drop on commit)"
        key = (sql, tuple(map(repr, params)))
        if key not in self.tables:
            name = f"{self.prefix}_{len(self.tables) + 1}"
            with connection.cursor() as cursor:
                _tune(cursor)
                cursor.execute(f"CREATE TEMPORARY TABLE {_qn(name)} ON COMMIT DROP AS {sql}", params)
                cursor.execute(f"ANALYZE {_qn(name)}")  # row counts for the joins that read it
            self.tables[key] = name
        return self.tables[key]

    def evaluated_count(self, tenant) -> int:
        key = str(getattr(tenant, "pk", tenant))
        if key not in self.evaluated:
            self.evaluated[key] = evaluated_accounts(tenant).count()
        return self.evaluated[key]


def _tune(cursor) -> None:
    """One analytical statement over the whole tenant: room to hash and sort in memory, and no JIT
    compilation (it costs more than it saves on these plans). Both end with the transaction."""
    if connection.vendor == "postgresql":
        cursor.execute(f"SET LOCAL work_mem = '{EVALUATION_WORK_MEM}'")
        cursor.execute("SET LOCAL jit = off")


@dataclass
class AccountSignals:
    """The tenant's evaluated accounts joined to per-account sources, with derived columns.

    ``add(alias, queryset)`` registers a source grouped by ``account_id`` (or raw ``sql``);
    ``annotate(name=expression)`` adds a per-account Django expression to the accounts themselves;
    ``define(name, template)`` a derived column (a parameter-free SQL template over other names);
    ``rows(condition, params, columns)`` runs one statement and returns the matching accounts as
    dicts. Sources that no selected column or condition refers to are left out of the statement.
    """

    tenant: object
    store: SignalStore | None = None
    sources: dict[str, Source] = field(default_factory=dict)
    derived: dict[str, str] = field(default_factory=dict)
    column_of: dict[str, str] = field(default_factory=dict)
    source_of: dict[str, str] = field(default_factory=dict)
    base_annotations: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ACCOUNT_COLUMNS:
            self.column_of[name] = f"{_qn('a')}.{_qn(name)}"

    def add(self, alias: str, queryset: QuerySet | None = None, *, sql: str | None = None, params=None,
            columns: tuple[str, ...] | None = None, requires: tuple[str, ...] = (), joined: bool = True,
            shared: bool = False) -> None:
        if queryset is not None:
            query = queryset.query
            columns = tuple(query.values_select) + tuple(query.annotation_select)
            sql, params = query.sql_with_params()
        assert not joined or (columns and columns[0] == "account_id"), "a joined source is grouped by account_id"
        assert not (shared and requires), "a shared source reads base tables only"
        self.sources[alias] = Source(alias, sql, list(params or ()), tuple(columns or ()), requires, joined, shared)
        for name in (columns or ())[1:] if joined else ():
            assert name not in self.column_of, f"column {name} defined twice"
            self.column_of[name] = f"{_qn(alias)}.{_qn(name)}"
            self.source_of[name] = alias

    def annotate(self, **expressions) -> None:
        for name, expression in expressions.items():
            assert name not in self.column_of, f"column {name} defined twice"
            self.base_annotations[name] = expression
            self.column_of[name] = f"{_qn('a')}.{_qn(name)}"

    def define(self, name: str, template: str) -> None:
        assert "%s" not in template, "derived columns take no parameters"
        assert name not in self.column_of and name not in self.derived, f"column {name} defined twice"
        self.derived[name] = template

    def expand(self, template: str, used: set[str]) -> str:
        """``template`` with every ``{name}`` replaced by its SQL; ``used`` collects the sources."""

        def replace(match):
            name = match.group(1)
            if name.startswith("@"):
                used.add(name[1:])
                return _qn(name[1:])
            if name in self.column_of:
                if name in self.source_of:
                    used.add(self.source_of[name])
                return self.column_of[name]
            if name in self.derived:
                return f"({self.expand(self.derived[name], used)})"
            raise KeyError(f"unknown signal column {name!r}")

        return NAME.sub(replace, template)

    def rows(self, condition: str, params: list, columns: list[str]) -> list[dict]:
        used: set[str] = set()
        names = list(dict.fromkeys(["id", "name", "health_score", *columns]))
        select = [f"{self.expand('{' + name + '}', used)} AS {_qn(name)}" for name in names]
        where = self.expand(condition, used)
        pending = list(used)
        while pending:  # sources that used sources are built from
            for required in self.sources[pending.pop()].requires:
                if required not in used:
                    used.add(required)
                    pending.append(required)
        accounts = evaluated_accounts(self.tenant).order_by()
        if self.base_annotations:
            accounts = accounts.annotate(**self.base_annotations)
        base_sql, base_params = accounts.values(*ACCOUNT_COLUMNS, *self.base_annotations).query.sql_with_params()
        # Materialised so that per-account subqueries in it run once per account, not once per use.
        ctes = [f"{_qn('a')} AS {'MATERIALIZED ' if self.base_annotations else ''}({base_sql})"]
        cte_params = list(base_params)
        joins = []
        for source in self.sources.values():
            if source.alias not in used:
                continue
            stored = self.store.table(source.sql, source.params) if self.store and source.shared else None
            if stored:
                ctes.append(f"{_qn(source.alias)} AS (SELECT * FROM {_qn(stored)})")
            else:
                ctes.append(f"{_qn(source.alias)} AS ({source.sql})")
                cte_params.extend(source.params)
            if source.joined:
                joins.append(f"LEFT JOIN {_qn(source.alias)} ON {_qn(source.alias)}.{_qn('account_id')} = "
                             f"{_qn('a')}.{_qn('id')}")
        health = self.column_of["health_score"]
        sql = (
            f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM {_qn('a')} {' '.join(joins)} WHERE {where} "
            f"ORDER BY CASE WHEN {health} IS NULL THEN 1 ELSE 0 END, {health}, {self.column_of['name']}, "
            f"{self.column_of['id']}"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            _tune(cursor)
            postgresql = connection.vendor == "postgresql"
            if postgresql:  # numerics as floats, converted by the driver, not per row
                cursor.cursor.adapters.register_loader("numeric", FloatLoader)
            cursor.execute(sql, [*cte_params, *params])
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, values)) for values in cursor.fetchall()]
            return rows if postgresql else [_clean_row(row) for row in rows]


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


def _clean_row(row: dict) -> dict:
    """Raw values as Python types the reasons can use the same way on PostgreSQL and SQLite."""
    for key, value in row.items():
        if type(value) is Decimal:
            row[key] = float(value)
    if not isinstance(row["id"], uuid.UUID):
        row["id"] = uuid.UUID(str(row["id"]))
    if isinstance(row.get("renewal_date"), str):
        row["renewal_date"] = date.fromisoformat(row["renewal_date"])
    return row


def sql_value(value):
    """A condition parameter as the database driver wants it."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, date):
        return connection.ops.adapt_datefield_value(value)
    return value


# --- surveys -------------------------------------------------------------------------------------

def add_surveys(signals: AccountSignals, since: datetime) -> None:
    """The survey family: one pass over the window's survey responses (shared by every evaluator asking for the
    same window). ``nps``: %promoters (9-10) minus %detractors (0-6) of the NPS responses, -100..100 (NULL
    without one), with ``nps_count``, ``nps_promoters``, ``nps_detractors``; ``csat``: the average CSAT (1-5)
    with ``csat_count``. Survey comments that mention churn are counted by ``add_mentions``."""
    is_nps, is_csat = Q(kind=SurveyResponse.Kind.NPS), Q(kind=SurveyResponse.Kind.CSAT)
    signals.add("s_surveys", SurveyResponse.objects.for_tenant(signals.tenant).filter(responded_at__gte=since)
                .order_by().values("account_id").annotate(
                    nps_count=Count("pk", filter=is_nps), nps_promoters=Count("pk", filter=is_nps & Q(score__gte=9)),
                    nps_detractors=Count("pk", filter=is_nps & Q(score__lte=6)),
                    csat_count=Count("pk", filter=is_csat), csat_sum=Sum("score", filter=is_csat)),
                shared=True)
    signals.define("nps", "({nps_promoters} - {nps_detractors}) * 100.0 / NULLIF({nps_count}, 0)")
    signals.define("csat", "{csat_sum} * 1.0 / NULLIF({csat_count}, 0)")


# --- health --------------------------------------------------------------------------------------

# Churn risk (0..1) = the risk level's base + the health score points lost over the window / 100, at most 1.
CHURN_RISK_BASE = {
    RiskLevel.HEALTHY: 0.05,
    RiskLevel.MODERATE: 0.20,
    RiskLevel.AT_RISK: 0.40,
    RiskLevel.CRITICAL: 0.70,
}


def add_health(signals: AccountSignals, since: datetime) -> None:
    """``health_baseline``: the score the account had when the window started (the latest recorded
    at or before it, else the earliest inside it: two index lookups per account, however long the
    history); ``health_drop``: points lost since (negative = gained); ``churn_risk`` from the risk
    level and the negative trend. NULL without a health score.

    On PostgreSQL the baseline is the health family: two passes over the window's edge of the score history
    (``DISTINCT ON`` per account), cheaper than two index lookups per account once a tenant has 100,000."""
    if connection.vendor == "postgresql":
        scores = HealthScore.objects.for_tenant(signals.tenant).values("account_id")
        signals.add("s_health_before", scores.filter(calculated_at__lte=since)
                    .order_by("account_id", "-calculated_at", "-id").distinct("account_id")
                    .annotate(score_before=F("overall_score")), shared=True)
        signals.add("s_health_after", scores.filter(calculated_at__gt=since)
                    .order_by("account_id", "calculated_at", "id").distinct("account_id")
                    .annotate(score_after=F("overall_score")), shared=True)
    else:
        scores = HealthScore.objects.filter(account=OuterRef("pk"))
        before = scores.filter(calculated_at__lte=since).order_by("-calculated_at", "-id").values("overall_score")[:1]
        after = scores.filter(calculated_at__gt=since).order_by("calculated_at", "id").values("overall_score")[:1]
        signals.annotate(score_before=Subquery(before, output_field=FloatField()),
                         score_after=Subquery(after, output_field=FloatField()))
    signals.define("health_baseline", "COALESCE({score_before}, {score_after})")
    signals.define("health_drop", "CASE WHEN {health_score} IS NULL THEN NULL "
                                  "ELSE {health_baseline} - {health_score} END")
    base = " ".join(f"WHEN {{risk_level}} = '{level}' THEN {value}" for level, value in CHURN_RISK_BASE.items())
    signals.define("churn_risk_base", f"CASE {base} ELSE NULL END")
    signals.define("churn_risk_raw", "{churn_risk_base} + CASE WHEN {health_drop} > 0 THEN {health_drop} / 100.0 "
                                     "ELSE 0 END")
    signals.define("churn_risk", "CASE WHEN {churn_risk_raw} > 1 THEN 1.0 ELSE {churn_risk_raw} END")


# --- churn mentions ------------------------------------------------------------------------------

def keyword_pattern(words: list[str], vendor: str | None = None) -> str:
    """A case-insensitive regex matching any of ``words`` at the start of a word ("cancel" also finds
    "cancelling"). Words are validated to letters, digits, spaces, hyphens and apostrophes, so they
    need no escaping. PostgreSQL spells the word start ``\\m``, Python (SQLite) ``\\b``."""
    start = r"\m" if (vendor or connection.vendor) == "postgresql" else r"\b"
    return start + "(" + "|".join(words) + ")"


def add_mentions(signals: AccountSignals, since: datetime, pattern: str) -> None:
    """Notes, survey comments and support tickets (subject or description) of the window that mention churn:
    ``mentions_notes``, ``mentions_surveys``, ``mentions_tickets``, summed up in ``mentions``. A text counts
    once however many words it contains."""
    tenant = signals.tenant
    signals.add("s_comments", SurveyResponse.objects.for_tenant(tenant)
                .filter(responded_at__gte=since, comment__iregex=pattern)
                .order_by().values("account_id").annotate(n_comments=Count("pk")))
    signals.define("mentions_surveys", "COALESCE({n_comments}, 0)")
    signals.add("s_notes", Note.objects.for_tenant(tenant).filter(created_at__gte=since, body__iregex=pattern)
                .order_by().values("account_id").annotate(n_notes=Count("pk")))
    signals.add("s_ticket_text", SupportTicket.objects.for_tenant(tenant)
                .filter(Q(subject__iregex=pattern) | Q(description__iregex=pattern), opened_at__gte=since)
                .order_by().values("account_id").annotate(n_tickets=Count("pk")))
    signals.define("mentions_notes", "COALESCE({n_notes}, 0)")
    signals.define("mentions_tickets", "COALESCE({n_tickets}, 0)")
    signals.define("mentions", "{mentions_notes} + {mentions_surveys} + {mentions_tickets}")


# --- usage ---------------------------------------------------------------------------------------

def add_usage(signals: AccountSignals, today: date, window_days: int, *, trend: bool = False,
              features: bool = False, target_features: list[str] | None = None) -> int:
    """The usage family: one pass over the usage rows of the last ``window_days`` (shared by every evaluator
    asking for the same window, whatever signals it reads from it).

    ``usage_days``, ``active_users_avg`` (average daily active users), ``dau_mau`` (sum of DAU / sum
    of MAU; NULL without MAU), ``seat_utilisation`` (average daily active users / licensed seats;
    NULL without seats). With ``trend``: ``active_recent`` and ``active_previous``, the average daily
    active users of the window's recent half and of the half before it, and ``usage_change_pct``.
    With ``features``: ``features_used_count`` and ``features_used_list`` (JSON), the distinct
    features the account used among the known ones, and ``known_features`` (JSON) and
    ``known_features_count``: ``target_features`` if given, else every feature any of the tenant's
    accounts used in the window. Returns the length of a half window."""
    since = today - timedelta(days=window_days - 1)
    half = max(1, window_days // 2)
    recent_since = today - timedelta(days=half - 1)
    previous_since = recent_since - timedelta(days=half)
    in_window = Q(date__gte=since)
    recent, previous = Q(date__gte=recent_since), Q(date__gte=previous_since, date__lt=recent_since)
    rows = UsageMetric.objects.for_tenant(signals.tenant).filter(date__gte=min(since, previous_since)).order_by()
    # The feature arrays of an account repeat from day to day: its distinct arrays are few, and
    # ``_add_features`` reads the features from them, not from every row.
    signals.add("s_usage", rows.values("account_id").annotate(
        n_usage_days=Count("pk", filter=in_window), active_users_sum=Sum("active_users", filter=in_window),
        dau_sum=Sum("dau", filter=in_window), mau_sum=Sum("mau", filter=in_window),
        recent_sum=Sum("active_users", filter=recent), recent_days=Count("pk", filter=recent),
        previous_sum=Sum("active_users", filter=previous), previous_days=Count("pk", filter=previous),
        feature_sets=DistinctArrays("features_used", filter=in_window)), shared=True)
    signals.define("usage_days", "COALESCE({n_usage_days}, 0)")
    signals.define("active_users_avg", "{active_users_sum} * 1.0 / NULLIF({n_usage_days}, 0)")
    signals.define("dau_mau", "CASE WHEN {mau_sum} > 0 THEN {dau_sum} * 1.0 / {mau_sum} ELSE NULL END")
    signals.define("seat_utilisation", "CASE WHEN {licensed_seats} > 0 THEN {active_users_avg} / {licensed_seats} "
                                       "ELSE NULL END")
    if trend:
        signals.define("active_recent", "{recent_sum} * 1.0 / NULLIF({recent_days}, 0)")
        signals.define("active_previous", "{previous_sum} * 1.0 / NULLIF({previous_days}, 0)")
        signals.define("usage_change_pct", "CASE WHEN {active_previous} > 0 AND {active_recent} IS NOT NULL "
                                           "THEN ({active_recent} - {active_previous}) * 100.0 / {active_previous} "
                                           "ELSE NULL END")
    if features:
        _add_features(signals, target_features)
    return half


class DistinctArrays(Aggregate):
    """The distinct JSON arrays of a group: a PostgreSQL ``jsonb[]``, a JSON array of arrays on SQLite."""

    function = "ARRAY_AGG"
    allow_distinct = True
    output_field = JSONField()

    def __init__(self, expression, **extra):
        super().__init__(expression, distinct=True, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="JSON_GROUP_ARRAY", **extra)


def _add_features(signals: AccountSignals, target_features: list[str] | None) -> None:
    usage = _qn("s_usage")
    in_window = f"u.{_qn('n_usage_days')} > 0"
    if connection.vendor == "postgresql":
        elements = ("unnest(u.feature_sets) AS s(value) CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN "
                    "jsonb_typeof(s.value) = 'array' THEN s.value ELSE '[]'::jsonb END) AS f(value)")
        only_targets = " WHERE f.value = ANY(%s)" if target_features else ""
        params = [list(target_features)] if target_features else []
        as_list = "array_to_json(array_agg(DISTINCT f.value ORDER BY f.value))::text"
        catalog_list = "(SELECT array_to_json(array_agg(feature ORDER BY feature))::text FROM {@s_catalog})"
        # Per account, from its few distinct arrays (a LATERAL subquery: no sort of every element of the tenant).
        features = (f"SELECT u.account_id AS account_id, x.features_used_n, x.features_used_list FROM {usage} u "
                    f"CROSS JOIN LATERAL (SELECT COUNT(DISTINCT f.value) AS features_used_n, {as_list} AS "
                    f"features_used_list FROM {elements}{only_targets}) AS x WHERE {in_window}")
        catalog = (f"SELECT DISTINCT f.value AS feature FROM (SELECT DISTINCT s.value FROM {usage} u "
                   f"CROSS JOIN LATERAL unnest(u.feature_sets) AS s(value) WHERE {in_window}) AS s "
                   "CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(s.value) = 'array' "
                   "THEN s.value ELSE '[]'::jsonb END) AS f(value)")
    else:
        elements = f"{usage} u, json_each(u.feature_sets) AS s, json_each(s.value) AS f WHERE {in_window}"
        only_targets = (f" AND f.value IN ({', '.join(['%s'] * len(target_features))})"
                        if target_features else "")
        params = list(target_features or [])
        as_list = "json_group_array(DISTINCT f.value)"
        catalog_list = "(SELECT json_group_array(feature) FROM (SELECT feature FROM {@s_catalog} ORDER BY feature))"
        features = (f"SELECT u.account_id AS account_id, COUNT(DISTINCT f.value) AS features_used_n, "
                    f"{as_list} AS features_used_list FROM {elements}{only_targets} GROUP BY u.account_id")
        catalog = f"SELECT DISTINCT f.value AS feature FROM {elements}"
    signals.add("s_features", sql=features, params=params,
                columns=("account_id", "features_used_n", "features_used_list"), requires=("s_usage",))
    signals.define("features_used_count", "COALESCE({features_used_n}, 0)")
    if target_features:
        signals.define("known_features_count", str(len(target_features)))
        signals.define("known_features", "NULL")
    else:
        signals.add("s_catalog", sql=catalog, columns=("feature",), requires=("s_usage",), joined=False)
        signals.define("known_features_count", "(SELECT COUNT(*) FROM {@s_catalog})")
        signals.define("known_features", catalog_list)


def features_list(value) -> list[str]:
    """A JSON list of feature names from the database, sorted."""
    if value is None:
        return []
    names = value if isinstance(value, list) else json.loads(value)
    return sorted(name for name in names if type(name) is str)


def tenant_feature_catalog(tenant, since: date) -> list[str]:
    """Every feature any of the tenant's accounts used since ``since`` (one query)."""
    table = _qn(UsageMetric._meta.db_table)
    tenant_id = UsageMetric._meta.get_field("tenant").get_db_prep_value(getattr(tenant, "pk", tenant), connection)
    if connection.vendor == "postgresql":
        sql = (f"SELECT DISTINCT f.value FROM (SELECT DISTINCT features_used FROM {table} "
               f"WHERE tenant_id = %s AND date >= %s AND jsonb_typeof(features_used) = 'array') u "
               f"CROSS JOIN LATERAL jsonb_array_elements_text(u.features_used) AS f(value) ORDER BY 1")
    else:
        sql = (f"SELECT DISTINCT f.value FROM (SELECT DISTINCT features_used FROM {table} "
               f"WHERE tenant_id = %s AND date >= %s) u, json_each(u.features_used) AS f ORDER BY 1")
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_id, connection.ops.adapt_datefield_value(since)])
        return [row[0] for row in cursor.fetchall() if isinstance(row[0], str)]


# --- support tickets -----------------------------------------------------------------------------

OPEN_TICKET_STATUSES = (SupportTicket.Status.OPEN, SupportTicket.Status.PENDING)


def add_tickets(signals: AccountSignals, now: datetime, since: datetime, first_response: timedelta | None,
                resolution: timedelta | None) -> None:
    """Tickets opened in the window that breached the first-response or resolution target (answered
    or resolved late, or still waiting past the target): ``first_response_breaches``,
    ``resolution_breaches``, ``sla_breaches`` (either, counted once), ``tickets_in_window``; and
    ``open_urgent``: urgent tickets open or pending now, whatever their age."""
    never = Q(pk__in=[])
    first_late = never
    if first_response is not None:
        first_late = (Q(first_response_at__gt=F("opened_at") + first_response)
                      | Q(first_response_at__isnull=True, opened_at__lt=now - first_response))
    resolution_late = never
    if resolution is not None:
        resolution_late = (Q(resolved_at__gt=F("opened_at") + resolution)
                           | Q(resolved_at__isnull=True, status__in=OPEN_TICKET_STATUSES,
                               opened_at__lt=now - resolution))
    in_window = Q(opened_at__gte=since)
    urgent_open = Q(status__in=OPEN_TICKET_STATUSES, priority=SupportTicket.Priority.URGENT)
    signals.add("s_tickets", SupportTicket.objects.for_tenant(signals.tenant).filter(in_window | urgent_open)
                .order_by().values("account_id").annotate(
                    n_in_window=Count("pk", filter=in_window),
                    n_first_late=Count("pk", filter=in_window & first_late),
                    n_resolution_late=Count("pk", filter=in_window & resolution_late),
                    n_breaches=Count("pk", filter=in_window & (first_late | resolution_late)),
                    n_open_urgent=Count("pk", filter=urgent_open)))
    for name, column in (("tickets_in_window", "n_in_window"), ("first_response_breaches", "n_first_late"),
                         ("resolution_breaches", "n_resolution_late"), ("sla_breaches", "n_breaches"),
                         ("open_urgent", "n_open_urgent")):
        signals.define(name, f"COALESCE({{{column}}}, 0)")
