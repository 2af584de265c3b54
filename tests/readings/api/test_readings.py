"""Index readings through the API (CONTRACT §4.1): fields, rules, chain, filters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Lease
from metering.models import Meter
from readings.models import Reading
from tests.factories import (
    EstateFactory,
    MeterFactory,
    PlaceFactory,
    RegisterFactory,
    TenantFactory,
)
from tests.readings.conftest import add, day, fresh_series, stored_series

pytestmark = pytest.mark.django_db


def url(meter, suffix=""):
    return f"/api/v1/meters/{meter.pk}/readings/{suffix}"


def post(api, meter, **body):
    return api.post(url(meter), body, format="json")


def error(response) -> dict:
    return response.json()["error"]


class TestCreate:
    def test_output_fields(self, api, meter, account):
        response = post(api, meter, reading_date="2024-03-01T08:30:00Z", value="120.5")
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert set(data) == {
            "id",
            "account_id",
            "meter_id",
            "register_id",
            "register",
            "reading_date",
            "value",
            "reading_type",
            "is_estimated",
            "is_billing_reading",
            "lease_id",
            "photo_url",
            "reader_name",
            "notes",
            "previous_value",
            "consumption",
            "is_rollover",
            "anomaly_flags",
            "is_locked",
            "source",
            "created_by",
            "created_at",
            "updated_at",
        }
        assert data["meter_id"] == meter.pk
        assert data["register"] == "default"
        assert data["reading_date"] == "2024-03-01T08:30:00Z"
        assert data["value"] == 120.5
        assert (data["reading_type"], data["is_estimated"], data["is_billing_reading"]) == (
            "MANUAL",
            False,
            False,
        )
        assert (data["previous_value"], data["consumption"], data["is_rollover"]) == (
            None,
            None,
            False,
        )
        assert data["anomaly_flags"] == [] and data["is_locked"] is False
        assert data["source"] == "API"
        assert data["created_by"] == f"key:{api.raw_key[:12]}"

    def test_date_alone_is_midnight_in_the_account_time_zone(self, api, meter):
        data = post(api, meter, reading_date="2024-07-14", value=1).json()["data"]
        assert data["reading_date"] == "2024-07-13T22:00:00Z"  # Paris is UTC+2 in July

    def test_datetime_without_offset_is_in_the_account_time_zone(self, api, meter):
        data = post(api, meter, reading_date="2024-01-14T12:00:00", value=1).json()["data"]
        assert data["reading_date"] == "2024-01-14T11:00:00Z"

    def test_estimated_type_defaults_is_estimated(self, api, meter):
        data = post(api, meter, reading_date="2024-01-01", value=1, reading_type="ESTIMATED")
        assert data.json()["data"]["is_estimated"] is True
        explicit = post(
            api,
            meter,
            reading_date="2024-01-02",
            value=2,
            reading_type="ESTIMATED",
            is_estimated=False,
        )
        assert explicit.json()["data"]["is_estimated"] is False

    def test_every_optional_field(self, api, meter, account):
        estate = EstateFactory(place=PlaceFactory(account=account))
        lease = Lease.objects.create(
            account=account,
            tenant=TenantFactory(account=account),
            estate=estate,
            start_date=dt.date(2024, 1, 1),
        )
        body = {
            "reading_date": "2024-01-05",
            "value": 3,
            "reading_type": "PHOTO",
            "is_billing_reading": True,
            "lease_id": lease.pk,
            "photo_url": "https://files.example.com/p.jpg",
            "reader_name": "Ana",
            "notes": "stairs",
        }
        data = post(api, meter, **body).json()["data"]
        for key in (
            "reading_type",
            "is_billing_reading",
            "lease_id",
            "photo_url",
            "reader_name",
            "notes",
        ):
            assert data[key] == body[key]

    def test_register_by_code_or_id(self, api, meter):
        nt = RegisterFactory(meter=meter, code="1.8.2", tariff_slot="NT", unit="m3")
        by_code = post(api, meter, reading_date="2024-01-01", value=1, register="1.8.2")
        assert by_code.json()["data"]["register_id"] == nt.pk
        by_id = post(api, meter, reading_date="2024-01-02", value=2, register_id=nt.pk)
        assert by_id.json()["data"]["register"] == "1.8.2"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"value": 1}, "reading_date"),
            ({"reading_date": "2024-01-01"}, "value"),
            ({"reading_date": "2024-01-01", "value": -1}, "value"),
            ({"reading_date": "2024-01-01", "value": "abc"}, "value"),
            ({"reading_date": "2024-02-30", "value": 1}, "reading_date"),
            ({"reading_date": "2024-01-01", "value": 1, "register": "9.9.9"}, "register"),
            ({"reading_date": "2024-01-01", "value": 1, "register_id": 999999}, "register_id"),
            ({"reading_date": "2024-01-01", "value": 1, "reading_type": "GUESS"}, "reading_type"),
            ({"reading_date": "2024-01-01", "value": 1, "lease_id": 999999}, "lease_id"),
        ],
    )
    def test_invalid_fields(self, api, meter, body, field):
        response = api.post(url(meter), body, format="json")
        assert response.status_code == 400, response.json()
        assert field in error(response)["details"]
        assert not Reading.objects.exists()

    def test_value_with_more_decimals_than_the_meter_keeps(self, api, account):
        meter = MeterFactory(account=account, precision_digits=2)
        assert post(api, meter, reading_date="2024-01-01", value="1.25").status_code == 201
        assert post(api, meter, reading_date="2024-01-02", value="1.250").status_code == 201
        response = post(api, meter, reading_date="2024-01-03", value="1.255")
        assert response.status_code == 400 and "value" in error(response)["details"]

    def test_not_more_than_five_minutes_in_the_future(self, api, meter):
        soon = (timezone.now() + dt.timedelta(minutes=4)).isoformat()
        assert post(api, meter, reading_date=soon, value=1).status_code == 201
        later = (timezone.now() + dt.timedelta(minutes=6)).isoformat()
        response = post(api, meter, reading_date=later, value=2)
        assert response.status_code == 400 and "reading_date" in error(response)["details"]

    def test_duplicate_register_and_date_is_409(self, api, meter):
        post(api, meter, reading_date="2024-01-01", value=1)
        response = post(api, meter, reading_date="2024-01-01T00:00:00+01:00", value=2)
        assert response.status_code == 409
        assert error(response)["code"] == "duplicate_reading"
        assert Reading.objects.count() == 1

    def test_same_date_on_another_register_is_fine(self, api, meter):
        RegisterFactory(meter=meter, code="1.8.2", unit="m3")
        post(api, meter, reading_date="2024-01-01", value=1)
        assert (
            post(api, meter, reading_date="2024-01-01", value=1, register="1.8.2").status_code
            == 201
        )

    def test_decommissioned_meter_takes_no_reading(self, api, account):
        meter = MeterFactory(account=account, status="DECOMMISSIONED")
        response = post(api, meter, reading_date="2024-01-01", value=1)
        assert response.status_code == 409
        assert error(response)["code"] == "conflict"

    def test_lease_of_another_account_is_a_400(self, api, meter, other_account):
        estate = EstateFactory(place=PlaceFactory(account=other_account))
        lease = Lease.objects.create(
            account=other_account,
            estate=estate,
            tenant=TenantFactory(account=other_account),
            start_date=dt.date(2024, 1, 1),
        )
        response = post(api, meter, reading_date="2024-01-01", value=1, lease_id=lease.pk)
        assert response.status_code == 400 and "lease_id" in error(response)["details"]


class TestChain:
    def test_consumption_and_previous_value(self, api, meter, register):
        post(api, meter, reading_date="2024-01-01", value="100")
        data = post(api, meter, reading_date="2024-01-02", value="104.5").json()["data"]
        assert (data["previous_value"], data["consumption"]) == (100, 4.5)

    def test_multiplier_and_transformer_ratio(self, api, account):
        meter = MeterFactory(account=account, meter_type="ELECTRICITY", multiplier=Decimal(2))
        meter.registers.update(transformer_ratio=40)
        post(api, meter, reading_date="2024-01-01", value=10)
        assert (
            post(api, meter, reading_date="2024-01-02", value=11).json()["data"]["consumption"]
            == 80
        )

    def test_rollover(self, api, account):
        meter = MeterFactory(account=account, max_value=Decimal(10000), meter_type="WATER")
        post(api, meter, reading_date="2024-01-01", value=9990)
        data = post(api, meter, reading_date="2024-01-02", value=15).json()["data"]
        assert data["is_rollover"] is True and data["consumption"] == 25

    def test_negative_without_max_value(self, api, meter):
        post(api, meter, reading_date="2024-01-01", value=50)
        data = post(api, meter, reading_date="2024-01-02", value=45).json()["data"]
        assert data["consumption"] == -5 and data["anomaly_flags"] == ["NEGATIVE"]

    def test_insert_between_two_readings_updates_the_later_one(self, api, meter, register):
        add(meter, (0, 100), (2, 110))
        post(api, meter, reading_date=day(1).isoformat(), value=104)
        later = Reading.objects.get(reading_date=day(2))
        assert (later.previous_value, later.consumption) == (104, 6)
        assert stored_series(register) == fresh_series(register)

    def test_changing_a_value_updates_the_next_reading(self, api, meter, register):
        _, second, third = add(meter, (0, 100), (1, 110), (2, 130))
        response = api.patch(url(meter, f"{second.pk}/"), {"value": 120}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["data"]["consumption"] == 20
        third.refresh_from_db()
        assert (third.previous_value, third.consumption) == (120, 10)

    def test_moving_a_reading_in_time(self, api, meter, register):
        _, second, _ = add(meter, (0, 100), (1, 110), (2, 130))
        response = api.patch(
            url(meter, f"{second.pk}/"), {"reading_date": day(5).isoformat()}, format="json"
        )
        assert response.status_code == 200
        assert [row[1] for row in stored_series(register)] == [100, 130, 110]
        assert stored_series(register) == fresh_series(register)

    def test_deleting_a_reading_bridges_the_gap(self, api, meter, register):
        _, second, third = add(meter, (0, 100), (1, 110), (2, 130))
        assert api.delete(url(meter, f"{second.pk}/")).status_code == 204
        third.refresh_from_db()
        assert (third.previous_value, third.consumption) == (100, 30)
        assert not Reading.objects.filter(pk=second.pk).exists()

    def test_put_replaces_the_editable_fields(self, api, meter):
        (reading,) = add(meter, (0, 100))
        response = api.put(
            url(meter, f"{reading.pk}/"),
            {"reading_date": day(0).isoformat(), "value": 101, "notes": "re-read"},
            format="json",
        )
        assert response.status_code == 200
        reading.refresh_from_db()
        assert (reading.value, reading.notes) == (101, "re-read")

    def test_a_reading_stays_on_its_register(self, api, meter):
        other = RegisterFactory(meter=meter, code="1.8.2", unit="m3")
        (reading,) = add(meter, (0, 100))
        response = api.patch(url(meter, f"{reading.pk}/"), {"register_id": other.pk}, format="json")
        assert response.status_code == 400
        response = api.patch(url(meter, f"{reading.pk}/"), {"register": "1.8.2"}, format="json")
        assert response.status_code == 400
        assert Reading.objects.get(pk=reading.pk).register_id != other.pk

    def test_update_to_a_taken_date_is_a_409(self, api, meter):
        first, _ = add(meter, (0, 100), (1, 110))
        response = api.patch(
            url(meter, f"{first.pk}/"), {"reading_date": day(1).isoformat()}, format="json"
        )
        assert response.status_code == 409
        assert error(response)["code"] == "duplicate_reading"

    def test_invalid_update_is_a_400_and_changes_nothing(self, api, account):
        meter = MeterFactory(account=account, precision_digits=0)
        (reading,) = add(meter, (0, 100))
        response = api.patch(url(meter, f"{reading.pk}/"), {"value": "100.5"}, format="json")
        assert response.status_code == 400 and "value" in error(response)["details"]
        assert Reading.objects.get().value == 100


class TestMeterLastReading:
    def test_kept_current_from_the_default_register(self, api, meter):
        other = RegisterFactory(meter=meter, code="2.8.0", unit="m3")
        post(api, meter, reading_date="2024-01-01", value=10)
        post(api, meter, reading_date="2024-01-05", value=99, register_id=other.pk)
        meter.refresh_from_db()
        assert meter.last_reading_value == 10
        post(api, meter, reading_date="2024-01-03", value=12)
        meter.refresh_from_db()
        assert (meter.last_reading_value, meter.last_reading_at) == (
            12,
            dt.datetime(2024, 1, 2, 23, tzinfo=dt.UTC),
        )

    def test_follows_updates_and_deletes(self, api, meter):
        first, second = add(meter, (0, 10), (1, 20))
        api.delete(url(meter, f"{second.pk}/"))
        meter.refresh_from_db()
        assert meter.last_reading_value == 10
        api.delete(url(meter, f"{first.pk}/"))
        meter.refresh_from_db()
        assert meter.last_reading_value is None and meter.last_reading_at is None

    def test_shown_on_the_meter(self, api, meter):
        add(meter, (0, 10), (3, 42))
        data = api.get(f"/api/v1/meters/{meter.pk}/").json()["data"]
        assert (data["last_reading_value"], data["last_reading_at"]) == (42, "2024-01-04T00:00:00Z")


class TestLatest:
    def test_latest_of_the_default_register(self, api, meter):
        other = RegisterFactory(meter=meter, code="1.8.2", unit="m3")
        add(meter, (0, 10), (2, 30))
        add(meter, (5, 7), register=other)
        assert api.get(url(meter, "latest/")).json()["data"]["value"] == 30
        data = api.get(url(meter, f"latest/?register_id={other.pk}")).json()["data"]
        assert data["value"] == 7

    def test_404_when_none(self, api, meter):
        response = api.get(url(meter, "latest/"))
        assert response.status_code == 404 and error(response)["code"] == "not_found"

    def test_register_id_must_be_a_number(self, api, meter):
        assert api.get(url(meter, "latest/?register_id=x")).status_code == 400


class TestFilters:
    @pytest.fixture
    def readings(self, meter):
        spike_meter = meter
        add(spike_meter, (0, 0), (1, 10), (2, 20), (3, 30), (4, 100))  # last one: SPIKE
        Reading.objects.filter(reading_date=day(2)).update(
            reading_type="ESTIMATED", is_billing_reading=True
        )
        return meter

    @pytest.mark.parametrize(
        ("query", "expected_days"),
        [
            ("reading_type=ESTIMATED", [2]),
            ("is_billing_reading=true", [2]),
            ("anomaly=SPIKE", [4]),
            ("anomaly=DROP", []),
            ("has_anomaly=true", [4]),
            ("has_anomaly=false", [0, 1, 2, 3]),
            # Days of the account's time zone: Paris midnight is 23:00 UTC the day before.
            ("start_date=2024-01-03", [2, 3, 4]),
            ("end_date=2024-01-02", [0, 1]),
            ("start_date=2024-01-02&end_date=2024-01-03", [1, 2]),
        ],
    )
    def test_filter(self, api, readings, query, expected_days):
        body = api.get(url(readings, f"?{query}")).json()
        assert [r["reading_date"] for r in body["data"]] == [
            day(n).isoformat().replace("+00:00", "Z") for n in expected_days
        ]

    def test_register_filter(self, api, meter):
        other = RegisterFactory(meter=meter, code="1.8.2", unit="m3")
        add(meter, (0, 1))
        add(meter, (0, 1), register=other)
        body = api.get(url(meter, f"?register_id={other.pk}")).json()
        assert [r["register"] for r in body["data"]] == ["1.8.2"]

    @pytest.mark.parametrize(
        "query",
        [
            "anomaly=WEIRD",
            "has_anomaly=1",
            "start_date=yesterday",
            "reading_type=X",
            "register_id=a",
        ],
    )
    def test_invalid_filter_is_a_400(self, api, meter, query):
        assert api.get(url(meter, f"?{query}")).status_code == 400

    def test_ordering(self, api, meter):
        add(meter, (0, 1), (1, 2))
        body = api.get(url(meter, "?ordering=-reading_date")).json()
        assert [r["value"] for r in body["data"]] == [2, 1]


class TestAccountList:
    def test_readings_across_the_account_with_filters(self, api, account, other_account):
        place = PlaceFactory(account=account)
        estate = EstateFactory(place=place)
        in_estate = MeterFactory(account=account, estate=estate)
        elsewhere = MeterFactory(account=account)
        add(in_estate, (0, 1))
        add(elsewhere, (0, 1), (1, 2))
        add(MeterFactory(account=other_account), (0, 1))
        assert api.get("/api/v1/readings/").json()["meta"]["total"] == 3
        for query, total in [
            (f"meter_id={elsewhere.pk}", 2),
            (f"place_id={place.pk}", 1),
            (f"estate_id={estate.pk}", 1),
            ("anomaly=SPIKE", 0),
        ]:
            assert api.get(f"/api/v1/readings/?{query}").json()["meta"]["total"] == total

    def test_needs_the_readings_scope(self, account, make_client):
        client = make_client(account, scopes=["meters:write"])
        response = client.get("/api/v1/readings/")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "insufficient_scope"


def test_meter_with_readings_keeps_its_type_and_cannot_be_deleted(api, meter):
    add(meter, (0, 1))
    assert (
        api.patch(f"/api/v1/meters/{meter.pk}/", {"meter_type": "GAS"}, format="json").status_code
        == 400
    )
    assert api.delete(f"/api/v1/meters/{meter.pk}/").json()["error"]["code"] == (
        "meter_has_readings"
    )
    assert Meter.objects.filter(pk=meter.pk).exists()


@pytest.mark.parametrize(
    "when", ["1900-01-01T00:00:00Z", "1900-01-01", "1900-03-01T10:00:00+05:00"]
)
def test_readings_at_the_start_of_the_calendar(api, account, when):
    # The engine's baseline window reaches a year before a reading: before the product's first
    # date (metering.domain.FIRST_DATE), which dates before it are refused (tests/test_no_500).
    meter = MeterFactory(account=account)
    single = api.post(
        f"/api/v1/meters/{meter.pk}/readings/", {"reading_date": when, "value": 1}, format="json"
    )
    batch = api.post(
        f"/api/v1/meters/{meter.pk}/readings/batch/",
        {
            "readings": [
                {"reading_date": when, "value": 1},
                {"reading_date": "1900-06-01", "value": 2},
            ]
        },
        format="json",
    )
    replaced = api.post(
        f"/api/v1/meters/{meter.pk}/replace/",
        {"replaced_at": "1900-12-01", "final_value": 3, "new_serial_number": "X-2"},
        format="json",
    )
    assert (single.status_code, batch.status_code, replaced.status_code) == (201, 201, 201)
    assert [r["code"] for r in batch.json()["data"]["errors"]] == ["duplicate_reading"]
