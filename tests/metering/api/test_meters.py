"""Meters: every rule of CONTRACT §3's meter table, filters, nested routes, deletion."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from metering import domain
from metering.models import Meter, Register
from readings.models import PeriodReading, Reading
from tests.factories import (
    EstateFactory,
    GatewayFactory,
    MeterFactory,
    PlaceFactory,
    ServicePlaceFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/meters/"


def create(api, **fields):
    body = {"name": "Meter", "serial_number": "SN-1", "meter_type": "ELECTRICITY", **fields}
    return api.post(URL, body, format="json")


def assert_invalid(response, field: str):
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"], error


def add_reading(meter: Meter) -> Reading:
    register = meter.registers.get(is_default=True)
    return Reading.objects.create(
        account=meter.account,
        meter=meter,
        register=register,
        reading_date=timezone.now(),
        value=Decimal("10"),
    )


class TestCreate:
    def test_defaults(self, api, account):
        response = create(api)
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert data["unit"] == "kWh"
        assert data["billing_type"] == "INDIVIDUAL"
        assert data["billing_direction"] is None
        assert data["communication_type"] == "NONE"
        assert data["status"] == "ACTIVE"
        assert data["multiplier"] == 1
        assert data["precision_digits"] == 3
        assert data["max_value"] is None
        assert data["is_main_meter"] is False
        assert data["properties"] == {}
        assert data["account_id"] == str(account.pk)
        meter = Meter.objects.get(pk=data["id"])
        assert [(r.code, r.is_default, r.unit) for r in meter.registers.all()] == [
            ("default", True, "kWh")
        ]

    @pytest.mark.parametrize("field", ["name", "serial_number", "meter_type"])
    def test_required_fields(self, api, field):
        body = {"name": "M", "serial_number": "S", "meter_type": "GAS"}
        del body[field]
        assert_invalid(api.post(URL, body, format="json"), field)

    def test_every_field_round_trips(self, api, account):
        place = PlaceFactory(account=account)
        estate = EstateFactory(place=place)
        service_place = ServicePlaceFactory(place=place, meter_type="WATER")
        gateway = GatewayFactory(account=account)
        tariff = TariffFactory(account=account, meter_type="WATER")
        body = {
            "name": "Cold water",
            "serial_number": "W-1",
            "meter_type": "WATER",
            "unit": "L",
            "billing_type": "SHARED",
            "billing_direction": "ACCPAY",
            "communication_type": "WMBUS",
            "status": "FAULTY",
            "multiplier": "2.5",
            "precision_digits": 2,
            "max_value": 99999,
            "is_main_meter": True,
            "place_id": place.pk,
            "estate_id": estate.pk,
            "service_place_id": service_place.pk,
            "gateway_id": gateway.pk,
            "tariff_id": tariff.pk,
            "manufacturer": "Itron",
            "model_reference": "Aquadis+",
            "description": "d",
            "location": "basement",
            "notes": "n",
            "installation_date": "2020-01-01",
            "last_inspection_date": "2021-01-01",
            "next_inspection_date": "2026-01-01",
            "reading_interval": 3600,
            "properties": {"dn": 15, "tags": ["a"]},
        }
        response = api.post(URL, body, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        for key, value in body.items():
            expected = float(value) if key == "multiplier" else value
            assert data[key] == expected, key


class TestSerialNumber:
    def test_duplicate_in_the_account_is_a_409_conflict(self, api, account):
        MeterFactory(account=account, serial_number="DUP")
        response = create(api, serial_number="DUP")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "conflict"
        assert Meter.objects.filter(serial_number="DUP").count() == 1

    def test_same_serial_in_another_account_is_fine(self, api, other_account):
        MeterFactory(account=other_account, serial_number="DUP")
        assert create(api, serial_number="DUP").status_code == 201

    def test_changed_only_by_device_replacement(self, api, account):
        meter = MeterFactory(account=account, serial_number="KEEP")
        response = api.patch(f"{URL}{meter.pk}/", {"serial_number": "NEW"}, format="json")
        assert_invalid(response, "serial_number")
        meter.refresh_from_db()
        assert meter.serial_number == "KEEP"

    def test_sending_the_same_serial_is_fine(self, api, account):
        meter = MeterFactory(account=account, serial_number="KEEP")
        response = api.patch(f"{URL}{meter.pk}/", {"serial_number": "KEEP"}, format="json")
        assert response.status_code == 200


class TestMeterType:
    def test_unknown_type(self, api):
        assert_invalid(create(api, meter_type="NUCLEAR"), "meter_type")

    def test_changeable_without_readings(self, api, account):
        meter = MeterFactory(account=account, meter_type="WATER")
        response = api.patch(f"{URL}{meter.pk}/", {"meter_type": "WATER_HOT"}, format="json")
        assert response.status_code == 200
        assert response.json()["data"]["meter_type"] == "WATER_HOT"

    def test_type_change_to_another_dimension_takes_its_default_unit(self, api, account):
        meter = MeterFactory(account=account, meter_type="WATER")
        response = api.patch(f"{URL}{meter.pk}/", {"meter_type": "HEATING"}, format="json")
        assert response.json()["data"]["unit"] == "kWh"
        assert meter.registers.get().unit == "kWh"

    def test_immutable_once_the_meter_has_index_readings(self, api, account):
        meter = MeterFactory(account=account, meter_type="WATER")
        add_reading(meter)
        response = api.patch(f"{URL}{meter.pk}/", {"meter_type": "GAS"}, format="json")
        assert_invalid(response, "meter_type")
        assert Meter.objects.get(pk=meter.pk).meter_type == "WATER"

    def test_immutable_once_the_meter_has_period_readings(self, api, account):
        meter = MeterFactory(account=account, meter_type="GAS")
        PeriodReading.objects.create(
            account=account,
            meter=meter,
            start_date=dt.date(2024, 1, 1),
            end_date=dt.date(2024, 1, 31),
            consumption=Decimal(100),
        )
        response = api.patch(f"{URL}{meter.pk}/", {"meter_type": "ELECTRICITY"}, format="json")
        assert_invalid(response, "meter_type")


class TestUnit:
    @pytest.mark.parametrize(
        ("meter_type", "unit"),
        [
            *[
                (t, "kWh")
                for t in (
                    "ELECTRICITY",
                    "SOLAR",
                    "EV",
                    "GENSET",
                    "HVAC",
                    "CHP",
                    "HEATING",
                    "COOLING",
                )
            ],
            *[(t, "m3") for t in ("GAS", "WATER", "WATER_COLD", "WATER_HOT")],
            *[(t, "L") for t in ("FUEL_OIL", "DIESEL", "LPG")],
            *[
                (t, "kg")
                for t in ("STEAM", "CARBON", "WASTE_LANDFILL", "WASTE_RECYCLING", "WASTE_COMPOST")
            ],
        ],
    )
    def test_default_unit_by_type(self, api, meter_type, unit):
        response = create(api, meter_type=meter_type)
        assert response.status_code == 201
        assert response.json()["data"]["unit"] == unit

    def test_every_type_has_a_default(self):
        assert set(domain.METER_TYPES) == {
            "ELECTRICITY",
            "GAS",
            "WATER",
            "WATER_COLD",
            "WATER_HOT",
            "HEATING",
            "COOLING",
            "SOLAR",
            "EV",
            "GENSET",
            "HVAC",
            "CHP",
            "STEAM",
            "FUEL_OIL",
            "DIESEL",
            "LPG",
            "CARBON",
            "WASTE_LANDFILL",
            "WASTE_RECYCLING",
            "WASTE_COMPOST",
        }

    @pytest.mark.parametrize(
        ("meter_type", "unit"),
        [
            ("ELECTRICITY", "MWh"),
            ("GAS", "ft3"),
            ("DIESEL", "m3"),
            ("CARBON", "t"),
        ],
    )
    def test_another_unit_of_the_same_dimension(self, api, meter_type, unit):
        response = create(api, meter_type=meter_type, unit=unit)
        assert response.status_code == 201
        assert response.json()["data"]["unit"] == unit

    @pytest.mark.parametrize(
        ("meter_type", "unit"),
        [
            ("ELECTRICITY", "m3"),
            ("WATER", "kWh"),
            ("STEAM", "L"),
            ("GAS", "furlong"),
        ],
    )
    def test_unit_of_another_dimension_is_a_400(self, api, meter_type, unit):
        assert_invalid(create(api, meter_type=meter_type, unit=unit), "unit")


class TestChoices:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("billing_type", "PRIVATE"),
            ("billing_direction", "BOTH"),
            ("communication_type", "PIGEON"),
            ("status", "LOST"),
        ],
    )
    def test_unknown_value_is_a_400(self, api, field, value):
        assert_invalid(create(api, **{field: value}), field)

    @pytest.mark.parametrize("value", ["INDIVIDUAL", "COLLECTIVE", "SHARED", "INCLUDED"])
    def test_billing_types(self, api, value):
        assert create(api, billing_type=value).json()["data"]["billing_type"] == value


class TestNumbers:
    @pytest.mark.parametrize("value", [0, -1, "0"])
    def test_multiplier_must_be_positive(self, api, value):
        assert_invalid(create(api, multiplier=value), "multiplier")

    @pytest.mark.parametrize("value", [-1, 7])
    def test_precision_digits_from_0_to_6(self, api, value):
        assert_invalid(create(api, precision_digits=value), "precision_digits")

    @pytest.mark.parametrize("value", [0, 6])
    def test_precision_digits_bounds_are_accepted(self, api, value):
        assert create(api, precision_digits=value).status_code == 201

    @pytest.mark.parametrize("value", [0, -5])
    def test_max_value_must_be_positive(self, api, value):
        assert_invalid(create(api, max_value=value), "max_value")

    def test_max_value_may_be_null(self, api):
        assert create(api, max_value=None).json()["data"]["max_value"] is None

    @pytest.mark.parametrize("value", [0, -60])
    def test_reading_interval_must_be_positive(self, api, value):
        assert_invalid(create(api, reading_interval=value), "reading_interval")

    def test_reading_interval_may_be_null(self, api):
        assert create(api, reading_interval=None).status_code == 201

    def test_numbers_accept_numeric_strings(self, api):
        data = create(api, multiplier="1.5", max_value="100000").json()["data"]
        assert data["multiplier"] == 1.5 and data["max_value"] == 100000

    def test_non_numeric_string_is_a_400(self, api):
        assert_invalid(create(api, multiplier="abc"), "multiplier")


class TestHierarchy:
    def test_meter_with_a_parent_cannot_be_main(self, api, account):
        parent = MeterFactory(account=account)
        assert_invalid(create(api, parent_meter_id=parent.pk, is_main_meter=True), "is_main_meter")

    def test_parent_of_another_family_is_a_400(self, api, account):
        parent = MeterFactory(account=account, meter_type="WATER")
        assert_invalid(create(api, meter_type="GAS", parent_meter_id=parent.pk), "parent_meter_id")

    @pytest.mark.parametrize(
        ("parent_type", "child_type"),
        [
            ("WATER", "WATER_HOT"),
            ("WATER_COLD", "WATER"),
            ("WATER_HOT", "WATER_COLD"),
            ("HEATING", "HEATING"),
        ],
    )
    def test_parent_of_the_same_family(self, api, account, parent_type, child_type):
        parent = MeterFactory(account=account, meter_type=parent_type)
        response = create(api, meter_type=child_type, parent_meter_id=parent.pk)
        assert response.status_code == 201, response.json()

    def test_no_cycles(self, api, account):
        top = MeterFactory(account=account)
        middle = MeterFactory(account=account, parent_meter=top)
        bottom = MeterFactory(account=account, parent_meter=middle)
        response = api.patch(f"{URL}{top.pk}/", {"parent_meter_id": bottom.pk}, format="json")
        assert_invalid(response, "parent_meter_id")
        assert Meter.objects.get(pk=top.pk).parent_meter_id is None

    def test_not_its_own_parent(self, api, account):
        meter = MeterFactory(account=account)
        response = api.patch(f"{URL}{meter.pk}/", {"parent_meter_id": meter.pk}, format="json")
        assert_invalid(response, "parent_meter_id")

    def test_sub_meters_direct_and_recursive(self, api, account):
        top = MeterFactory(account=account)
        middle = MeterFactory(account=account, parent_meter=top)
        bottom = MeterFactory(account=account, parent_meter=middle)
        MeterFactory(account=account)  # unrelated
        direct = api.get(f"{URL}{top.pk}/sub-meters/").json()
        assert [m["id"] for m in direct["data"]] == [middle.pk]
        everything = api.get(f"{URL}{top.pk}/sub-meters/?recursive=true").json()
        assert sorted(m["id"] for m in everything["data"]) == sorted([middle.pk, bottom.pk])
        assert everything["meta"]["total"] == 2

    def test_sub_meters_recursive_flag_must_be_a_boolean(self, api, account):
        meter = MeterFactory(account=account)
        assert_invalid(api.get(f"{URL}{meter.pk}/sub-meters/?recursive=yes"), "recursive")


class TestReferences:
    def test_estate_must_be_in_the_place(self, api, account):
        estate = EstateFactory(place=PlaceFactory(account=account))
        other_place = PlaceFactory(account=account)
        assert_invalid(create(api, estate_id=estate.pk, place_id=other_place.pk), "estate_id")

    def test_place_is_taken_from_the_estate(self, api, account):
        estate = EstateFactory(place=PlaceFactory(account=account))
        data = create(api, estate_id=estate.pk).json()["data"]
        assert data["place_id"] == estate.place_id

    def test_service_place_must_be_in_the_place(self, api, account):
        service_place = ServicePlaceFactory(place=PlaceFactory(account=account))
        other_place = PlaceFactory(account=account)
        response = create(api, service_place_id=service_place.pk, place_id=other_place.pk)
        assert_invalid(response, "service_place_id")

    def test_tariff_must_be_of_the_meter_type(self, api, account):
        tariff = TariffFactory(account=account, meter_type="GAS")
        assert_invalid(create(api, tariff_id=tariff.pk), "tariff_id")

    def test_tariff_of_another_account(self, api, other_account):
        tariff = TariffFactory(account=other_account)
        assert_invalid(create(api, tariff_id=tariff.pk), "tariff_id")

    def test_reference_must_be_an_integer_id(self, api):
        assert_invalid(create(api, place_id="abc"), "place_id")
        assert_invalid(create(api, place_id=True), "place_id")


class TestDates:
    def test_installation_date_today_is_fine(self, api, account):
        today = account.today().isoformat()
        assert create(api, installation_date=today).status_code == 201

    def test_installation_date_in_the_future_is_a_400(self, api, account):
        tomorrow = (account.today() + dt.timedelta(days=1)).isoformat()
        assert_invalid(create(api, installation_date=tomorrow), "installation_date")

    def test_last_inspection_not_before_installation(self, api):
        response = create(api, installation_date="2022-05-01", last_inspection_date="2022-04-30")
        assert_invalid(response, "last_inspection_date")

    def test_next_inspection_not_before_last(self, api):
        response = create(api, last_inspection_date="2023-01-02", next_inspection_date="2023-01-01")
        assert_invalid(response, "next_inspection_date")

    def test_invalid_date(self, api):
        assert_invalid(create(api, installation_date="2023-02-30"), "installation_date")


class TestProperties:
    @pytest.mark.parametrize("value", [[1, 2], "text", 3])
    def test_properties_must_be_an_object(self, api, value):
        assert_invalid(create(api, properties=value), "properties")


class TestUpdate:
    def test_put_replaces_and_patch_merges(self, api, account):
        meter = MeterFactory(account=account, manufacturer="Landis", location="cellar")
        response = api.put(
            f"{URL}{meter.pk}/",
            {"name": "Renamed", "serial_number": meter.serial_number, "meter_type": "ELECTRICITY"},
            format="json",
        )
        assert response.status_code == 200
        response = api.patch(f"{URL}{meter.pk}/", {"location": "roof"}, format="json")
        meter.refresh_from_db()
        assert (meter.name, meter.location) == ("Renamed", "roof")

    def test_last_reading_fields_are_read_only(self, api, account):
        meter = MeterFactory(account=account)
        api.patch(f"{URL}{meter.pk}/", {"last_reading_value": 5}, format="json")
        meter.refresh_from_db()
        assert meter.last_reading_value is None


class TestDelete:
    def test_meter_without_readings_is_deleted_with_its_registers(self, api, account):
        meter = MeterFactory(account=account)
        assert api.delete(f"{URL}{meter.pk}/").status_code == 204
        assert not Meter.objects.filter(pk=meter.pk).exists()
        assert not Register.objects.filter(meter_id=meter.pk).exists()

    def test_meter_with_readings_is_409(self, api, account):
        meter = MeterFactory(account=account)
        add_reading(meter)
        response = api.delete(f"{URL}{meter.pk}/")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "meter_has_readings"
        assert Meter.objects.filter(pk=meter.pk).exists()

    def test_meter_with_sub_meters_is_409(self, api, account):
        meter = MeterFactory(account=account)
        MeterFactory(account=account, parent_meter=meter)
        response = api.delete(f"{URL}{meter.pk}/")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "meter_has_sub_meters"
        assert Meter.objects.filter(pk=meter.pk).exists()


class TestFilters:
    @pytest.fixture
    def meters(self, account):
        place = PlaceFactory(account=account)
        estate = EstateFactory(place=place)
        service_place = ServicePlaceFactory(place=place)
        gateway = GatewayFactory(account=account)
        main = MeterFactory(
            account=account,
            meter_type="WATER",
            is_main_meter=True,
            place=place,
            billing_type="COLLECTIVE",
            billing_direction="ACCPAY",
            communication_type="LORAWAN",
            gateway=gateway,
            manufacturer="Itron",
            location="basement",
        )
        sub = MeterFactory(
            account=account,
            meter_type="WATER_COLD",
            parent_meter=main,
            estate=estate,
            status="FAULTY",
        )
        electricity = MeterFactory(
            account=account,
            service_place=service_place,
            billing_type="SHARED",
            billing_direction="ACCREC",
            serial_number="ELEC-42",
        )
        return {
            "main": main,
            "sub": sub,
            "electricity": electricity,
            "place": place,
            "estate": estate,
            "service_place": service_place,
            "gateway": gateway,
        }

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("place_id={place}", ["main", "sub", "electricity"]),
            ("estate_id={estate}", ["sub"]),
            ("service_place_id={service_place}", ["electricity"]),
            ("gateway_id={gateway}", ["main"]),
            ("parent_meter_id={main}", ["sub"]),
            ("meter_type=WATER", ["main"]),
            ("status=FAULTY", ["sub"]),
            ("billing_type=SHARED", ["electricity"]),
            ("billing_direction=ACCPAY", ["main"]),
            ("communication_type=LORAWAN", ["main"]),
            ("is_main_meter=true", ["main"]),
            ("is_main_meter=false", ["sub", "electricity"]),
            ("search=itron", ["main"]),
            ("search=ELEC-4", ["electricity"]),
            ("search=basement", ["main"]),
        ],
    )
    def test_filter(self, api, meters, query, expected):
        ids = {name: obj.pk for name, obj in meters.items()}
        body = api.get(f"{URL}?{query.format(**ids)}").json()
        assert sorted(m["id"] for m in body["data"]) == sorted(ids[name] for name in expected)

    def test_place_and_estate_routes(self, api, meters):
        place, estate = meters["place"], meters["estate"]
        by_place = api.get(f"/api/v1/places/{place.pk}/meters/").json()
        assert by_place["meta"]["total"] == 3
        by_estate = api.get(f"/api/v1/estates/{estate.pk}/meters/").json()
        assert [m["id"] for m in by_estate["data"]] == [meters["sub"].pk]
        nested = api.get(f"/api/v1/places/{place.pk}/estates/{estate.pk}/meters/").json()
        assert [m["id"] for m in nested["data"]] == [meters["sub"].pk]
        filtered = api.get(f"/api/v1/places/{place.pk}/meters/?meter_type=WATER").json()
        assert [m["id"] for m in filtered["data"]] == [meters["main"].pk]

    def test_estate_of_another_place_in_the_nested_route_is_404(self, api, account, meters):
        other_place = PlaceFactory(account=account)
        response = api.get(f"/api/v1/places/{other_place.pk}/estates/{meters['estate'].pk}/meters/")
        assert response.status_code == 404
