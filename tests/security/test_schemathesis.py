"""Hostile input and schema truth: schemathesis against the project's own OpenAPI schema, in-process over WSGI.

The schema is loaded from ``/api/schema/`` of the WSGI app with the API token of the demo tenant's admin
(``accounts.demo.demo_seed``, plus a few rules, a webhook rule, a SuccessPlay and a CRM journey execution made
through the API); every operation of the schema gets a bounded, deterministic number of generated requests:
valid ones (half of them on real rows of the demo tenant, so updates and actions reach the serializers and
services) and deliberately invalid ones. Every check of schemathesis runs on every response (``ALL_CHECKS``):
no 5xx; the status code, content type, headers and body are the documented ones; invalid requests are rejected
(4xx) and valid ones accepted (2xx, or a 404 / 409 the schema lists).

"Valid" means valid against the schema *and* consistent with the stored data, as a client's request would be:
a valid request's foreign keys, filters by row and credentials are real ones of the demo tenant (``references``,
chosen to fit the parameter's schema); fields that only go together get a combination known to be valid
(``COUPLED``: the rules no schema can state, such as a rule's trigger and actions or a ticket's dates in order);
values that must be new are made unique (``UNIQUE``). Generated strings never hold NUL (``allow_x00``): the API
refuses it everywhere, and ``test_bad_input.py`` covers that. Invalid requests are schemathesis' own.

One test per app (accounts, automation and its delivery, playbooks, crm), so ``-n 2`` spreads them. Operations of other
apps that are known to fail are listed in ``KNOWN_FAILURES`` with a reproduction: they run apart, one test per app, as
expected failures (``xfail``, not strict: an XPASS in the summary means the owner fixed them; remove the entries).
A summary (operations, examples, statuses) is printed; run with ``-s`` to see it.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import os
import re
import time
from collections import Counter

import jsonschema_rs
import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.checks import CHECKS as CHECK_REGISTRY
from schemathesis.checks import load_all_checks
from werkzeug.test import Client as WerkzeugClient

from accounts.demo import DEMO_ADMIN, demo_seed
from accounts.models import Contact
from crm.discounts import discount_issue
from crm.models import CRMPlaybookExecution
from csplatform.tenancy import tenant_context
from tests.factories import token_for

pytestmark = pytest.mark.django_db

ACCOUNTS_RESOURCES = (
    "accounts", "contacts", "opportunities", "tags", "journey-stages", "journey-history", "health-scores", "usage-metrics",
    "surveys", "tickets", "engagements", "goals", "tasks", "notes", "audit-log",
)
# Every operation of the schema belongs to one of these groups (``test_every_operation_is_in_a_group``).
GROUPS = {
    "accounts": rf"^/api/(({'|'.join(ACCOUNTS_RESOURCES)})/.*|tenant/|auth/token/|auth/tokens/.*)$",
    "automation": r"^/api/(admin/automation|event-triggers|hooks)/.*$",
    "delivery": r"^/api/(outbox|email-templates|webhook-secrets|integration-credentials|email-events|suppressions"
                r"|email-feedback)/.*$",  # automation too
    "playbooks": r"^/api/(playbook-triggers|playbooks)/.*$",
    "crm": r"^/api/(v1/crm|billing)/.*$",
}
# Left out: they revoke the token the run authenticates with (the only row of /api/auth/tokens/), so every
# later request would be a 401 (tests/security/test_hardening.py and test_api_tokens.py cover them).
EXCLUDED = {"POST /api/auth/token/revoke/", "DELETE /api/auth/tokens/{id}/"}

# Operations of other apps that fail today: label -> reproduction (demo tenant, admin token). Empty: the
# schema mismatches this run found in automation and playbooks (nullable method fields, blank choices)
# are fixed; add an entry here, with its reproduction, only while its owner fixes it.
KNOWN_FAILURES: dict[str, str] = {}

# Bounded and deterministic in the suite; a longer hunt: SCHEMATHESIS_EXAMPLES=100 SCHEMATHESIS_RANDOM=1.
POSITIVE_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
NEGATIVE_EXAMPLES = max(1, POSITIVE_EXAMPLES // 2)
DERANDOMIZE = not os.environ.get("SCHEMATHESIS_RANDOM")
load_all_checks()
# Every check schemathesis has; the ones issue 15 names must be among them.
ALL_CHECKS = [check for check in CHECK_REGISTRY.get_all() if not isinstance(check, type)]
assert {"not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
        "negative_data_rejection", "positive_data_acceptance"} <= {check.__name__ for check in ALL_CHECKS}

WEBHOOK_RULE = {  # seed 003's shape (/api/event-triggers/): is_active makes it live, so its hook runs it
    "name": "Inbound lead", "trigger_type": "webhook", "is_active": True,
    "trigger_conditions": [{"field": "score", "operator": "greater_than", "value": 80}],
    "action_configuration": {"actions": [{"type": "create_note", "body": "Lead scored {{ entity.score }}"}]},
}
ACCOUNT_RULE = {
    "name": "Onboarding Sequence", "trigger_type": "account_created", "trigger_config": {"status": "onboarding"},
    "action_type": "create_task", "action_config": {"title": "Kick-off call with {{ account.name }}"},
}
SUCCESS_PLAY = {  # seed 004's SuccessPlay, run by hand below so that its execution exists
    "name": "Executive check-in", "trigger_type": "manual", "is_active": True,
    "actions": [{"type": "create_task", "title": "Call {{ account.name }}"}],
}


@pytest.fixture
def wsgi_app():
    """The real WSGI application, minus what only Django's test client knows to switch off: closing the
    database connection at the start and end of each request (it would end the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def rows_of(body) -> list:
    """The rows of a list response: a plain list, a DRF page (``results``) or seed 001's ``{"workflows": [...]}``."""
    if isinstance(body, dict):
        return body.get("results", next((value for value in body.values() if isinstance(value, list)), []))
    return body


@pytest.fixture
def seeded_api(wsgi_app):
    """The schema, the demo admin's token, real path parameters per collection, real references and what to do
    after a successful request (``after``, by operation)."""
    demo_seed()
    admin = get_user_model().objects.get(email=DEMO_ADMIN[0])
    headers = {"Authorization": f"Token {token_for(admin)}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app, headers=headers)
    schema.config.generation.update(allow_x00=False)
    # Through the same WSGI app: Django's test client would switch connection closing back on.
    client = WerkzeugClient(wsgi_app)

    def call(method, path, body=None, expected=200):
        response = client.open(path, method=method, headers=headers, json=body)
        assert response.status_code == expected, (method, path, response.text)
        return response.json

    def first_rows(path):
        return rows_of(call("GET", path))

    # Rows the demo has none of, made through the API like a client would.
    hook = call("POST", "/api/event-triggers/", WEBHOOK_RULE, 201)
    assert hook["webhook_token"] and hook["status"] == "active", hook
    call("POST", "/api/admin/automation/", ACCOUNT_RULE, 201)
    accounts = first_rows("/api/accounts/?ordering=name")
    account = accounts[0]["id"]
    contact = first_rows(f"/api/contacts/?account={account}")[0]
    journey = first_rows("/api/v1/crm/playbooks/?active=true")[0]
    execution = call("POST", "/api/v1/crm/executions/", {"contact": contact["id"], "playbook": journey["name"]}, 201)
    call("POST", "/api/playbook-triggers/evaluate-all/", {})
    play = call("POST", "/api/playbooks/", SUCCESS_PLAY, 201)
    call("POST", f"/api/playbooks/{play['id']}/trigger/", {"account_id": account}, 201)
    opportunity = call("POST", "/api/opportunities/", {"account": account, "name": "Renewal 2027"}, 201)
    trigger = next(iter(call("GET", "/api/playbook-triggers/")["triggers"].values()))["trigger_id"]
    tenant = Contact.objects.get(pk=contact["id"]).tenant
    with tenant_context(tenant):  # issued by journey steps only, no endpoint makes one
        code = discount_issue(contact=Contact.objects.get(pk=contact["id"]), percent=20,
                              execution=CRMPlaybookExecution.objects.get(pk=execution["id"])).code

    # Path parameters naming a real row: ``{id}`` of each collection's first row (of the referenced account
    # where the collection filters by account, so that a row and the references of a valid body agree), the
    # webhook rule's token.
    path_parameters = {"/api/hooks/": {"token": hook["webhook_token"]}, "/api/accounts/": {"id": account}}
    for operation in schema.get_all_operations():
        path = operation.ok().path
        if "{id}" in path and (collection := path.split("{id}")[0]) not in path_parameters:
            of_account = client.open(f"{collection}?account={account}", headers=headers)
            rows = (rows_of(of_account.json) if of_account.status_code == 200 else []) or first_rows(collection)
            if rows:
                path_parameters[collection] = {"id": str(rows[0]["id"])}
    # Candidates for the fields and filters of valid requests that name rows, by name: the first that fits the
    # field's schema is used (``stage`` is a name in move-stage's body, an id in journey-history's filter).
    # A parent that closes no loop with the account of the path (the demo's GlobalTech has a child).
    parent = next(row["id"] for row in accounts if row["id"] != account and row["parent"] is None
                  and not any(child["parent"] == row["id"] for child in accounts))
    configured = {row["integration"] for row in first_rows("/api/integration-credentials/")}
    references = {
        "account": [account], "account_id": [account], "parent": [parent], "contact": [contact["id"]],
        "contact_id": [contact["id"]], "opportunity": [opportunity["id"]], "owner": [admin.pk],
        "assignee": [admin.pk], "user": [admin.pk], "actor": [admin.pk], "actor_email": [admin.email],
        "tag_ids": [[first_rows("/api/tags/")[0]["id"]]],
        "stage": ["Adoption", first_rows("/api/journey-stages/")[0]["id"]], "workflow": [hook["id"]],
        "workflow_id": [hook["id"]], "trigger": [trigger], "execution": [execution["id"]],
        "playbook": [journey["name"], play["id"]], "journey": [journey["name"]], "code": [code],
        "username": [admin.email], "password": [DEMO_ADMIN[1]], "scope_accounts": [[account]], "triggers": [{}],
        "scores": [[{"account": account, "usage_score": "72"}]],  # the bulk import's rows name real accounts too
        # a credential for an integration the demo has none of (each one made is deleted again: ``run_operation``)
        "integration": sorted({"slack", "sms", "telegram", "hubspot", "salesforce"} - configured),
        ("^/api/billing/", "email"): [contact["email"]],
    }

    def delete_credential(response):
        client.open(f"/api/integration-credentials/{response.json()['id']}/", method="DELETE", headers=headers)

    # What follows a successful request: one credential per integration, so the next valid POST finds it free.
    after = {"POST /api/integration-credentials/": delete_credential}
    return schema, headers, path_parameters, references, after


def dereferenced(schema, root: dict, depth: int = 0):
    """``schema`` with its ``$ref``s to components replaced by what they name (the schema's few levels deep)."""
    if depth > 8:
        return schema
    if isinstance(schema, dict):
        if "$ref" in schema:
            target = root
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return dereferenced(target, root, depth + 1)
        return {key: dereferenced(value, root, depth + 1) for key, value in schema.items()}
    if isinstance(schema, list):
        return [dereferenced(item, root, depth + 1) for item in schema]
    return schema


MISSING = object()


def fitting(candidates: list, schema: dict, root: dict):
    """The first candidate valid against ``schema`` (OpenAPI 3.0's ``nullable`` aside), else ``MISSING``."""
    validator = jsonschema_rs.validator_for(dereferenced(schema, root))
    return next((candidate for candidate in candidates if validator.is_valid(candidate)), MISSING)


def references_for(operation, references: dict) -> tuple[dict, dict, dict]:
    """Real values for this operation's query parameters and body fields that name rows, and the schemas of its
    body's fields: ``(query, body, properties)``. A reference keyed ``(path regex, name)`` holds on those paths."""
    root = operation.schema.raw_schema
    definition = root["paths"][operation.path][operation.method.lower()]
    here = {**references, **{key[1]: values for key, values in references.items()
                             if isinstance(key, tuple) and re.match(key[0], operation.path)}}
    query = {}
    for parameter in definition.get("parameters", []):
        if parameter["in"] == "query" and parameter["name"] in here:
            value = fitting(here[parameter["name"]], parameter.get("schema", {}), root)
            if value is not MISSING:
                query[parameter["name"]] = value
    body_schema = definition.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    properties = dereferenced(body_schema, root).get("properties", {}) if body_schema else {}
    body = {}
    for name, schema in properties.items():
        if name in here:
            value = fitting(here[name], schema, root)
            if value is not MISSING:
                body[name] = value
    return query, body, properties


DROP = object()  # in COUPLED: the field is left out
REFERENCE = object()  # in COUPLED: the field's reference (``references``)
RULE_ACTION = {"type": "create_task", "title": "Kick-off call with {{ account.name }}"}
# Fields of a valid request that only go together, the rules the schema cannot state: a body (or query) that holds
# any of them gets the whole set, a combination known to be valid (path regex -> values; ``ALWAYS``: every body).
# A rule's trigger, conditions and actions are the engine's language, checked by its own tests; here they are one
# valid rule.
ALWAYS = "*"
COUPLED = [
    (r"^/api/admin/automation/(\{id\}/)?$", {
        "trigger_type": "account_created", "trigger_config": {}, "model_type": DROP, "condition_config": DROP,
        "action_type": "create_task", "action_config": {"title": RULE_ACTION["title"]}, "actions": DROP,
        "rate_limiting": DROP}),
    (r"^/api/event-triggers/(\{id\}/)?$", {
        "trigger_type": "account_created", "trigger_config": {}, "model_type": DROP, "trigger_conditions": DROP,
        "action_configuration": {"actions": [RULE_ACTION]}, "rate_limiting": DROP}),
    (r"^/api/playbooks/(\{id\}/)?$", {
        "trigger_type": "manual", "trigger_config": {}, "conditions": {}, "actions": [RULE_ACTION], "webhook_url": ""}),
    # which row a run is about: the account (the rule's model decides what else fits)
    (r"^/api/(admin/automation/(execute|\{id\}/test)|event-triggers/\{id\}/execute)/$",
     {ALWAYS: True, "entity_type": DROP, "entity_id": DROP, "account_id": REFERENCE}),
    # the risk bands descend (also against the stored ones, on a PATCH of one)
    (r"^/api/tenant/$", {"band_healthy": "80", "band_moderate": "60", "band_at_risk": "40"}),
    # a window that ends after it starts
    (r"^/api/v1/crm/stats/$", {"started_after": "2024-01-01T00:00:00Z", "started_before": "2034-01-01T00:00:00Z"}),
    # a ticket is answered and resolved after it was opened (also against the stored opened_at, on a PATCH)
    (r"^/api/tickets/", {"opened_at": "2024-01-02T09:00:00Z", "first_response_at": "2024-01-02T10:30:00Z",
                         "resolved_at": "2024-01-03T16:00:00Z"}),
    # a score on the scale of its kind (also against the stored kind, on a PATCH)
    (r"^/api/surveys/", {"kind": "nps", "score": 9}),
    # html or seed 001's html_content, not two different ones; a body that uses only declared variables
    (r"^/api/email-templates/(\{id\}/)?$", {
        "html": "<p>Hello {{ account.name }}</p>", "html_content": DROP, "text": "Hello", "text_content": DROP,
        "subject": "Hello {{ account.name }}", "variables": []}),
    (r"^/api/health-scores/", {"calculated_at": DROP}),  # never in the future: now, by default
    (r"^/api/integration-credentials/", {"base_url": "", "config": {}}),
]
# Fields whose value must be new in the tenant (a duplicate is a 400 naming the field): made unique per request.
UNIQUE = [(r"^/api/(tags|journey-stages|email-templates|playbooks)/(\{id\}/)?$", "name"),
          (r"^/api/usage-metrics/", "date")]
_unique_counter = itertools.count(1)


def made_unique(value, schema: dict):
    number = next(_unique_counter)
    if schema.get("format") == "date":
        return (datetime.date(1990, 1, 1) + datetime.timedelta(days=number)).isoformat()
    room = max(schema.get("maxLength", 200) - 8, 0)
    return f"{str(value)[:room]}~{number:07d}"


def strategy_for(operation, path_parameters: dict, references: dict, mode: GenerationMode):
    """Cases for ``operation``. Valid ones name a real row of the demo tenant half of the time in the path
    (``{id}``, ``{token}``), and always in the payload and the filters (account, contact, owner, ...), so they
    reach the services."""
    generated = operation.as_strategy(generation_mode=mode)
    if mode != GenerationMode.POSITIVE:
        return generated
    real = next((values for prefix, values in path_parameters.items() if operation.path.startswith(prefix)
                 and all(f"{{{name}}}" in operation.path for name in values)), None)
    if real:
        generated = st.one_of(generated, operation.as_strategy(generation_mode=mode, path_parameters=real))
    query, body, properties = references_for(operation, references)
    coupled = [values for regex, values in COUPLED if re.match(regex, operation.path)]
    unique = [name for regex, name in UNIQUE if re.match(regex, operation.path) and name in properties]
    query_names = {parameter.name for parameter in operation.query}

    def couple(values: dict, given: dict, known) -> None:
        if not (values.get(ALWAYS) or set(values) & set(given)):
            return
        for name, value in values.items():
            if value is DROP:
                given.pop(name, None)
            elif value is REFERENCE:
                if name in body and name in known:
                    given[name] = body[name]
            elif name in known:
                given[name] = value

    always = any(values.get(ALWAYS) for values in coupled)

    def refer_to_real_rows(case):
        if always and case.body is NOT_SET:
            case.body = {}
        if isinstance(case.query, dict):
            case.query.update({name: value for name, value in query.items() if name in case.query})
            for values in coupled:
                couple(values, case.query, query_names)
        if isinstance(case.body, dict):
            case.body.update({name: value for name, value in body.items() if name in case.body})
            for values in coupled:
                couple(values, case.body, properties)
            for name in unique:
                if name in case.body:
                    case.body[name] = made_unique(case.body[name], properties[name])
        return case

    return generated.map(refer_to_real_rows)


def run_operation(operation, headers: dict, path_parameters: dict, references: dict, after: dict,
                  mode: GenerationMode, examples: int, statuses: Counter) -> int:
    count = 0

    @settings(max_examples=examples, derandomize=DERANDOMIZE, database=None, deadline=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy_for(operation, path_parameters, references, mode))
    def check(case):
        nonlocal count
        count += 1
        response = case.call(headers=headers)
        statuses[f"{response.status_code // 100}xx"] += 1
        if response.status_code < 300 and operation.label in after:
            after[operation.label](response)
        case.validate_response(response, checks=ALL_CHECKS, headers=headers)

    check()
    return count


def operations_of(schema, path_regex: str, labels=None) -> list:
    operations = [result.ok() for result in schema.include(path_regex=path_regex).get_all_operations()]
    operations = [op for op in operations if op.label not in EXCLUDED
                  and (op.label in labels if labels is not None else op.label not in KNOWN_FAILURES)]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # deleting the real rows comes last
    return operations


def run(seeded_api, operations, name: str) -> list[str]:
    _schema, headers, path_parameters, references, after = seeded_api
    started, examples, statuses, failures = time.monotonic(), Counter(), Counter(), []
    for operation in operations:
        for mode, budget in ((GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
                             (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)):
            try:
                examples[mode.value] += run_operation(operation, headers, path_parameters, references, after,
                                                      mode, budget, statuses)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label  # nothing to get wrong (GET /api/tenant/)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report every operation's failures
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:10000]}")
    elapsed = time.monotonic() - started
    print(f"\nschemathesis {name}: {len(operations)} operations, {examples['positive']} positive + "
          f"{examples['negative']} negative examples, responses {dict(sorted(statuses.items()))}, {elapsed:.1f} s")
    return failures


@pytest.mark.parametrize("group", GROUPS)
def test_the_api_survives_generated_and_hostile_input(seeded_api, caplog, group):
    caplog.set_level(logging.ERROR, logger="django.request")  # thousands of expected 4xx warnings otherwise
    operations = operations_of(seeded_api[0], GROUPS[group])  # raises on an invalid definition
    assert operations, group
    failures = run(seeded_api, operations, group)
    assert not failures, "\n\n".join(failures)


def test_every_operation_is_in_a_group(seeded_api):
    labels = {result.ok().label for result in seeded_api[0].get_all_operations()}
    grouped = {label for label in labels
               if any(re.match(regex, label.split(" ", 1)[1]) for regex in GROUPS.values())}
    assert labels - grouped - EXCLUDED == set(), "add the new paths to GROUPS"
    assert {"GET /api/audit-log/", "PATCH /api/tenant/", "POST /api/auth/token/", "POST /api/hooks/{token}/",
            "POST /api/playbook-triggers/evaluate-all/", "DELETE /api/v1/crm/executions/{id}/"} <= labels
    assert set(KNOWN_FAILURES) <= labels, "a known failure names an operation the schema no longer has"


def known_failures_of(group: str) -> dict[str, str]:
    return {label: repro for label, repro in KNOWN_FAILURES.items() if re.match(GROUPS[group], label.split(" ", 1)[1])}


@pytest.mark.parametrize("group", [
    pytest.param(group, marks=pytest.mark.xfail(
        reason=f"known failures, reproductions in KNOWN_FAILURES: {', '.join(known_failures_of(group))}", strict=False))
    for group in GROUPS if known_failures_of(group)])
def test_known_failures_of_other_apps(seeded_api, caplog, group):
    """The operations of ``KNOWN_FAILURES``, one run per app (an XPASS: all fixed). One that passes already is
    named in the output: remove it from ``KNOWN_FAILURES``, so that the main test guards it again."""
    caplog.set_level(logging.ERROR, logger="django.request")
    known = known_failures_of(group)
    operations = operations_of(seeded_api[0], GROUPS[group], labels=set(known))
    assert sorted(op.label for op in operations) == sorted(known)
    failures = run(seeded_api, operations, f"{group} (known failures)")
    fixed = [label for label in known if not any(failure.startswith(f"{label} (") for failure in failures)]
    if fixed:
        print(f"schemathesis: known failures that passed in this run (once they always do, remove them from "
              f"KNOWN_FAILURES): {fixed}")
    assert not failures, "\n\n".join(failures)
