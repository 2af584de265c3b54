"""No request, file or command argument gets a 500 (CONTRACT §2, issue 12 point 3).

Each case here was a 500 (or a traceback) before: values at the ends of the calendar, ids and
numbers beyond any integer, bodies nested past Python's recursion limit, malformed orderings.
They are 400 ``validation_error`` in the contract's shape, and nothing is stored.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from billing.models import BillingPeriod
from metering.models import MeterDevice
from readings.models import Reading
from tests.api_routes import api_routes
from tests.factories import (
    BillingPeriodFactory,
    EstateFactory,
    LeaseFactory,
    MeterFactory,
    PlaceFactory,
    TenantFactory,
)

pytestmark = pytest.mark.django_db

EDGE_DATES = ["0001-01-01", "0001-01-01T00:00:00+14:00", "9999-12-31", "9999-12-31T23:59:59-12:00"]


def assert_validation_error(response, field: str | None = None) -> dict:
    """A 400 ``validation_error`` in the contract's shape (naming ``field`` in its details)."""
    assert response.status_code == 400, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == "validation_error", error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    if field is not None:
        assert field in error["details"], error
    return error


@pytest.fixture
def world(account):
    place = PlaceFactory(account=account)
    estate = EstateFactory(place=place)
    tenant = TenantFactory(account=account)
    lease = LeaseFactory(estate=estate, tenant=tenant, start_date=dt.date(2020, 1, 1))
    meter = MeterFactory(account=account, estate=estate, serial_number="E-1")
    return {"place": place, "estate": estate, "tenant": tenant, "lease": lease, "meter": meter}


@pytest.fixture
def portal(world, make_portal):
    return make_portal(world["tenant"])


class TestOrdering:
    LISTS = [
        route.template
        for route in api_routes()
        if route.is_list and not route.params and "/portal/" not in route.template
    ]

    @pytest.mark.parametrize("url", LISTS)
    @pytest.mark.parametrize("ordering", ["--id", "-", "--", "-+id", " - id"])
    def test_a_malformed_ordering_is_a_400(self, api, url, ordering):
        assert_validation_error(api.get(url, {"ordering": ordering}), "ordering")

    def test_a_valid_ordering_still_works(self, api, world):
        response = api.get("/api/v1/meters/", {"ordering": "-id"})
        assert response.status_code == 200


class TestDatesAtTheEndsOfTheCalendar:
    @pytest.mark.parametrize("url", ["/api/v1/readings/", "/api/v1/meters/{meter}/readings/"])
    @pytest.mark.parametrize("param", ["start_date", "end_date"])
    @pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31"])
    def test_reading_list_filters(self, api, world, url, param, value):
        response = api.get(url.format(meter=world["meter"].pk), {param: value})
        assert_validation_error(response, param)

    def test_reading_list_filters_inside_the_range_work(self, api, world):
        response = api.get(
            "/api/v1/readings/", {"start_date": "1900-01-01", "end_date": "9998-12-31"}
        )
        assert response.status_code == 200, response.json()

    @pytest.mark.parametrize(
        ("caller", "prefix", "body_format"),
        [
            ("api", "/api/v1", "json"),
            ("portal", "/api/v1/portal", "json"),
            ("portal", "/api/v1/portal", "multipart"),
        ],
    )
    @pytest.mark.parametrize("value", EDGE_DATES)
    def test_a_reading(self, request, world, caller, prefix, body_format, value):
        """From an account key or a portal key, as JSON or as a form."""
        url = f"{prefix}/meters/{world['meter'].pk}/readings/"
        client = request.getfixturevalue(caller)
        response = client.post(url, {"reading_date": value, "value": 1}, format=body_format)
        assert_validation_error(response, "reading_date")
        assert not Reading.objects.exists()

    @pytest.mark.parametrize("value", EDGE_DATES)
    def test_a_batch(self, api, world, value):
        url = f"/api/v1/meters/{world['meter'].pk}/readings/batch/"
        items = [{"reading_date": value, "value": 1}, {"reading_date": "2024-01-01", "value": 2}]
        response = api.post(url, {"readings": items}, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert (data["accepted"], data["rejected"]) == (1, 1)
        assert data["errors"][0]["index"] == 0
        assert "reading_date" in data["errors"][0]["details"]
        assert Reading.objects.count() == 1

    @pytest.mark.parametrize("value", EDGE_DATES)
    def test_a_reading_update(self, api, world, value):
        url = f"/api/v1/meters/{world['meter'].pk}/readings/"
        created = api.post(url, {"reading_date": "2024-01-01", "value": 1}, format="json")
        assert created.status_code == 201
        reading_url = f"{url}{created.json()['data']['id']}/"
        assert_validation_error(api.patch(reading_url, {"reading_date": value}), "reading_date")

    @pytest.mark.parametrize("value", EDGE_DATES)
    def test_allowed_range(self, portal, world, value):
        url = f"/api/v1/portal/meters/{world['meter'].pk}/allowed-range/"
        assert_validation_error(portal.get(url, {"reading_date": value}), "reading_date")

    @pytest.mark.parametrize("value", EDGE_DATES)
    def test_device_replacement(self, api, world, value):
        url = f"/api/v1/meters/{world['meter'].pk}/replace/"
        body = {"replaced_at": value, "final_value": 5, "new_serial_number": "E-2"}
        assert_validation_error(api.post(url, body, format="json"), "replaced_at")
        assert not MeterDevice.objects.filter(serial_number="E-2").exists()

    @pytest.mark.parametrize(
        ("start", "end"), [("9999-12-01", "9999-12-31"), ("0001-01-01", "0001-01-31")]
    )
    def test_a_billing_period(self, api, world, start, end):
        body = {"place_id": world["place"].pk, "name": "P", "start_date": start, "end_date": end}
        response = api.post("/api/v1/billing-periods/", body, format="json")
        assert_validation_error(response)
        assert not BillingPeriod.objects.exists()

    def test_computing_a_stored_period_in_year_9999(self, api, world):
        # Stored before the range was enforced (or by another path): compute is a 400, not a 500.
        period = BillingPeriodFactory(
            place=world["place"], start_date=dt.date(9999, 12, 1), end_date=dt.date(9999, 12, 31)
        )
        response = api.post(f"/api/v1/billing-periods/{period.pk}/compute/")
        assert_validation_error(response)
        period.refresh_from_db()
        assert period.computed_at is None

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("installation_date", "0001-01-01"),
            ("next_inspection_date", "9999-12-31"),
        ],
    )
    def test_meter_dates(self, api, world, field, value):
        url = f"/api/v1/meters/{world['meter'].pk}/"
        assert_validation_error(api.patch(url, {field: value}, format="json"), field)

    @pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31"])
    def test_consumption(self, api, world, value):
        url = f"/api/v1/meters/{world['meter'].pk}/consumption/"
        assert_validation_error(api.get(url, {"start": value, "end": value}))


def post_reading_text(api, meter, fields: str):
    """A reading of 2024-01-01 posted on ``meter`` as JSON text whose other ``fields`` are
    written as they are (numbers no float holds, ``NaN``)."""
    body = f'{{"reading_date": "2024-01-01", {fields}}}'
    return api.post(f"/api/v1/meters/{meter.pk}/readings/", body, content_type="application/json")


class TestHugeNumbers:
    # Beyond a float's range: no field can hold it, the body is refused as JSON's NaN is.
    @pytest.mark.parametrize("number", ["1e400", "-1e400"])
    def test_out_of_range_numbers_are_a_400(self, api, world, number):
        body = f'{{"place_id": {number}, "code": "X", "name": "X"}}'
        response = api.post("/api/v1/estates/", body, content_type="application/json")
        error = assert_validation_error(response)
        assert "JSON" in error["message"]

    @pytest.mark.parametrize("number", ["1e400", "-1e400"])
    def test_out_of_range_numbers_in_a_reading_are_a_400(self, api, world, number):
        response = post_reading_text(api, world["meter"], f'"value": 1, "lease_id": {number}')
        assert_validation_error(response)
        assert not Reading.objects.exists()

    @pytest.mark.parametrize("number", ["1e19", "1.5", "18446744073709551616", "-3", "true"])
    def test_in_a_body_id(self, api, world, number):
        body = f'{{"place_id": {number}, "code": "X", "name": "X"}}'
        response = api.post("/api/v1/estates/", body, content_type="application/json")
        assert_validation_error(response, "place_id")

    def test_a_whole_float_id_is_the_id(self, api, world):
        body = f'{{"place_id": {world["place"].pk}.0, "code": "X", "name": "X"}}'
        response = api.post("/api/v1/estates/", body, content_type="application/json")
        assert response.status_code == 201, response.json()

    @pytest.mark.parametrize("number", ["1e19", "18446744073709551616"])
    def test_in_a_reading_lease_id(self, api, world, number):
        response = post_reading_text(api, world["meter"], f'"value": 1, "lease_id": {number}')
        assert_validation_error(response, "lease_id")

    @pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity"])
    def test_in_a_register_id(self, api, world, number):
        response = post_reading_text(api, world["meter"], f'"value": 1, "register_id": {number}')
        assert_validation_error(response)

    @pytest.mark.parametrize("number", ["1e400", "NaN", "-Infinity"])
    def test_as_a_value(self, api, world, number):
        assert_validation_error(post_reading_text(api, world["meter"], f'"value": {number}'))

    @pytest.mark.parametrize("number", ["1e400", "99999999999999999999999", "-1"])
    @pytest.mark.parametrize(
        "url", ["/api/v1/readings/", "/api/v1/meters/", "/api/v1/estates/", "/api/v1/leases/"]
    )
    def test_in_a_query_id_filter(self, api, world, url, number):
        param = {"/api/v1/meters/": "place_id", "/api/v1/estates/": "place_id"}.get(url, "")
        param = param or {"/api/v1/readings/": "meter_id", "/api/v1/leases/": "estate_id"}[url]
        response = api.get(url, {param: number})
        assert response.status_code in (200, 400), response.content[:300]
        if response.status_code == 400:
            assert_validation_error(response, param)

    @pytest.mark.parametrize(
        "url",
        [
            "/api/v1/meters/{n}/",
            "/api/v1/meters/{n}/readings/",
            "/api/v1/meters/{n}/consumption/",
            "/api/v1/places/{n}/meters/",
            "/api/v1/billing-periods/{n}/statements/{n}/",
        ],
    )
    def test_in_a_path_id(self, api, world, url):
        response = api.get(url.format(n=10**30))
        assert response.status_code == 404, response.content[:300]
        assert response.json()["error"]["code"] == "not_found"

    def test_in_a_portal_path_id(self, portal):
        response = portal.get(f"/api/v1/portal/meters/{10**30}/allowed-range/")
        assert response.status_code == 404, response.content[:300]


class TestDeepNesting:
    @pytest.mark.parametrize("depth", [100_000, 10_000])
    def test_a_deeply_nested_body(self, api, world, depth):
        body = "[" * depth + "]" * depth
        response = api.post("/api/v1/places/", body, content_type="application/json")
        assert_validation_error(response)

    def test_a_deeply_nested_object_in_a_json_field(self, api, world):
        depth = 10_000
        body = '{"properties": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
        url = f"/api/v1/meters/{world['meter'].pk}/"
        response = api.patch(url, body, content_type="application/json")
        assert_validation_error(response)

    def test_a_deeply_nested_portal_body(self, portal, world):
        body = "[" * 100_000 + "]" * 100_000
        url = f"/api/v1/portal/meters/{world['meter'].pk}/readings/"
        response = portal.post(url, body, content_type="application/json")
        assert_validation_error(response)

    def test_a_reasonably_nested_json_field_is_kept(self, api, world):
        nested = {"a": {"b": {"c": [1, [2, [3]]]}}}
        url = f"/api/v1/meters/{world['meter'].pk}/"
        response = api.patch(url, {"properties": nested}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["data"]["properties"] == nested


class TestText:
    @pytest.mark.parametrize(
        "body",
        [
            '{"name": "a\\u0000b", "code": "X"}',
            '{"name": "\\ud800", "code": "X"}',
            '{"\\udfff": 1, "name": "n", "code": "X"}',
        ],
    )
    def test_nul_and_lone_surrogates_in_a_body(self, api, world, body):
        response = api.post("/api/v1/places/", body, content_type="application/json")
        assert_validation_error(response)

    @pytest.mark.parametrize("value", ["a\x00b", "\ud800"])
    def test_in_free_json(self, api, world, value):
        url = f"/api/v1/meters/{world['meter'].pk}/"
        body = json.dumps({"properties": {"note": value}})
        response = api.patch(url, body, content_type="application/json")
        assert_validation_error(response)

    def test_rtl_marks_and_long_text_are_kept(self, api, world):
        name = "\u202eevil\u202c" + "é" * 150
        response = api.post("/api/v1/places/", {"name": name, "code": "X"}, format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["data"]["name"] == name

    @pytest.mark.parametrize("param", ["search", "city", "code"])
    def test_nul_in_a_query(self, api, world, param):
        response = api.get(f"/api/v1/places/?{param}=a%00b")
        assert response.status_code in (200, 400), response.content[:300]


class TestImports:
    CSV = "serial_number,register,reading_date,value\nE-1,,{date},5\nE-1,,2024-01-02,6\n"

    @pytest.mark.parametrize("date", ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00"])
    def test_import_readings_command(self, world, tmp_path, date):
        path = tmp_path / "readings.csv"
        path.write_text(self.CSV.format(date=date))
        errors = tmp_path / "errors.csv"
        out, err = io.StringIO(), io.StringIO()
        with pytest.raises(CommandError) as caught:
            call_command(
                "import_readings",
                str(path),
                "--account",
                "acme",
                "--errors-out",
                str(errors),
                stdout=out,
                stderr=err,
            )
        assert caught.value.returncode == 1
        assert "Traceback" not in out.getvalue() + err.getvalue()
        lines = errors.read_text().splitlines()
        assert lines[0] == "line,code,message"
        assert lines[1].startswith("2,validation_error,")
        assert Reading.objects.filter(meter=world["meter"]).count() == 1

    @pytest.mark.parametrize(
        ("command", "csv"),
        [
            (
                "import_period_readings",
                "serial_number,start_date,end_date,consumption\nE-1,0001-01-01,0001-01-31,5\n",
            ),
            (
                "import_meters",
                "serial_number,name,meter_type,installation_date\nE-9,Nine,WATER,0001-01-01\n",
            ),
        ],
    )
    def test_import_period_readings_and_meters_commands(self, world, tmp_path, command, csv):
        path = tmp_path / "rows.csv"
        path.write_text(csv)
        with pytest.raises(CommandError) as caught:
            call_command(
                command, str(path), "--account", "acme", stdout=io.StringIO(), stderr=io.StringIO()
            )
        assert caught.value.returncode == 1

    @pytest.mark.parametrize(
        "option", [("--start", "0001-01-01"), ("--end", "9999-12-31"), ("--end", "1899-12-31")]
    )
    def test_export_readings_command(self, world, option):
        with pytest.raises(CommandError) as caught:
            call_command("export_readings", "--account", "acme", *option, stdout=io.StringIO())
        assert "Dates must lie between" in str(caught.value)

    @pytest.mark.parametrize("date", ["0001-01-01", "9999-12-31"])
    def test_admin_import(self, member, account, world, date, upload_dir):
        client = member("ADMIN")
        upload = SimpleUploadedFile("readings.csv", self.CSV.format(date=date).encode())
        data = {"account": str(account.pk), "kind": "readings", "file": upload}
        preview = client.post("/admin/metering/meter/import/", data)
        assert preview.status_code == 200, preview.content[:500]
        result = preview.context["result"]
        assert (result.created, result.rejected) == (1, 1)
        rows = preview.context["shown_rows"]
        assert [(row.line, row.code) for row in rows] == [(2, "validation_error")]
        token = preview.context["token"]
        response = client.post("/admin/metering/meter/import/", {"token": token, "confirm": "1"})
        assert response.status_code == 302
        assert Reading.objects.filter(meter=world["meter"]).count() == 1


def test_reading_values_inside_the_range_are_kept(api, world):
    url = f"/api/v1/meters/{world['meter'].pk}/readings/"
    response = api.post(url, {"reading_date": "1900-01-01", "value": 1}, format="json")
    assert response.status_code == 201, response.json()
    assert Reading.objects.get().value == Decimal(1)


class TestAdmin:
    @pytest.mark.parametrize("when", ["0001-01-01", "9999-12-31"])
    def test_adding_a_reading_at_the_ends_of_the_calendar(self, member, world, when):
        client = member("OPERATOR")
        response = client.post(
            "/admin/readings/reading/add/",
            {
                "meter": str(world["meter"].pk),
                "register_code": "",
                "reading_date_0": when,
                "reading_date_1": "00:00:00",
                "value": "5",
                "reading_type": "MANUAL",
                "photo_url": "",
                "reader_name": "",
                "notes": "",
            },
        )
        assert response.status_code == 200, response.content[:300]
        errors = response.context["adminform"].form.errors
        assert "reading_date" in errors, errors
        assert not Reading.objects.exists()
