"""Registers of a meter (CONTRACT §3): one default, codes unique per meter, units."""

from __future__ import annotations

import pytest
from django.utils import timezone

from metering.models import Register
from readings.models import Reading
from tests.factories import MeterFactory, RegisterFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def meter(account):
    return MeterFactory(account=account, meter_type="ELECTRICITY")


def url(meter, register=None) -> str:
    base = f"/api/v1/meters/{meter.pk}/registers/"
    return f"{base}{register.pk}/" if register else base


def test_create_with_defaults(api, meter):
    response = api.post(url(meter), {"code": "1.8.1", "tariff_slot": "HT"}, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    assert data["meter_id"] == meter.pk
    assert data["unit"] == "kWh"
    assert data["direction"] == "CONSUMPTION"
    assert data["transformer_ratio"] == 1 and data["conversion_factor"] == 1
    assert data["is_default"] is False


def test_code_unique_per_meter_is_a_409(api, meter, account):
    response = api.post(url(meter), {"code": "default"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    other_meter = MeterFactory(account=account)
    assert api.post(url(other_meter), {"code": "1.8.1"}, format="json").status_code == 201
    assert api.post(url(meter), {"code": "1.8.1"}, format="json").status_code == 201


def test_making_a_register_default_takes_the_role_from_the_previous_one(api, meter):
    response = api.post(url(meter), {"code": "1.8.1", "is_default": True}, format="json")
    assert response.status_code == 201
    defaults = list(meter.registers.filter(is_default=True).values_list("code", flat=True))
    assert defaults == ["1.8.1"]
    old = meter.registers.get(code="default")
    api.patch(url(meter, old), {"is_default": True}, format="json")
    assert list(meter.registers.filter(is_default=True).values_list("code", flat=True)) == [
        "default"
    ]


def test_the_default_cannot_be_unset(api, meter):
    default = meter.registers.get()
    response = api.patch(url(meter, default), {"is_default": False}, format="json")
    assert response.status_code == 400
    assert "is_default" in response.json()["error"]["details"]
    assert meter.registers.get().is_default


def test_the_default_cannot_be_deleted(api, meter):
    response = api.delete(url(meter, meter.registers.get()))
    assert response.status_code == 409
    assert meter.registers.count() == 1


def test_a_register_with_readings_cannot_be_deleted(api, meter, account):
    register = RegisterFactory(meter=meter)
    Reading.objects.create(
        account=account, meter=meter, register=register, reading_date=timezone.now(), value=1
    )
    response = api.delete(url(meter, register))
    assert response.status_code == 409
    assert Register.objects.filter(pk=register.pk).exists()


def test_other_registers_can_be_deleted(api, meter):
    register = RegisterFactory(meter=meter)
    assert api.delete(url(meter, register)).status_code == 204
    assert not Register.objects.filter(pk=register.pk).exists()


@pytest.mark.parametrize("field", ["transformer_ratio", "conversion_factor"])
@pytest.mark.parametrize("value", [0, -2])
def test_ratios_must_be_positive(api, meter, field, value):
    response = api.post(url(meter), {"code": "x", field: value}, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_unit_must_measure_the_meter_types_quantity(api, meter):
    response = api.post(url(meter), {"code": "x", "unit": "m3"}, format="json")
    assert response.status_code == 400
    assert "unit" in response.json()["error"]["details"]
    assert api.post(url(meter), {"code": "y", "unit": "MWh"}, format="json").status_code == 201


def test_feed_in_register(api, meter):
    body = {"code": "2.8.0", "obis_code": "1-0:2.8.0", "direction": "FEED_IN", "name": "Export"}
    data = api.post(url(meter), body, format="json").json()["data"]
    assert (data["direction"], data["obis_code"]) == ("FEED_IN", "1-0:2.8.0")


def test_registers_of_another_meter_are_not_reachable_through_this_one(api, meter, account):
    other_meter = MeterFactory(account=account)
    register = RegisterFactory(meter=other_meter)
    assert api.get(url(meter, register)).status_code == 404


def test_filters(api, meter):
    RegisterFactory(meter=meter, code="2.8.0", direction="FEED_IN")
    RegisterFactory(meter=meter, code="1.8.1", tariff_slot="HT")
    assert [r["code"] for r in api.get(url(meter) + "?direction=FEED_IN").json()["data"]] == [
        "2.8.0"
    ]
    assert [r["code"] for r in api.get(url(meter) + "?tariff_slot=HT").json()["data"]] == ["1.8.1"]
    assert [r["code"] for r in api.get(url(meter) + "?is_default=true").json()["data"]] == [
        "default"
    ]
