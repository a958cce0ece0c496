"""Input that gave a 500 to an outside probe (issue 15, "No 500 from input"): each is a JSON 400 that names the
problem, on authenticated endpoints, unauthenticated ones and raw-body webhooks; nothing is written."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from automation.models import Workflow
from tests.factories import WorkflowFactory

pytestmark = pytest.mark.django_db


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


RULE = {"name": "r", "trigger_type": "model_updated", "model_type": "account",
        "action_configuration": {"actions": [{"type": "create_note", "content": "x"}]}}


@pytest.mark.parametrize("body, says", [
    (deep(1000), "nested too deeply"),
    (deep(100), "nested too deeply"),
    (json.dumps({**RULE, "trigger_config": {"fields": ["\u0000name"]}}), "NUL"),
    ('{"name": "\\ud800", "trigger_type": "manual"}', "surrogates"),
    ('{"name": "r", "trigger_type": "manual", "trigger_config": {"\\u0000": 1}}', "NUL"),
])
def test_bad_json_is_a_400_naming_the_problem(api, body, says):
    response = api.post("/api/event-triggers", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json") and says in response.json()["detail"]
    assert not Workflow.objects.exists()


def test_unauthenticated_endpoints_refuse_deep_json_too():
    response = Client().post("/api/auth/token/", deep(5000), content_type="application/json")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def test_an_inbound_webhook_body_with_deep_json_or_nul_is_a_400(tenant):
    rule = WorkflowFactory(tenant=tenant, trigger_type="webhook", model_type="", status="active")
    for body in (deep(3000), '{"email": "a\\u0000@x.test"}'):
        response = Client().post(f"/api/hooks/{rule.webhook_token}/", body, content_type="application/json")
        assert response.status_code == 400 and "body" in response.json(), response.content


@pytest.mark.parametrize("duration", ["99999999999w", "600w", "5000d"])
def test_a_duration_too_long_is_a_400(api, duration):
    body = {**RULE, "trigger_type": "health_score_change", "model_type": "",
            "trigger_config": {"time_window": duration}}
    response = api.post("/api/event-triggers", body, format="json")
    assert response.status_code == 400 and "trigger_config.time_window" in response.json(), response.json()


def test_a_body_over_the_size_limit_is_a_json_400(settings, tenant):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    rule = WorkflowFactory(tenant=tenant, trigger_type="webhook", model_type="", status="active")
    response = Client().post(f"/api/hooks/{rule.webhook_token}/", json.dumps({"x": "y" * 5000}),
                             content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json") and "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]
