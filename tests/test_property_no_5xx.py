"""No request gets a 5xx (CONTRACT §2), property-based over the whole OpenAPI schema.

For every operation of the generated schema (every path, every method), Hypothesis builds
requests from the operation's own description — path ids, query parameters, JSON and form
bodies shaped by its schema — and mixes in the values that broke servers before (issue 12):
dates at both ends of the calendar (``0001-01-01``, ``9999-12-31``, offsets of ±14 h there),
numbers beyond any integer or float (``1e400``, ``2**64``, ``NaN`` as a literal and as a string),
bodies nested 100,000 deep, and odd text (U+0000, which PostgreSQL refuses in text, lone
surrogates, right-to-left marks, very long strings). Account routes are called with a key
holding every scope (what an account admin may do), the portal's with a tenant's portal key,
on a small world of real objects whose ids fill the paths.

Each answer must be below 500 and, when it is an error, in the contract's shape with a code of
its closed list and that code's status. Each request runs in a savepoint rolled back after it,
so that examples do not depend on each other and a failure shrinks to the one request.

The number of examples per operation is ``NO_5XX_MAX_EXAMPLES`` (default 25: under a minute
for the whole schema); the examples are derandomized, so a run is reproducible. Raise it to
search harder, e.g. ``NO_5XX_MAX_EXAMPLES=200 pytest tests/test_property_no_5xx.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import zoneinfo
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.db import transaction
from django.test.client import MULTIPART_CONTENT, encode_multipart
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from metering.errors import ERROR_CODES
from tests.api_routes import api_routes

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = int(os.environ.get("NO_5XX_MAX_EXAMPLES", "25"))
SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
COMPONENTS = SCHEMA["components"]["schemas"]
OPERATIONS = [
    (method, path, operation)
    for path, item in SCHEMA["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post", "put", "patch", "delete")
]


class Raw:
    """A piece of JSON text sent as it is (``1e400``, ``NaN``, a deep nesting)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"


DEEP = 100_000
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
EDGE_DATES = [
    "0001-01-01",
    "0001-01-02",
    "9999-12-31",
    "9999-12-30",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59.999999Z",
    "1899-12-31",
    "1900-01-01",
    "9998-12-31",
    "10000-01-01",
    "2024-02-30",
    "2024-03-31T02:30:00",  # a wall-clock time that does not exist in Paris
]
EDGE_NUMBERS_TEXT = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1e-400", "-0", "1.5"]
EDGE_TEXT = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\u202eevil\u202c",
    "\u200f\u200e",
    "\ufeff",
    "😀" * 3,
    "e\u0301" * 5,
    "x" * 5000,
    "",
    " ",
    "=1+1",
    "' OR 1=1 --",
    "--id",
    "-",
    ",",
    "null",
    "%",
]
EDGE_JSON = [
    *(Raw(text) for text in EDGE_NUMBERS_TEXT),
    *EDGE_NUMBERS_TEXT,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    -1,
    0,
    1.5,
    *EDGE_DATES,
    *EDGE_TEXT,
    None,
    True,
    [],
    {},
    [None],
    {"": None},
    Raw("[" * 200 + "]" * 200),
    Raw('{"a":' * 70 + "1" + "}" * 70),
]
EDGE_QUERY = [*EDGE_DATES, *EDGE_NUMBERS_TEXT, *EDGE_TEXT, str(2**64), str(10**30), "-1", "0"]
EDGE_BODIES = [
    Raw("[" * DEEP + "]" * DEEP),
    Raw('{"a":' * DEEP + "1" + "}" * DEEP),
    Raw("1e400"),
    Raw("NaN"),
    Raw("null"),
    Raw("[]"),
    Raw('"\\ud800"'),
    Raw('{"readings": ' + "[" * DEEP + "]" * DEEP + "}"),
    Raw("{"),
    Raw(""),
    Raw("\x00"),
]
EDGE_PATH_IDS = [0, 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30]


# --- values from the schema ------------------------------------------------------------------


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _number(value, default):
    return default if value is None else float(value) if isinstance(value, Decimal) else value


def plausible(schema: dict, known: dict, name: str = "", depth: int = 0) -> st.SearchStrategy:
    """Values the schema describes (roughly: the server decides what is valid); a field or
    parameter ``name`` of ``known`` (``place_id``, ``account_id``...) is mostly a real one."""
    if name in known:
        return st.one_of(st.sampled_from(known[name]), plausible(schema, {}, "", depth))
    schema = resolve(schema)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return st.one_of([plausible(option, known, name, depth) for option in schema[key]])
    if "allOf" in schema:
        return plausible(schema["allOf"][0], known, name, depth)
    if "enum" in schema:
        return st.sampled_from([value for value in schema["enum"] if value is not None] or [""])
    kind = schema.get("type")
    if kind == "string":
        form = schema.get("format")
        if form == "date":
            return st.one_of(
                st.sampled_from(["2024-01-15", "2024-06-30", "2023-06-01"]),
                st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31)).map(str),
                st.dates().map(str),
            )
        if form == "date-time":
            zones = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=14)), PARIS])
            return st.one_of(
                st.sampled_from(["2024-01-15T08:00:00Z", "2024-06-30T23:59:59+02:00"]),
                st.datetimes(
                    dt.datetime(2000, 1, 1), dt.datetime(2030, 12, 31), timezones=zones
                ).map(lambda d: d.isoformat()),
                st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat()),
            )
        if form == "uuid":
            return st.uuids().map(str)
        if form == "uri":
            return st.just("https://example.org/photo.jpg")
        if form == "email":
            return st.just("tenant@example.org")
        return st.text(max_size=min(schema.get("maxLength", 30), 30))
    if kind == "integer":
        low = _number(schema.get("minimum"), -(2**31))
        high = _number(schema.get("maximum"), 2**31)
        return st.integers(int(max(low, -(2**31))), int(min(high, 2**31)))
    if kind == "number":
        return st.one_of(
            st.integers(0, 10**6),
            st.decimals(0, 10**6, places=3, allow_nan=False).map(str),
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        if depth > 3:
            return st.just([])
        return st.lists(field_value(schema.get("items", {}), known, "", depth + 1), max_size=3)
    if kind == "object" or "properties" in schema:
        if depth > 3:
            return st.just({})
        properties = {
            field: field_value(prop, known, field, depth + 1)
            for field, prop in schema.get("properties", {}).items()
            if not resolve(prop).get("readOnly")
        }
        required = {field: properties.pop(field) for field in schema.get("required", ())}
        return st.fixed_dictionaries(required, optional=properties)
    return st.one_of(st.none(), st.integers(), st.text(max_size=10))


def field_value(schema: dict, known: dict, name: str = "", depth: int = 0) -> st.SearchStrategy:
    """A body value: mostly what the schema describes (so that requests reach the services),
    else one of the edge values."""
    described = plausible(schema, known, name, depth)
    return st.one_of(described, described, described, st.sampled_from(EDGE_JSON))


def to_json(value) -> str:
    """JSON text of ``value``, with each :class:`Raw` written as its own text."""
    raws: list[str] = []

    def mark(item):
        if isinstance(item, Raw):
            raws.append(item.text)
            return f"\x01raw{len(raws) - 1}\x01"
        if isinstance(item, dict):
            return {key: mark(child) for key, child in item.items()}
        if isinstance(item, list):
            return [mark(child) for child in item]
        return item

    text = json.dumps(mark(value))  # ensure_ascii: lone surrogates travel as \ud800 escapes
    return re.sub(r'"\\u0001raw(\d+)\\u0001"', lambda m: raws[int(m[1])], text)


def query_text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# --- the world the paths name ----------------------------------------------------------------
# ``world`` (tests/conftest.py): one object of each kind, keyed by the names the paths use.


@pytest.fixture
def portal_client(world, make_portal) -> APIClient:
    return make_portal(world["tenant"])


ROUTES = {route.template.replace("{pk}", "{id}"): route for route in api_routes()}


def path_ids(path: str, world: dict) -> dict[str, int]:
    """The ids of ``world``'s objects for the path's parameters (the schema's names)."""
    route = ROUTES[path]
    model = getattr(getattr(route.view_class, "queryset", None), "model", None)
    ids = {}
    for name in re.findall(r"{(\w+)}", path):
        if name == "id":
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", model.__name__).lower() if model else ""
            ids[name] = world[snake].pk
        elif name == "billing_period_id" and "statements" in path:
            ids[name] = world["closed_period"].pk
        else:
            ids[name] = world[name.removesuffix("_id")].pk
    return ids


def known_values(world: dict) -> dict[str, list]:
    """Real values of fields and parameters, by name, that the generated requests mostly use."""
    ids = {
        f"{name}_id": [world[name].pk]
        for name in ("place", "estate", "meter", "tenant", "lease", "tariff", "billing_period")
    }
    return {
        **ids,
        "account_id": [str(world["place"].account_id)],
        "parent_meter_id": [world["meter"].pk],
        "gateway_id": [world["gateway"].pk],
        "service_place_id": [world["service_place"].pk],
        "register_id": [world["register"].pk],
        "register": ["1.8.1", "default"],
        "code": ["1.8.2", "NEW"],
        "ratio": ["0.5"],
        "value": [100, "250.5", 1000],
        "granularity": ["day", "month"],
    }


# --- requests --------------------------------------------------------------------------------


@st.composite
def requests(draw, method: str, path: str, operation: dict, world: dict):
    """``(url, body bytes or None, content type, headers)`` for one call of the operation."""
    ids = path_ids(path, world)
    values = {
        name: draw(st.one_of(st.just(real), st.sampled_from(EDGE_PATH_IDS)))
        for name, real in ids.items()
    }
    url = path.format(**values)
    known = known_values(world)
    query = []
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "query":
            continue
        # The required ones always, a third of the others: each may be the one that breaks.
        if not parameter.get("required") and draw(st.integers(0, 2)):
            continue
        described = plausible(parameter.get("schema", {}), known, parameter["name"])
        value = draw(st.one_of(described, described, described, st.sampled_from(EDGE_QUERY)))
        query.append(f"{quote(parameter['name'])}={query_text(value)}")
    if query:
        url += "?" + "&".join(query)
    headers = {}
    if method == "post" and draw(st.booleans()):
        headers["HTTP_IDEMPOTENCY_KEY"] = draw(st.sampled_from(["k1", "x" * 300, "\xe9t\xe9"]))
    content = operation.get("requestBody", {}).get("content", {})
    if not content and method in ("get", "delete"):
        return url, None, None, headers
    if "multipart/form-data" in content and draw(st.booleans()):
        schema = resolve(content["multipart/form-data"]["schema"])
        fields = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    name: st.one_of(plausible(prop, known, name), st.sampled_from(EDGE_QUERY)).map(
                        lambda v: v if isinstance(v, str) else json.dumps(v)
                    )
                    for name, prop in schema.get("properties", {}).items()
                    if resolve(prop).get("format") != "binary"
                },
            )
        )
        fields = {
            name: text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            for name, text in fields.items()
        }
        return url, encode_multipart("BoUnDaRy", fields), MULTIPART_CONTENT, headers
    schema = content.get("application/json", {}).get("schema", {"type": "object"})
    described = plausible(schema, known)
    body = draw(st.one_of(described, described, described, st.sampled_from(EDGE_BODIES)))
    content_type = draw(
        st.sampled_from(["application/json"] * 8 + ["application/json; charset=latin-1"])
    )
    return url, to_json(body).encode("utf-8"), content_type, headers


def assert_contract_answer(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:1000])
    if response.status_code < 400:
        return
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert error["code"] in ERROR_CODES, error
    assert ERROR_CODES[error["code"]] == response.status_code, (response.status_code, error)
    assert isinstance(error["message"], str) and isinstance(error["details"], dict), error


def operation_id(operation: tuple) -> str:
    return f"{operation[0].upper()} {operation[1]}"


@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation_id(o) for o in OPERATIONS])
def test_no_request_gets_a_server_error(operation, api, portal_client, world):
    method, path, spec = operation
    client = portal_client if path.startswith("/api/v1/portal/") else api

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests(method, path, spec, world))
    def check(request):
        url, body, content_type, headers = request
        with transaction.atomic():
            if body is None:
                response = client.generic(method.upper(), url, **headers)
            else:
                response = client.generic(
                    method.upper(), url, body, content_type=content_type, **headers
                )
            transaction.set_rollback(True)
        assert_contract_answer(response)

    check()
