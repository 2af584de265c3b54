"""A meter's ``max_value`` is never below a value already stored on it (CONTRACT §3: 400).

Through the API (PATCH, PUT) and the admin's change form: the same rule (``Meter.clean``), the
contract's error shape, and nothing changed, neither the meter nor its readings' chain.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from metering.models import Meter
from readings.models import Reading
from tests.factories import MeterFactory, RegisterFactory
from tests.metering.test_admin import change_page_data, url
from tests.readings.conftest import add

pytestmark = pytest.mark.django_db

URL = "/api/v1/meters/"


@pytest.fixture
def meter(account) -> Meter:
    """Readings up to 900 on the default register, 1200 on a second register."""
    meter = MeterFactory(account=account, serial_number="E-1", max_value=None)
    add(meter, (0, 100), (1, 500), (2, 900))
    add(meter, (0, 1000), (1, 1200), register=RegisterFactory(meter=meter, code="1.8.2"))
    return meter


def chain(meter: Meter) -> list[tuple]:
    return list(
        Reading.objects.filter(meter=meter)
        .order_by("register__code", "reading_date")
        .values_list("value", "previous_value", "consumption", "is_rollover", "flag_negative")
    )


def assert_max_value_refused(response) -> dict:
    assert response.status_code == 400, response.content[:500]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error) == {"code", "message", "details"}
    (message,) = error["details"]["max_value"]
    # It says which stored value stands in the way.
    assert "1200" in message, message
    return error


@pytest.mark.parametrize("max_value", [800, "1199.999", 1, 901])
def test_patch_below_a_stored_value_is_400_and_changes_nothing(api, meter, max_value):
    before = chain(meter)
    response = api.patch(f"{URL}{meter.pk}/", {"max_value": max_value}, format="json")
    assert_max_value_refused(response)
    meter.refresh_from_db()
    assert meter.max_value is None
    assert chain(meter) == before


def test_a_lower_max_value_on_a_meter_that_has_one_is_400_too(api, account):
    meter = MeterFactory(account=account, max_value=Decimal(10000))
    add(meter, (0, 100), (1, 1200))
    response = api.patch(f"{URL}{meter.pk}/", {"max_value": 999}, format="json")
    assert_max_value_refused(response)
    meter.refresh_from_db()
    assert meter.max_value == 10000


def test_put_below_a_stored_value_is_400(api, meter):
    body = api.get(f"{URL}{meter.pk}/").json()["data"]
    body["max_value"] = 1000
    response = api.put(f"{URL}{meter.pk}/", body, format="json")
    assert_max_value_refused(response)
    meter.refresh_from_db()
    assert meter.max_value is None


@pytest.mark.parametrize("max_value", [1200, "1200.000001", 99999])
def test_at_or_above_every_stored_value_is_accepted(api, meter, max_value):
    response = api.patch(f"{URL}{meter.pk}/", {"max_value": max_value}, format="json")
    assert response.status_code == 200, response.content[:500]
    meter.refresh_from_db()
    assert meter.max_value == Decimal(str(max_value))


def test_a_meter_without_readings_takes_any_positive_max_value(api, account):
    meter = MeterFactory(account=account)
    response = api.patch(f"{URL}{meter.pk}/", {"max_value": 1}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["max_value"] == 1


def test_removing_max_value_is_accepted(api, account):
    meter = MeterFactory(account=account, max_value=Decimal(5000))
    add(meter, (0, 100), (1, 200))
    response = api.patch(f"{URL}{meter.pk}/", {"max_value": None}, format="json")
    assert response.status_code == 200
    meter.refresh_from_db()
    assert meter.max_value is None


def test_the_admin_form_shows_the_error_and_changes_nothing(member, meter):
    client = member("MANAGER")
    before, name = chain(meter), meter.name
    data = change_page_data(client.get(url("meter", "change", meter.pk)))
    data |= {"max_value": "1000", "name": "Renamed"}

    response = client.post(url("meter", "change", meter.pk), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "max_value" in errors and "1200" in errors["max_value"][0], errors
    meter.refresh_from_db()
    assert (meter.max_value, meter.name) == (None, name)
    assert chain(meter) == before


def test_the_admin_form_accepts_a_max_value_above_the_readings(member, meter):
    client = member("MANAGER")
    data = change_page_data(client.get(url("meter", "change", meter.pk)))
    response = client.post(url("meter", "change", meter.pk), data | {"max_value": "5000"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    meter.refresh_from_db()
    assert meter.max_value == 5000
