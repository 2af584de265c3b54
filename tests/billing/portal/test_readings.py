"""Readings sent and read through the portal (CONTRACT §6, §4.1): source PORTAL, same chain."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from readings import services as readings_services
from readings.models import Reading
from tests.billing.api import assert_error
from tests.factories import MeterFactory, RegisterFactory

pytestmark = pytest.mark.django_db

# Ten readings a week apart, the last ones a leak: DEVIATION and SPIKE past the baseline.
SERIES = [
    ("2024-01-01", "100"),
    ("2024-01-08", "170"),
    ("2024-01-15", "240"),
    ("2024-01-22", "310"),
    ("2024-01-29", "380"),
    ("2024-02-05", "700"),
    ("2024-02-12", "690"),
    ("2024-02-19", "760"),
]
CHAIN_FIELDS = (
    "reading_date",
    "value",
    "previous_value",
    "consumption",
    "is_rollover",
    "flag_deviation",
    "flag_spike",
    "flag_drop",
    "flag_negative",
    "reading_type",
    "is_estimated",
)


def url(meter, suffix: str = "") -> str:
    return f"/api/v1/portal/meters/{meter.pk}/readings/{suffix}"


def post(client, meter, **body):
    return client.post(url(meter), body, format="json")


class TestCreate:
    def test_a_reading_is_stored_with_source_portal_and_the_current_lease(
        self, portal, meter, lease
    ):
        response = post(
            portal, meter, reading_date="2024-03-01", value="1234.5", reader_name="Jeanne"
        )
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        reading = Reading.objects.get()
        assert data["id"] == reading.pk
        assert reading.source == "PORTAL" and data["source"] == "PORTAL"
        assert reading.created_by == f"key:{portal.portal_key.prefix}" == data["created_by"]
        assert reading.lease == lease and data["lease_id"] == lease.pk
        assert reading.reading_type == "MANUAL" and reading.reader_name == "Jeanne"
        assert data["reading_date"] == "2024-02-29T23:00:00Z"  # 00:00 in Paris
        assert data["value"] == 1234.5 and data["photo_url"] == ""
        assert set(data) == {
            "id",
            "meter_id",
            "register_id",
            "register",
            "reading_date",
            "value",
            "reading_type",
            "is_estimated",
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

    def test_portal_rows_have_the_same_chain_as_the_api_paths(self, portal, api, meter, account):
        twin = MeterFactory(account=account, serial_number="E-TWIN")
        for reading_date, value in SERIES:
            assert post(portal, meter, reading_date=reading_date, value=value).status_code == 201
            body = {"reading_date": reading_date, "value": value}
            response = api.post(f"/api/v1/meters/{twin.pk}/readings/", body, format="json")
            assert response.status_code == 201
        portal_rows = list(meter.readings.order_by("reading_date").values(*CHAIN_FIELDS))
        api_rows = list(twin.readings.order_by("reading_date").values(*CHAIN_FIELDS))
        assert portal_rows == api_rows
        assert any(row["flag_spike"] for row in portal_rows)
        assert any(row["flag_negative"] for row in portal_rows)
        assert set(meter.readings.values_list("source", flat=True)) == {"PORTAL"}
        assert set(twin.readings.values_list("source", flat=True)) == {"API"}

    def test_register_by_code_or_id(self, portal, meter):
        register = RegisterFactory(meter=meter, code="1.8.2")
        response = post(portal, meter, reading_date="2024-03-01", value=1, register="1.8.2")
        assert response.json()["data"]["register_id"] == register.pk
        response = post(portal, meter, reading_date="2024-03-02", value=2, register_id=register.pk)
        assert response.json()["data"]["register"] == "1.8.2"
        response = post(portal, meter, reading_date="2024-03-03", value=3, register="nope")
        assert_error(response, 400, "validation_error", "register")

    @pytest.mark.parametrize("reading_type", ["AUTOMATIC", "ESTIMATED", "OTHER"])
    def test_only_manual_or_photo(self, portal, meter, reading_type):
        response = post(
            portal, meter, reading_date="2024-03-01", value=1, reading_type=reading_type
        )
        assert_error(response, 400, "validation_error", "reading_type")
        assert not Reading.objects.exists()

    def test_photo_type_without_a_photo_is_accepted(self, portal, meter):
        response = post(portal, meter, reading_date="2024-03-01", value=1, reading_type="PHOTO")
        assert response.json()["data"]["reading_type"] == "PHOTO"

    def test_fields_the_tenant_does_not_set_are_ignored(self, portal, meter, lease, neighbour):
        response = post(
            portal,
            meter,
            reading_date="2024-03-01",
            value=1,
            is_billing_reading=True,
            is_estimated=True,
            lease_id=neighbour["lease"].pk,
            photo_url="https://example.org/x.jpg",
            source="API",
        )
        assert response.status_code == 201
        reading = Reading.objects.get()
        assert reading.lease == lease and reading.source == "PORTAL"
        assert not reading.is_billing_reading and not reading.is_estimated
        assert reading.photo_url == ""

    @pytest.mark.parametrize("communication_type", ["LORAWAN", "VIRTUAL"])
    def test_a_meter_read_automatically_is_409(
        self, portal, account, estate, lease, communication_type
    ):
        automatic = MeterFactory(
            account=account, estate=estate, communication_type=communication_type
        )
        response = post(portal, automatic, reading_date="2024-03-01", value=1)
        assert_error(response, 409, "conflict")
        assert not Reading.objects.exists()
        # It is still shown, and its readings too.
        assert portal.get(url(automatic)).status_code == 200

    def test_a_decommissioned_meter_is_409(self, portal, meter):
        meter.status = "DECOMMISSIONED"
        meter.save()
        response = post(portal, meter, reading_date="2024-03-01", value=1)
        assert_error(response, 409, "conflict")

    def test_duplicate_reading_is_409(self, portal, meter):
        assert post(portal, meter, reading_date="2024-03-01", value=1).status_code == 201
        response = post(portal, meter, reading_date="2024-03-01", value=2)
        assert_error(response, 409, "duplicate_reading")
        assert Reading.objects.get().value == 1

    def test_locked_reading_is_403(self, portal, meter):
        meter.registers.update(locked_until=dt.datetime(2024, 3, 31, tzinfo=dt.UTC))
        response = post(portal, meter, reading_date="2024-03-01", value=1)
        assert_error(response, 403, "reading_locked")
        assert not Reading.objects.exists()

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"reading_date": "2024-03-01", "value": -1}, "value"),
            ({"reading_date": "2024-03-01", "value": "1.0001"}, "value"),
            ({"reading_date": "2024-03-01"}, "value"),
            ({"value": 1}, "reading_date"),
            ({"reading_date": "2099-01-01", "value": 1}, "reading_date"),
            ({"reading_date": "2024-03-01", "value": 1, "notes": "a\x00b"}, "notes"),
        ],
    )
    def test_invalid_values_are_400(self, portal, meter, body, field):
        response = portal.post(url(meter), body, format="json")
        assert_error(response, 400, "validation_error", field)
        assert not Reading.objects.exists()

    def test_malformed_json_is_400(self, portal, meter):
        response = portal.post(url(meter), "{", content_type="application/json")
        assert_error(response, 400, "validation_error")

    def test_a_collective_meter_takes_no_reading(self, portal, account, place, lease):
        """Its readings are the manager's (CONTRACT §6; more in test_portal_privacy)."""
        collective = MeterFactory(account=account, place=place, billing_type="COLLECTIVE")
        response = post(portal, collective, reading_date="2024-03-01", value=1)
        assert_error(response, 403, "permission_denied")
        assert not Reading.objects.exists()


class TestIdempotency:
    def test_same_key_same_body_replays(self, portal, meter):
        body = {"reading_date": "2024-03-01", "value": 1}
        first = portal.post(url(meter), body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
        again = portal.post(url(meter), body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again["Idempotent-Replayed"] == "true"
        assert Reading.objects.count() == 1

    def test_same_key_another_body_is_422(self, portal, meter):
        body = {"reading_date": "2024-03-01", "value": 1}
        portal.post(url(meter), body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
        response = portal.post(
            url(meter), {**body, "value": 2}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
        )
        assert_error(response, 422, "idempotency_key_reused")

    def test_another_tenant_never_gets_a_replay(self, portal, meter, lease, neighbour, make_portal):
        """Two tenants send the same key and body, each for its own meter (no two tenants
        write on one meter, CONTRACT §6): the second one's key is its own, never a replay.

        Keys are per credential (CONTRACT §2): the request runs and stores its own reading.
        """
        body = {"reading_date": "2024-03-01", "value": 1}
        first = portal.post(url(meter), body, format="json", HTTP_IDEMPOTENCY_KEY="k")
        assert first.status_code == 201
        other = make_portal(neighbour["tenant"])
        response = other.post(
            url(neighbour["meter"]), body, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )
        assert response.status_code == 201, response.content[:300]
        assert "Idempotent-Replayed" not in response
        assert response.json()["data"]["id"] != first.json()["data"]["id"]
        assert Reading.objects.filter(meter=neighbour["meter"]).count() == 1
        assert Reading.objects.count() == 2


class TestList:
    @pytest.fixture
    def readings(self, meter, account):
        register = RegisterFactory(meter=meter, code="1.8.2")
        items = [
            readings_services.ReadingInput(
                reading_date=dt.datetime(2024, 1, day, 12, tzinfo=dt.UTC), value=Decimal(day)
            )
            for day in (1, 10, 20)
        ] + [
            readings_services.ReadingInput(
                reading_date=dt.datetime(2024, 1, 15, tzinfo=dt.UTC),
                value=Decimal(7),
                register_id=register.pk,
            )
        ]
        actor = readings_services.Actor("test", "API")
        readings_services.create_readings(meter=meter, items=items, actor=actor)
        return register

    def test_lists_the_meters_readings_in_date_order(self, portal, meter, readings):
        body = portal.get(url(meter)).json()
        assert [row["value"] for row in body["data"]] == [1, 10, 7, 20]
        assert body["meta"]["total"] == 4

    def test_filters_like_the_account_api(self, portal, meter, readings):
        rows = portal.get(url(meter) + "?start_date=2024-01-10&end_date=2024-01-15").json()
        assert [row["value"] for row in rows["data"]] == [10, 7]
        rows = portal.get(url(meter) + f"?register_id={readings.pk}").json()["data"]
        assert [row["value"] for row in rows] == [7]
        assert_error(portal.get(url(meter) + "?start_date=yesterday"), 400, "validation_error")

    def test_a_reading_of_the_account_api_shows_its_source(self, portal, meter, readings):
        assert {row["source"] for row in portal.get(url(meter)).json()["data"]} == {"API"}


def test_future_tolerance_is_five_minutes(portal, meter):
    soon = (timezone.now() + dt.timedelta(minutes=4)).isoformat()
    assert post(portal, meter, reading_date=soon, value=1).status_code == 201
