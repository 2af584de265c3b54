"""Device replacement and the serial-number history (CONTRACT §4.6)."""

from __future__ import annotations

import pytest

from metering.models import Meter, MeterDevice
from readings import selectors, services
from readings.models import Reading
from tests.factories import MeterFactory, RegisterFactory
from tests.readings.conftest import ACTOR, add, day, fresh_series, stored_series

pytestmark = pytest.mark.django_db


def replace_url(meter) -> str:
    return f"/api/v1/meters/{meter.pk}/replace/"


def devices_url(meter) -> str:
    return f"/api/v1/meters/{meter.pk}/devices/"


def replacement(n: float = 2, final=170, serial="W-2", **extra) -> dict:
    return {
        "replaced_at": day(n).isoformat(),
        "final_value": final,
        "new_serial_number": serial,
        **extra,
    }


def consumptions(register) -> list:
    return [row[3] for row in stored_series(register)]


class TestReplace:
    def test_consumption_across_the_replacement(self, api, meter, register):
        add(meter, (0, 100), (1, 150))
        response = api.post(replace_url(meter), replacement(initial_value=5), format="json")
        assert response.status_code == 201, response.json()
        add(meter, (3, 25))
        readings = list(Reading.objects.filter(register=register).order_by("reading_date"))
        assert [(r.value, r.previous_value, r.consumption) for r in readings] == [
            (100, None, None),
            (150, 100, 50),
            (170, 150, 20),  # the old device's last interval, to its final reading
            (25, 5, 20),  # the new device's first, from its initial value
        ]
        # Across the replacement: 20 + 20, nothing lost (150 → 170) nor invented (170 → 25).
        assert readings[2].consumption + readings[3].consumption == (170 - 150) + (25 - 5)
        assert not any(r.anomaly_flags for r in readings)
        assert stored_series(register) == fresh_series(register)

    def test_response_history_and_meter(self, api, meter, register):
        meter.manufacturer, meter.model_reference = "Itron", "Aquadis"
        meter.installation_date = day(-30).date()
        meter.save()
        add(meter, (0, 100))
        body = replacement(initial_value="1.5", manufacturer="Diehl", model_reference="Altair")
        data = api.post(replace_url(meter), body, format="json").json()["data"]
        assert data["serial_number"] == "W-2"
        assert data["installed_at"] == "2024-01-03T00:00:00Z"
        assert (data["initial_value"], data["removed_at"], data["final_value"]) == (1.5, None, None)
        assert data["meter_id"] == meter.pk

        history = api.get(devices_url(meter)).json()
        assert history["meta"]["total"] == 2
        old, new = history["data"]
        assert (old["serial_number"], old["manufacturer"], old["model_reference"]) == (
            "W-1",
            "Itron",
            "Aquadis",
        )
        assert old["installed_at"] == "2023-12-01T23:00:00Z"  # 00:00 in Paris
        assert (old["removed_at"], old["final_value"], old["initial_value"]) == (
            "2024-01-03T00:00:00Z",
            170,
            None,
        )
        assert new["id"] == data["id"]

        meter.refresh_from_db()
        assert (meter.serial_number, meter.manufacturer, meter.model_reference) == (
            "W-2",
            "Diehl",
            "Altair",
        )
        assert (meter.last_reading_value, meter.last_reading_at) == (170, day(2))
        final = Reading.objects.get(register=register, reading_date=day(2))
        assert (final.source, final.notes) == ("API", "Final reading of device W-1.")

    def test_a_second_replacement_closes_the_current_device(self, api, meter, register):
        add(meter, (0, 100))
        api.post(replace_url(meter), replacement(2, 170, "W-2", initial_value=0), format="json")
        add(meter, (3, 10))
        response = api.post(
            replace_url(meter), replacement(4, 30, "W-3", initial_value=7), format="json"
        )
        assert response.status_code == 201, response.json()
        add(meter, (5, 17))
        rows = api.get(devices_url(meter)).json()["data"]
        assert [(d["serial_number"], d["removed_at"] is None) for d in rows] == [
            ("W-1", False),
            ("W-2", False),
            ("W-3", True),
        ]
        assert consumptions(register) == [None, 70, 10, 20, 10]
        assert stored_series(register) == fresh_series(register)

    def test_readings_written_before_the_replacement_was_recorded(self, api, meter, register):
        # The new device's readings arrive first; recording the replacement re-derives them.
        add(meter, (0, 100), (1, 150), (3, 25), (4, 35))
        assert consumptions(register)[2] == 25 - 150  # negative until the replacement is known
        api.post(replace_url(meter), replacement(2, 170, initial_value=5), format="json")
        assert consumptions(register) == [None, 50, 20, 20, 10]
        assert not any(Reading.objects.filter(register=register, flag_negative=True))
        assert stored_series(register) == fresh_series(register)

    def test_later_writes_keep_the_restart(self, api, meter, register):
        add(meter, (0, 100), (1, 150))
        api.post(replace_url(meter), replacement(2, 170, initial_value=5), format="json")
        add(meter, (4, 45), (3, 25))  # in any order
        final = Reading.objects.get(register=register, reading_date=day(2))
        services.delete_reading(reading=final, actor=ACTOR)  # the final reading removed
        assert consumptions(register) == [None, 50, 20, 20]
        assert stored_series(register) == fresh_series(register)

    def test_other_registers_restart_from_zero(self, api, meter, register):
        night = RegisterFactory(meter=meter, code="1.8.2")
        add(meter, (0, 100), (1, 150))
        add(meter, (0, 500), (1, 520), register=night)
        api.post(replace_url(meter), replacement(2, 170, initial_value=5), format="json")
        add(meter, (3, 12), register=night)
        assert consumptions(night) == [None, 20, 12]
        assert stored_series(night) == fresh_series(night)

    def test_other_registers_given_their_indexes(self, api, meter, register):
        night = RegisterFactory(meter=meter, code="1.8.2")
        add(meter, (0, 100), (1, 150))
        add(meter, (0, 500), (1, 520), register=night)
        swap = {"register": "1.8.2", "final_value": 530, "initial_value": 2}
        response = api.post(replace_url(meter), replacement(registers=[swap]), format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["data"]["registers"] == [
            {"register": "1.8.2", "final_value": 530, "initial_value": 2}
        ]
        add(meter, (3, 12), register=night)
        # Across the replacement: (530 − 520) + (12 − 2).
        assert consumptions(night) == [None, 20, 10, 10]
        assert stored_series(night) == fresh_series(night)

    @pytest.mark.parametrize(
        "swaps",
        [
            [{"register": "9.9.9"}],
            [{"register": "default", "final_value": 1}],
            [{"register": "1.8.2"}, {"register": "1.8.2"}],
            [{"register": "1.8.2", "initial_value": "0.0001"}],  # 3 decimals on this meter
        ],
    )
    def test_invalid_register_entries(self, api, meter, swaps):
        RegisterFactory(meter=meter, code="1.8.2")
        response = api.post(replace_url(meter), replacement(registers=swaps), format="json")
        assert response.status_code == 400, response.json()
        assert "registers" in response.json()["error"]["details"]
        assert not MeterDevice.objects.filter(meter=meter).exists()

    def test_recompute_keeps_the_restart(self, api, meter, register):
        add(meter, (0, 100), (1, 150))
        api.post(replace_url(meter), replacement(2, 170, initial_value=5), format="json")
        add(meter, (3, 25))
        api.patch(f"/api/v1/meters/{meter.pk}/", {"multiplier": 2}, format="json")
        assert consumptions(register) == [None, 100, 40, 40]
        assert stored_series(register) == fresh_series(register)

    def test_the_final_reading_is_audited(self, api, meter, register):
        add(meter, (0, 100))
        api.post(replace_url(meter), replacement(), format="json")
        final = Reading.objects.get(register=register, reading_date=day(2))
        (entry,) = selectors.reading_history(reading_ids=[final.pk])
        assert (entry.action, entry.actor) == ("insert", f"key:{api.raw_key[:12]}")

    def test_idempotent(self, api, meter):
        add(meter, (0, 100))
        first = api.post(
            replace_url(meter), replacement(), format="json", HTTP_IDEMPOTENCY_KEY="r1"
        )
        again = api.post(
            replace_url(meter), replacement(), format="json", HTTP_IDEMPOTENCY_KEY="r1"
        )
        assert again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert MeterDevice.objects.filter(meter=meter).count() == 2


class TestRefusals:
    def error(self, response, status):
        assert response.status_code == status, response.json()
        return response.json()["error"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"final_value": -1}, "final_value"),
            ({"final_value": "1.0001"}, "final_value"),  # WATER meters: 3 decimals
            ({"initial_value": "abc"}, "initial_value"),
            ({"new_serial_number": ""}, "new_serial_number"),
            ({"new_serial_number": "W-1"}, "new_serial_number"),  # the current one
            ({"replaced_at": "2999-01-01"}, "replaced_at"),
            ({"replaced_at": "not a date"}, "replaced_at"),
            ({"replaced_at": day(-1).isoformat()}, "replaced_at"),  # before installation
        ],
    )
    def test_invalid(self, api, meter, body, field):
        meter.installation_date = day(0).date()
        meter.save()
        add(meter, (1, 100))
        error = self.error(api.post(replace_url(meter), replacement(**body), format="json"), 400)
        assert error["code"] == "validation_error"
        assert field in error["details"]
        self.assert_nothing_changed(meter)

    def test_before_the_current_device(self, api, meter):
        add(meter, (0, 100))
        api.post(replace_url(meter), replacement(5, 170, "W-2"), format="json")
        error = self.error(
            api.post(replace_url(meter), replacement(4, 180, "W-3"), format="json"), 400
        )
        assert "replaced_at" in error["details"]

    def test_serial_number_of_another_meter(self, api, account, meter):
        MeterFactory(account=account, serial_number="W-2")
        error = self.error(api.post(replace_url(meter), replacement(), format="json"), 409)
        assert error["code"] == "conflict"
        self.assert_nothing_changed(meter)

    def test_serial_number_of_another_accounts_meter_is_free(self, api, other_account, meter):
        MeterFactory(account=other_account, serial_number="W-2")
        assert api.post(replace_url(meter), replacement(), format="json").status_code == 201

    def test_a_reading_already_at_that_date(self, api, meter):
        add(meter, (2, 100))
        error = self.error(api.post(replace_url(meter), replacement(), format="json"), 409)
        assert error["code"] == "duplicate_reading"
        assert not MeterDevice.objects.filter(meter=meter).exists()
        assert list(Reading.objects.filter(meter=meter).values_list("value", flat=True)) == [100]

    def test_locked(self, api, meter, register):
        add(meter, (0, 100), (3, 200))
        services.lock_readings(readings=Reading.objects.filter(reading_date=day(3)))
        error = self.error(api.post(replace_url(meter), replacement(), format="json"), 403)
        assert error["code"] == "reading_locked"
        self.assert_nothing_changed(meter)

    def test_decommissioned(self, api, meter):
        Meter.objects.filter(pk=meter.pk).update(status="DECOMMISSIONED")
        error = self.error(api.post(replace_url(meter), replacement(), format="json"), 409)
        assert error["code"] == "conflict"

    def test_another_accounts_meter(self, other_api, meter):
        for response in (
            other_api.post(replace_url(meter), replacement(), format="json"),
            other_api.get(devices_url(meter)),
        ):
            assert self.error(response, 404)["code"] == "not_found"
        self.assert_nothing_changed(meter)

    def test_needs_meters_write(self, account, make_client, meter):
        readings_only = make_client(account, scopes=["meters:read", "readings:write"])
        error = self.error(
            readings_only.post(replace_url(meter), replacement(), format="json"), 403
        )
        assert error["code"] == "insufficient_scope"
        assert readings_only.get(devices_url(meter)).status_code == 200

    def assert_nothing_changed(self, meter):
        assert not MeterDevice.objects.filter(meter=meter).exists()
        assert not Reading.objects.filter(meter=meter, reading_date=day(2)).exists()
        assert Meter.objects.get(pk=meter.pk).serial_number == "W-1"
