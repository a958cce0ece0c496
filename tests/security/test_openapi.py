"""The OpenAPI schema's conventions (csplatform/openapi.py) and its documentation pages (issue 14).

Every operation has a summary and one tag naming its area, documents the errors the platform answers for it, and
takes JSON; Swagger UI and ReDoc are served from this server (drf-spectacular-sidecar), never from a CDN.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from drf_spectacular.generators import SchemaGenerator

from csplatform.openapi import AREAS, TAGS

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def test_every_operation_has_a_summary_and_the_tag_of_its_area(schema):
    missing = {label: (operation.get("summary"), operation.get("tags")) for label, operation in operations(schema)
               if not (operation.get("summary") or "").strip() or len(operation.get("tags", [])) != 1
               or operation["tags"][0] not in TAGS}
    assert missing == {}, "give these a summary (csplatform.openapi.SUMMARIES) or their URL prefix an area (AREAS)"


def test_it_describes_each_area_once_in_order(schema):
    assert [tag["name"] for tag in schema["tags"]] == [tag for tag in TAGS
                                                       if any(tag in op["tags"] for _, op in operations(schema))]
    assert all(description for _tag, description, _prefixes in AREAS)


def test_summaries_read_like_the_action_on_the_model(schema):
    found = dict(operations(schema))
    assert found["GET /api/accounts/"]["summary"] == "List accounts"
    assert found["PATCH /api/tasks/{id}/"]["summary"] == "Update task"
    assert found["DELETE /api/tickets/{id}/"]["summary"] == "Delete support ticket"
    assert found["GET /api/health-scores/"]["tags"] == ["health"]
    assert found["POST /api/auth/token/"]["tags"] == ["auth"]


def test_every_operation_documents_the_errors_it_can_answer(schema):
    """401/403 where a token and a role are needed, 404 where the path names a row, 429 where it is throttled,
    400 and 415 where a JSON body is read: ``csplatform.openapi.AutoSchema.error_codes``."""
    gaps = {}
    for label, operation in operations(schema):
        codes = set(operation["responses"])
        expected = set()
        if operation.get("security") and {} not in operation["security"]:
            expected |= {"401", "403"}
        if "{" in label:
            expected.add("404")
        if "requestBody" in operation:
            expected.add("400")
        if not expected <= codes:
            gaps[label] = sorted(expected - codes)
    assert gaps == {}


def test_request_bodies_are_json(schema):
    media_types = {label: sorted(operation["requestBody"]["content"]) for label, operation in operations(schema)
                   if "requestBody" in operation}
    assert {label: types for label, types in media_types.items() if types != ["application/json"]} == {}


def test_errors_have_the_shared_shapes(schema):
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["detail"]
    assert [variant["type"] for variant in components["ValidationError"]["oneOf"]] == ["object", "array"]
    found = dict(operations(schema))
    assert found["GET /api/accounts/{id}/"]["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_documentation_pages_load_nothing_from_other_hosts(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    referenced = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert referenced, html[:500]
    assert [url for url in referenced if urlsplit(url).netloc or url.startswith("//")] == []
    assert re.findall(r"https?://[^\s\"'<>]+", html) == []  # not in the page's scripts either
    assert "/api/schema/" in html
    for url in referenced:
        if url.startswith("/static/"):
            assert url.startswith("/static/drf_spectacular_sidecar/"), url


@pytest.mark.django_db
def test_an_unknown_api_url_is_a_json_404(client):
    response = client.get("/api/playbooks/not-a-number/trigger/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
