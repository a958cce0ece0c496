"""Hostile input: schemathesis against the project's own OpenAPI schema, in-process over WSGI.

The schema is loaded from ``/api/schema/`` of the WSGI app with the API token of the demo tenant's admin
(``accounts.demo.demo_seed``); every operation of the accounts app (``/api/accounts/`` ... ``/api/notes/``,
``/api/tenant/``, ``/api/audit-log/``, the token login) gets a bounded, deterministic number of generated
requests: valid-looking ones (half of them on real rows of the demo tenant, so updates and actions reach the
serializers and services) and deliberately invalid ones. Checks: no 5xx, and every response with a documented
schema conforms to it. A summary (operations, examples) is printed; run with ``-s`` to see it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter

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
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from werkzeug.test import Client as WerkzeugClient

from accounts.demo import DEMO_ADMIN, demo_seed
from tests.factories import token_for

pytestmark = pytest.mark.django_db

# The accounts app's endpoints; other apps' endpoints are still changing and get their own run later.
# ``/api/auth/token/revoke/`` is left out (it would revoke the token the run uses; test_hardening covers it).
RESOURCES = (
    "accounts", "contacts", "tags", "journey-stages", "journey-history", "health-scores", "usage-metrics",
    "surveys", "tickets", "engagements", "goals", "tasks", "notes", "audit-log",
)
PATHS = rf"^/api/(({'|'.join(RESOURCES)})/.*|tenant/|auth/token/)$"
# Bounded and deterministic in the suite; a longer hunt: SCHEMATHESIS_EXAMPLES=200 SCHEMATHESIS_RANDOM=1.
POSITIVE_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
NEGATIVE_EXAMPLES = max(1, POSITIVE_EXAMPLES // 2)
DERANDOMIZE = not os.environ.get("SCHEMATHESIS_RANDOM")
CHECKS = [not_a_server_error, response_schema_conformance]


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


@pytest.fixture
def seeded_api(wsgi_app):
    """The schema (accounts operations only), the demo admin's token and one real row id per resource."""
    demo_seed()
    admin = get_user_model().objects.get(email=DEMO_ADMIN[0])
    token = token_for(admin)
    headers = {"Authorization": f"Token {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app, headers=headers)
    # Through the same WSGI app: Django's test client would switch connection closing back on.
    client = WerkzeugClient(wsgi_app)

    def first_rows(path):
        listed = client.get(path, headers=headers)
        assert listed.status_code == 200, (path, listed.text)
        return listed.json["results"]

    real_ids = {resource: str(rows[0]["id"]) for resource in RESOURCES if (rows := first_rows(f"/api/{resource}/"))}
    accounts = first_rows("/api/accounts/?ordering=name")
    account = accounts[0]["id"]
    # Values that make a generated payload name real rows of the demo tenant, so it gets past "does not exist"
    references = {
        "account": account, "parent": accounts[1]["id"],
        "contact": first_rows(f"/api/contacts/?account={account}")[0]["id"],
        "owner": admin.pk, "assignee": admin.pk, "user": admin.pk, "tag_ids": [first_rows("/api/tags/")[0]["id"]],
        "stage": "Adoption",
    }
    return schema.include(path_regex=PATHS), headers, real_ids, references


def strategy_for(operation, real_ids: dict, references: dict, mode: GenerationMode):
    """Cases for ``operation``. Valid-looking ones name a real row of the demo tenant half of the time: in
    the path (``{id}``) and in the payload (account, contact, owner, ...), so they reach the services."""
    generated = operation.as_strategy(generation_mode=mode)
    if mode != GenerationMode.POSITIVE:
        return generated
    resource = operation.path.split("/")[2]
    if "{id}" in operation.path and resource in real_ids:
        generated = st.one_of(generated, operation.as_strategy(generation_mode=mode,
                                                               path_parameters={"id": real_ids[resource]}))

    def refer_to_real_rows(drawn):
        case, use_real_rows = drawn
        if use_real_rows and isinstance(case.body, dict):
            case.body.update({name: value for name, value in references.items() if name in case.body})
        return case

    return st.tuples(generated, st.booleans()).map(refer_to_real_rows)


def run_operation(operation, headers: dict, real_ids: dict, references: dict, mode: GenerationMode,
                  examples: int, statuses: Counter) -> int:
    count = 0

    @settings(max_examples=examples, derandomize=DERANDOMIZE, database=None, deadline=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy_for(operation, real_ids, references, mode))
    def check(case):
        nonlocal count
        count += 1
        response = case.call(headers=headers)
        statuses[f"{response.status_code // 100}xx"] += 1
        case.validate_response(response, checks=CHECKS)

    check()
    return count


def test_the_accounts_api_survives_generated_and_hostile_input(seeded_api, caplog):
    schema, headers, real_ids, references = seeded_api
    caplog.set_level(logging.ERROR, logger="django.request")  # thousands of expected 4xx warnings otherwise
    operations = [result.ok() for result in schema.get_all_operations()]  # raises on an invalid definition
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # deleting the real rows comes last
    labels = {op.label for op in operations}
    assert "GET /api/audit-log/" in labels and "PATCH /api/tenant/" in labels and "POST /api/auth/token/" in labels

    started, examples, statuses, failures = time.monotonic(), Counter(), Counter(), []
    for operation in operations:
        for mode, budget in ((GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
                             (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)):
            try:
                examples[mode.value] += run_operation(operation, headers, real_ids, references, mode, budget,
                                                      statuses)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label  # nothing to get wrong (GET /api/tenant/)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report every operation's failures
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:3000]}")
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {len(operations)} operations, {examples['positive']} positive + "
          f"{examples['negative']} negative examples, responses {dict(sorted(statuses.items()))}, {elapsed:.1f} s")
    assert not failures, "\n\n".join(failures)
