"""The OpenAPI schema says what the server does, so that a client generated from it needs no
workaround (issue 12, point 9).

- Real answers of every GET route (and of writes that create readings), on the demo's data,
  validate against the schema: each field sent is declared and each declared field is sent
  (``required``), nulls only where ``nullable``, datetimes in UTC with ``Z``, the content type
  one of those declared.
- ``openapi-python-client`` generates a client from ``/api/schema/`` without a warning, and
  that client, used as is, reads every GET route's answer into its models.
- The parameters a client sends are the ones the server reads: integer ids, ``ordering`` as
  one comma-separated string, no path parameter doubled by a query filter of the same name,
  ``Idempotency-Key`` in and ``Idempotent-Replayed`` out.

The demo is built once for the module, in a transaction rolled back at its end (the
``demo_output`` fixture, as tests/billing/test_load_demo.py uses it).
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
import typing
import uuid
from decimal import Decimal
from enum import Enum
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from billing import services as billing_services
from billing.models import (
    AllocationRule,
    Charge,
    Lease,
    MeterShare,
    Tariff,
    Tenant,
)
from metering import domain, services
from metering.models import (
    Account,
    Estate,
    Gateway,
    Meter,
    MeterDevice,
    Register,
    ServicePlace,
)
from readings.models import PeriodReading, Reading
from tests.api_routes import Route, api_routes
from tests.billing.portal.conftest import photo_file
from tests.demo import portal_objects

pytestmark = pytest.mark.django_db

OPENAPI_PYTHON_CLIENT = [sys.executable, "-m", "openapi_python_client"]
# The generator's own settings, the only ones a client needs: photos are bytes (the generator
# knows no image/* type by itself), and no formatter runs on the generated code.
GENERATOR_CONFIG = {
    "content_type_overrides": {
        "image/jpeg": "application/octet-stream",
        "image/png": "application/octet-stream",
    },
    "post_hooks": [],
}
CLIENT_PACKAGE = "metering_api_client"


# --- the demo ------------------------------------------------------------------------------


def bearer(key: str) -> APIClient:
    """A client sending ``key`` (an account or a portal key)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture(scope="module")
def demo(demo_output, django_db_blocker) -> dict:
    """The demo, a key with every scope, a tenant's portal key and a reading with a photo."""
    with django_db_blocker.unblock(), transaction.atomic():
        account = Account.objects.get(slug="demo")
        _, raw = services.create_api_key(account=account, name="schema", scopes=list(domain.SCOPES))
        portal = portal_objects(account)
        assert portal, "No demo tenant has a current lease, a manual meter and a statement."
        _, portal_raw = billing_services.create_portal_key(tenant=portal["tenant"], name="t")
        portal_client = bearer(portal_raw)
        meter = portal["meter"]
        latest = meter.readings.latest("reading_date")
        response = portal_client.post(
            f"/api/v1/portal/meters/{meter.pk}/readings/",
            {
                "reading_date": (timezone.now() - dt.timedelta(minutes=1)).isoformat(),
                "value": str(latest.value + 1),
                "photo": photo_file(),
            },
            format="multipart",
        )
        assert response.status_code == 201, response.content[:500]
        photo_reading = Reading.objects.get(pk=response.json()["data"]["id"])
        yield {
            "account": account,
            "key": raw,
            "portal_key": portal_raw,
            "photo_reading": photo_reading,
            **portal,
        }
        transaction.set_rollback(True)


def _path_values(demo: dict) -> list[tuple[str, dict]]:
    """Path parameters per family of routes, the first matching one wins (as in
    .ci/schemathesis.toml): real objects whose routes answer 200."""
    account = demo["account"]
    of_account = {"account": account}
    main = Meter.objects.filter(**of_account, sub_meters__isnull=False).order_by("id")[0]
    register = Register.objects.filter(meter__account=account, is_default=False).order_by("id")[0]
    estate = Estate.objects.filter(place__account=account, meters__isnull=False).order_by("id")[0]
    period_reading = PeriodReading.objects.filter(**of_account).order_by("id")[0]
    device = MeterDevice.objects.filter(meter__account=account).order_by("id")[0]
    statement = Charge.objects.filter(**of_account, lease__isnull=False).order_by("id").first()
    photo, portal_meter = demo["photo_reading"], demo["meter"]
    portal_statement = demo["statement"]
    return [
        (r"^/api/v1/portal/meters/\{meter_id\}/", {"meter_id": portal_meter.pk, "pk": photo.pk}),
        (r"^/api/v1/portal/meters/\{pk\}/", {"pk": portal_meter.pk}),
        (
            r"^/api/v1/portal/statements/",
            {
                "billing_period_id": portal_statement.billing_period_id,
                "lease_id": portal_statement.lease_id,
            },
        ),
        (
            r"^/api/v1/meters/\{meter_id\}/registers/",
            {"meter_id": register.meter_id, "pk": register.pk},
        ),
        (r"^/api/v1/meters/\{meter_id\}/readings/", {"meter_id": photo.meter_id, "pk": photo.pk}),
        (
            r"^/api/v1/meters/\{meter_id\}/period-readings/",
            {"meter_id": period_reading.meter_id, "pk": period_reading.pk},
        ),
        (r"^/api/v1/meters/\{meter_id\}/devices/", {"meter_id": device.meter_id}),
        (r"^/api/v1/meters/", {"pk": main.pk, "meter_id": main.pk}),
        (
            r"^/api/v1/places/",
            {"pk": estate.place_id, "place_id": estate.place_id, "estate_id": estate.pk},
        ),
        (r"^/api/v1/estates/", {"pk": estate.pk, "estate_id": estate.pk}),
        (
            r"^/api/v1/service-places/",
            {"pk": ServicePlace.objects.filter(place__account=account).order_by("id")[0].pk},
        ),
        (r"^/api/v1/gateways/", {"pk": Gateway.objects.filter(**of_account).order_by("id")[0].pk}),
        (r"^/api/v1/tenants/", {"pk": Tenant.objects.filter(**of_account).order_by("id")[0].pk}),
        (
            r"^/api/v1/leases/",
            {"pk": Lease.objects.filter(estate__place__account=account).order_by("id")[0].pk},
        ),
        (
            r"^/api/v1/meter-shares/",
            {"pk": MeterShare.objects.filter(**of_account).order_by("id")[0].pk},
        ),
        (r"^/api/v1/tariffs/", {"pk": Tariff.objects.filter(**of_account).order_by("id")[0].pk}),
        (
            r"^/api/v1/allocation-rules/",
            {"pk": AllocationRule.objects.filter(**of_account).order_by("id")[0].pk},
        ),
        (
            r"^/api/v1/billing-periods/",
            {
                "pk": statement.billing_period_id,
                "billing_period_id": statement.billing_period_id,
                "lease_id": statement.lease_id,
            },
        ),
    ]


def _path_params(route: Route, demo: dict) -> dict:
    if "path_values" not in demo:
        demo["path_values"] = _path_values(demo)
    for pattern, values in demo["path_values"]:
        if re.match(pattern, route.template):
            missing = set(route.params) - set(values)
            assert not missing, f"{route}: no demo object for {missing}"
            return {param: values[param] for param in route.params}
    assert not route.params, f"{route}: no demo object for its path"
    return {}


def _fill(route: Route, demo: dict) -> str:
    return route.path(**_path_params(route, demo))


def _query(route: Route, demo: dict) -> dict:
    """The parameters some routes require: the last 60 days (within the portal's lease)."""
    today = demo["account"].today()
    dates = {"start": str(today - dt.timedelta(days=60)), "end": str(today)}
    return {
        "/api/v1/meters/{meter_id}/consumption/": dates,
        "/api/v1/meters/{meter_id}/balance/": dates,
        "/api/v1/places/{place_id}/consumption/": {**dates, "meter_type": "ELECTRICITY"},
        "/api/v1/portal/meters/{meter_id}/consumption/": dates,
        "/api/v1/portal/meters/{meter_id}/allowed-range/": {"reading_date": str(today)},
    }.get(route.template, {})


GET_ROUTES = [route for route in api_routes() if "get" in route.methods]


def _client_for(route: Route, demo: dict) -> APIClient:
    return bearer(demo["portal_key"] if "/portal/" in route.template else demo["key"])


# --- the schema, as JSON Schema ---------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def _json_schema(node):
    """An OpenAPI 3.0 schema object as JSON Schema 2020-12, strict about objects: a response
    object holds its declared properties and no other."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("nullable", "readOnly", "writeOnly", "example", "discriminator"):
            continue
        if key == "properties":
            out[key] = {name: _json_schema(item) for name, item in value.items()}
        elif key == "$ref":
            out[key] = value.replace("#/components/schemas/", "#/$defs/")
        else:
            out[key] = _json_schema(value)
    for bound in ("maximum", "minimum"):
        # OpenAPI 3.0's boolean `exclusiveMaximum` is JSON Schema's number.
        exclusive = f"exclusive{bound.title()}"
        if isinstance(out.get(exclusive), bool) and out.pop(exclusive):
            out[exclusive] = out.pop(bound)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


FORMATS = jsonschema.FormatChecker(formats=())


def _written_as(format_name: str, pattern: str, parse, what: str) -> None:
    """Check ``format_name`` values: text matching ``pattern`` that ``parse`` reads."""

    @FORMATS.checks(format_name, raises=ValueError)
    def check(value) -> bool:
        if isinstance(value, str):
            if not re.fullmatch(pattern, value):
                raise ValueError(f"{value!r} is no {what}")
            parse(value)
        return True


# CONTRACT §2: datetimes are output in UTC with `Z`.
_written_as(
    "date-time",
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z",
    dt.datetime.fromisoformat,
    "UTC datetime ending in Z",
)
_written_as("date", r"\d{4}-\d\d-\d\d", dt.date.fromisoformat, "YYYY-MM-DD date")


@FORMATS.checks("uri", raises=ValueError)
def _uri(value) -> bool:
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "ftp", "ftps") or not parts.netloc:
            raise ValueError(f"{value!r} is no absolute URL")
    return True


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value) -> bool:
    if isinstance(value, str):
        uuid.UUID(value)
    return True


@FORMATS.checks("email", raises=ValueError)
def _email(value) -> bool:
    if isinstance(value, str) and "@" not in value:
        raise ValueError(f"{value!r} is no e-mail address")
    return True


def assert_matches(schema: dict, body, declared: dict, where: str) -> None:
    root = {
        "$defs": {
            name: _json_schema(component)
            for name, component in schema["components"]["schemas"].items()
        },
        **_json_schema(declared),
    }
    validator = jsonschema.Draft202012Validator(root, format_checker=FORMATS)
    errors = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
    assert not errors, f"{where}: " + "; ".join(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}" for error in errors[:5]
    )


def operation(schema: dict, template: str, method: str) -> dict:
    return schema["paths"][template.replace("{pk}", "{id}")][method]


def assert_answers_as_declared(schema: dict, template: str, method: str, response) -> None:
    """``response``'s status, content type and body are those ``template`` declares."""
    declared = operation(schema, template, method)["responses"]
    status = str(response.status_code)
    assert status in declared, (template, method, status, response.content[:300])
    media_type = response["Content-Type"].split(";")[0].strip()
    content = declared[status].get("content", {})
    assert media_type in content, (template, method, status, media_type, list(content))
    if media_type == "application/json":
        assert_matches(schema, response.json(), content[media_type]["schema"], template)
    for header in response.headers:
        if header in declared[status].get("headers", {}):
            value = response[header]
            assert_matches(schema, value, declared[status]["headers"][header]["schema"], header)


# --- real answers --------------------------------------------------------------------------


@pytest.mark.parametrize("route", GET_ROUTES, ids=str)
def test_every_get_answer_is_what_the_schema_declares(route, demo, schema):
    client = _client_for(route, demo)
    path = _fill(route, demo)
    response = client.get(path, _query(route, demo))
    assert response.status_code == 200, (path, response.content[:500])
    assert_answers_as_declared(schema, route.template, "get", response)
    if route.is_list:
        # An empty list would prove nothing of its items.
        assert response.json()["data"], f"{path}: no item to check in the demo"
    # Unknown objects answer the declared 404, in the declared error format.
    if route.params:
        missing = route.path(**dict.fromkeys(route.params, 2**31 - 1))
        response = client.get(missing, _query(route, demo))
        assert response.status_code == 404, (missing, response.content[:300])
        assert_answers_as_declared(schema, route.template, "get", response)


@pytest.mark.parametrize("rendering", ["csv", "html"])
@pytest.mark.parametrize(
    "template",
    [
        "/api/v1/billing-periods/{billing_period_id}/statements/{lease_id}/",
        "/api/v1/portal/statements/{billing_period_id}/{lease_id}/",
    ],
)
def test_statements_in_csv_and_html_have_their_declared_content_types(
    template, rendering, demo, schema
):
    route = next(route for route in GET_ROUTES if route.template == template)
    response = _client_for(route, demo).get(_fill(route, demo), {"format": rendering})
    assert response.status_code == 200, response.content[:300]
    assert_answers_as_declared(schema, template, "get", response)
    assert response["Content-Type"].startswith(f"text/{rendering}")


@pytest.mark.parametrize(
    "template",
    [
        "/api/v1/meters/{meter_id}/readings/{pk}/photo/",
        "/api/v1/portal/meters/{meter_id}/readings/{pk}/photo/",
    ],
)
def test_photos_have_their_declared_image_types(template, demo, schema):
    route = next(route for route in GET_ROUTES if route.template == template)
    response = _client_for(route, demo).get(_fill(route, demo))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert_answers_as_declared(schema, template, "get", response)
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_a_reading_created_then_replayed_answers_as_declared(demo, schema):
    """POST with an Idempotency-Key: the 201 and its replay, with `Idempotent-Replayed`."""
    template = "/api/v1/meters/{meter_id}/readings/"
    meter = demo["meter"]
    post = operation(schema, template, "post")
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"] if p["in"] == "header"}
    assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]
    assert "`duplicate_reading`" in post["responses"]["409"]["description"]
    client = bearer(demo["key"])
    latest = meter.readings.latest("reading_date")
    body = {
        "reading_date": (latest.reading_date + dt.timedelta(minutes=1)).isoformat(),
        "value": str(latest.value + Decimal("0.5")),
    }
    headers = {"Idempotency-Key": "schema-truthful-1"}
    first = client.post(template.format(meter_id=meter.pk), body, format="json", headers=headers)
    assert first.status_code == 201, first.content[:500]
    assert "Idempotent-Replayed" not in first
    assert_answers_as_declared(schema, template, "post", first)
    replay = client.post(template.format(meter_id=meter.pk), body, format="json", headers=headers)
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert_answers_as_declared(schema, template, "post", replay)
    assert replay.json() == first.json()
    # The same register and date again, without the key: the declared 409 duplicate_reading.
    duplicate = client.post(template.format(meter_id=meter.pk), body, format="json")
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "duplicate_reading"
    assert_answers_as_declared(schema, template, "post", duplicate)


def test_a_batch_with_a_rejected_item_answers_as_declared(demo, schema):
    template = "/api/v1/meters/{meter_id}/readings/batch/"
    meter = demo["meter"]
    latest = meter.readings.latest("reading_date")
    client = bearer(demo["key"])
    stored = {"reading_date": latest.reading_date.isoformat(), "value": str(latest.value)}
    new = {
        "reading_date": (latest.reading_date + dt.timedelta(minutes=2)).isoformat(),
        "value": str(latest.value + 1),
    }
    response = client.post(
        template.format(meter_id=meter.pk), {"readings": [new, stored]}, format="json"
    )
    assert response.status_code == 201, response.content[:500]
    assert (response.json()["data"]["accepted"], response.json()["data"]["rejected"]) == (1, 1)
    assert_answers_as_declared(schema, template, "post", response)


def test_a_portal_key_created_with_no_body_answers_as_declared(demo, schema):
    template = "/api/v1/tenants/{pk}/portal-keys/"
    assert not operation(schema, template, "post")["requestBody"].get("required", False)
    client = bearer(demo["key"])
    response = client.post(template.format(pk=demo["tenant"].pk))
    assert response.status_code == 201, response.content[:300]
    assert_answers_as_declared(schema, template, "post", response)


# --- what the schema declares -------------------------------------------------------------


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_operation_has_a_summary(schema):
    missing = [f"{m.upper()} {p}" for p, m, op in _operations(schema) if not op.get("summary")]
    assert missing == []


def test_every_field_of_a_response_object_is_required(schema):
    for name, component in schema["components"]["schemas"].items():
        if name.endswith("Request") or "properties" not in component:
            continue
        assert set(component.get("required", [])) == set(component["properties"]), name


def test_ids_in_paths_and_filters_are_integers(schema):
    for path, method, op in _operations(schema):
        for parameter in op.get("parameters", []):
            name = parameter["name"]
            if parameter["in"] == "path" or (name.endswith("_id") and name != "account_id"):
                assert parameter["schema"].get("type") == "integer", (method, path, parameter)


def test_no_path_parameter_is_also_a_query_parameter(schema):
    for path, method, op in _operations(schema):
        parameters = op.get("parameters", [])
        in_path = {p["name"] for p in parameters if p["in"] == "path"}
        in_query = {p["name"] for p in parameters if p["in"] == "query"}
        assert not in_path & in_query, (method, path, in_path & in_query)


def test_no_description_tells_of_datetimes_in_the_account_zone_on_output(schema):
    for name, component in schema["components"]["schemas"].items():
        assert "account's zone" not in component.get("description", ""), name
        if name.endswith("Request"):
            continue
        for field, prop in component.get("properties", {}).items():
            if prop.get("format") == "date-time":
                assert "UTC" in prop.get("description", ""), (name, field)


@pytest.mark.parametrize(
    ("query", "status"),
    [("-name,id", 200), ("serial_number,-installation_date", 200), ("name,-nope", 400)],
)
def test_ordering_is_one_comma_separated_string_as_declared(query, status, demo, schema):
    parameter = next(
        p
        for p in operation(schema, "/api/v1/meters/", "get")["parameters"]
        if p["name"] == "ordering"
    )
    assert parameter["schema"]["type"] == "string"
    assert bool(re.fullmatch(parameter["schema"]["pattern"], query)) is (status == 200)
    client = bearer(demo["key"])
    response = client.get("/api/v1/meters/", {"ordering": query})
    assert response.status_code == status, response.content[:300]


def test_generating_the_schema_changes_nothing_the_server_answers(demo):
    """Generating the schema leaves the filters as they were: an unknown choice still lists
    the valid ones (CONTRACT §2)."""
    SchemaGenerator().get_schema(request=None, public=True)
    client = bearer(demo["key"])
    response = client.get("/api/v1/meters/", {"meter_type": "FOO"})
    assert response.status_code == 400
    (message,) = response.json()["error"]["details"]["meter_type"]
    assert message.startswith("FOO is not one of: ELECTRICITY, GAS, WATER,"), message


# --- a generated client ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(schema, tmp_path_factory):
    """The package openapi-python-client generates from /api/schema/, imported."""
    work = tmp_path_factory.mktemp("client")
    (work / "schema.json").write_text(json.dumps(schema))
    (work / "config.json").write_text(json.dumps(GENERATOR_CONFIG))
    result = subprocess.run(  # noqa: S603 - our own generator, our own files
        [
            *OPENAPI_PYTHON_CLIENT,
            "generate",
            "--path",
            str(work / "schema.json"),
            "--output-path",
            str(work / CLIENT_PACKAGE),
            "--meta",
            "none",
            "--config",
            str(work / "config.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    sys.path.insert(0, str(work))
    try:
        yield result.returncode, output, importlib.import_module(CLIENT_PACKAGE)
    finally:
        sys.path.remove(str(work))
        for name in [name for name in sys.modules if name.split(".")[0] == CLIENT_PACKAGE]:
            del sys.modules[name]


def test_the_client_generates_without_warnings(generated):
    returncode, output, _ = generated
    assert returncode == 0, output
    assert not re.search(r"(?i)warning|error", output), output


def _django_transport(client: Client) -> httpx.MockTransport:
    """The generated client's requests, answered by the application in this process."""

    def handle(request: httpx.Request) -> httpx.Response:
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("host", "content-length", "content-type", "accept-encoding")
        }
        response = client.generic(
            request.method,
            request.url.raw_path.decode(),
            data=request.content,
            content_type=request.headers.get("content-type", ""),
            headers=headers,
        )
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return httpx.Response(response.status_code, headers=dict(response.items()), content=body)

    return httpx.MockTransport(handle)


def _operation_modules(package) -> dict:
    api = importlib.import_module(f"{package.__name__}.api")
    return {
        info.name.rsplit(".", 1)[-1]: importlib.import_module(info.name)
        for info in pkgutil.walk_packages(api.__path__, f"{api.__name__}.")
        if not info.ispkg
    }


def _argument(hint, raw: str):
    """``raw`` (a query or path value) as the generated function takes it."""
    for candidate in typing.get_args(hint) or (hint,):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return candidate(raw)
        if candidate is dt.datetime:
            return dt.datetime.fromisoformat(raw)
        if candidate is dt.date:
            return dt.date.fromisoformat(raw)
        if candidate is int:
            return int(raw)
    return raw


@pytest.mark.parametrize("route", GET_ROUTES, ids=str)
def test_the_generated_client_reads_every_get_answer(route, generated, demo, schema):
    _, _, package = generated
    modules = _operation_modules(package)
    op = operation(schema, route.template, "get")
    module = modules[op["operationId"]]
    path = _fill(route, demo)
    values = {
        ("id" if name == "pk" else name): value for name, value in _path_params(route, demo).items()
    }
    values.update(_query(route, demo))
    hints = typing.get_type_hints(module.sync_detailed)
    arguments = {
        name: _argument(hints[name], str(value))
        for name, value in values.items()
        if name in inspect.signature(module.sync_detailed).parameters
    }
    key = demo["portal_key"] if "/portal/" in route.template else demo["key"]
    client = package.AuthenticatedClient(
        base_url="http://testserver",
        token=key,
        raise_on_unexpected_status=True,
        httpx_args={"transport": _django_transport(Client())},
    )
    response = module.sync_detailed(client=client, **arguments)
    assert response.status_code == 200, (path, response.content[:500])
    error = importlib.import_module(f"{package.__name__}.models").Error
    assert response.parsed is not None and not isinstance(response.parsed, error), path
    if route.is_list:
        assert response.parsed.data, path
