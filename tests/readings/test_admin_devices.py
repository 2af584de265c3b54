"""The admin action replacing a meter's device (CONTRACT §4.6), through the engine's service."""

from __future__ import annotations

import pytest

from metering.models import Meter, MeterDevice
from readings.models import Reading
from tests.factories import MeterFactory
from tests.metering.test_admin import url
from tests.readings.conftest import add, day, fresh_series, stored_series

pytestmark = pytest.mark.django_db


def action(meter, **fields) -> dict:
    data = {"action": "replace_device", "_selected_action": [str(meter.pk)]}
    if fields:
        data |= {"apply": "1", **fields}
    return data


def form(**changes) -> dict:
    return {
        "replaced_at_0": "2024-01-03",
        "replaced_at_1": "01:00:00",  # 00:00 UTC in Paris
        "final_value": "170",
        "new_serial_number": "W-2",
        "initial_value": "5",
        "manufacturer": "Diehl",
        "model_reference": "",
        **changes,
    }


@pytest.fixture
def meter(account):
    meter = MeterFactory(account=account, meter_type="WATER", serial_number="W-1")
    add(meter, (0, 100), (1, 150), (3, 25))
    return meter


def test_the_action_shows_a_form_then_replaces(member, meter):
    client = member("MANAGER")
    page = client.post(url("meter"), action(meter))
    assert page.status_code == 200
    assert b"Replace the device" in page.content and b"W-1" in page.content

    response = client.post(url("meter"), action(meter, **form()), follow=True)
    assert response.status_code == 200
    assert "device W-2 installed" in response.content.decode()
    meter.refresh_from_db()
    assert (meter.serial_number, meter.manufacturer) == ("W-2", "Diehl")
    register = meter.registers.get(is_default=True)
    rows = Reading.objects.filter(register=register).order_by("reading_date")
    assert [(r.value, r.consumption) for r in rows] == [(100, None), (150, 50), (170, 20), (25, 20)]
    final = rows.get(reading_date=day(2))
    assert (final.source, final.created_by) == ("ADMIN", f"user:{client.user.username}")
    assert stored_series(register) == fresh_series(register)

    page = client.get(url("meter", "change", meter.pk))
    assert b"serial-number history" in page.content
    assert page.content.count(b"W-1") >= 1 and b"W-2" in page.content


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"new_serial_number": "W-1"}, "current device"),
        ({"final_value": "-1"}, "greater than or equal to 0"),
        ({"replaced_at_0": "2024-01-04"}, "already has a reading"),  # 00:00 UTC: day 3's
        ({"replaced_at_0": "2999-01-01"}, "future"),
    ],
)
def test_refusals_are_shown_on_the_form(member, meter, changes, message):
    response = member("MANAGER").post(url("meter"), action(meter, **form(**changes)))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not MeterDevice.objects.exists()
    assert Meter.objects.get(pk=meter.pk).serial_number == "W-1"


def test_a_serial_number_in_use(member, account, meter):
    MeterFactory(account=account, serial_number="W-2")
    response = member("MANAGER").post(url("meter"), action(meter, **form()))
    assert "Another meter of this account has this serial number." in response.content.decode()
    assert not MeterDevice.objects.exists()


def test_one_meter_at_a_time(member, account, meter):
    other = MeterFactory(account=account)
    data = action(meter) | {"_selected_action": [str(meter.pk), str(other.pk)]}
    response = member("MANAGER").post(url("meter"), data, follow=True)
    assert "Select exactly one meter." in response.content.decode()


def test_a_viewer_cannot_replace(member, meter):
    response = member("VIEWER").post(url("meter"), action(meter, **form()), follow=True)
    assert not MeterDevice.objects.exists()
    assert Meter.objects.get(pk=meter.pk).serial_number == "W-1"
    assert response.status_code in (200, 403)


def test_another_accounts_meter_cannot_be_selected(member, other_account):
    other = MeterFactory(account=other_account, serial_number="X-1")
    member("MANAGER").post(url("meter"), action(other, **form()))
    assert Meter.objects.get(pk=other.pk).serial_number == "X-1"
    assert not MeterDevice.objects.exists()
