"""The OpenAPI schema describes every route, and the docs work with no internet access."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.test import Client

from tests.api_routes import api_routes

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))


def test_every_route_and_method_is_described(schema):
    for route in api_routes():
        template = re.sub(r"{pk}", "{id}", route.template)
        assert template in schema["paths"], template
        for method in route.methods:
            assert method in schema["paths"][template], (method, template)


def test_every_operation_documents_its_errors(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert {"401", "403", "404", "429"} <= codes, (method, path)
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }


def test_single_objects_are_enveloped_and_lists_paginated(schema):
    detail = schema["paths"]["/api/v1/meters/{id}/"]["get"]["responses"]["200"]
    body = detail["content"]["application/json"]["schema"]
    assert body["properties"]["data"] == {"$ref": "#/components/schemas/Meter"}
    listing = schema["paths"]["/api/v1/meters/"]["get"]["responses"]["200"]
    ref = listing["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == {"data", "meta"}


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_load_from_our_own_static_files(url):
    response = Client().get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    # No script, stylesheet or font from another host: the docs work offline.
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
    assert external == []


def test_list_routes_and_only_they_are_documented_as_paginated_lists(schema):
    for route in api_routes():
        if "get" not in route.methods:
            continue
        template = route.template.replace("{pk}", "{id}")
        response = schema["paths"][template]["get"]["responses"]["200"]
        # A file (a reading's photo) has no JSON body: it is no list either.
        body = response["content"].get("application/json", {}).get("schema", {})
        paginated = body.get("$ref", "").startswith("#/components/schemas/Paginated")
        assert paginated is route.is_list, template
