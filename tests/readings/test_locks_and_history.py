"""Locks (CONTRACT §4.7), the audit history of every change, and re-derived series."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from metering import services as metering_services
from metering.models import Register
from readings import selectors, services
from readings.models import Reading
from tests.factories import MeterFactory
from tests.readings.conftest import add, day, fresh_series, stored_series

pytestmark = pytest.mark.django_db


def url(meter, suffix=""):
    return f"/api/v1/meters/{meter.pk}/readings/{suffix}"


class TestLocks:
    @pytest.fixture
    def locked(self, meter):
        readings = add(meter, (0, 10), (1, 20), (2, 30), (5, 60))
        services.lock_readings(readings=Reading.objects.filter(pk__in=[r.pk for r in readings[:3]]))
        return readings

    def test_lock_reaches_the_latest_locked_reading(self, meter, register, locked):
        register.refresh_from_db()
        assert register.locked_until == day(2)
        assert [r.is_locked for r in Reading.objects.order_by("reading_date")] == [
            True,
            True,
            True,
            False,
        ]

    def test_locks_only_move_forward(self, meter, register, locked):
        services.lock_readings(readings=Reading.objects.filter(reading_date=day(0)))
        register.refresh_from_db()
        assert register.locked_until == day(2)

    @pytest.mark.parametrize("method", ["patch", "put", "delete"])
    def test_locked_reading_cannot_change(self, api, meter, locked, method):
        reading = locked[1]
        body = {"reading_date": day(1).isoformat(), "value": 21}
        response = getattr(api, method)(url(meter, f"{reading.pk}/"), body, format="json")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "reading_locked"
        assert Reading.objects.get(pk=reading.pk).value == 20

    def test_no_insert_among_locked_readings(self, api, meter, locked):
        response = api.post(
            url(meter), {"reading_date": day(1.5).isoformat(), "value": 25}, format="json"
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "reading_locked"

    def test_a_reading_cannot_move_into_the_locked_range(self, api, meter, locked):
        response = api.patch(
            url(meter, f"{locked[3].pk}/"), {"reading_date": day(1.5).isoformat()}, format="json"
        )
        assert response.status_code == 403

    def test_after_the_lock_everything_is_allowed(self, api, meter, register, locked):
        assert (
            api.post(
                url(meter), {"reading_date": day(3).isoformat(), "value": 40}, format="json"
            ).status_code
            == 201
        )
        assert (
            api.patch(url(meter, f"{locked[3].pk}/"), {"value": 61}, format="json").status_code
            == 200
        )
        assert api.delete(url(meter, f"{locked[3].pk}/")).status_code == 204
        assert stored_series(register) == fresh_series(register)

    def test_output_says_is_locked(self, api, meter, locked):
        data = api.get(url(meter, "?ordering=reading_date")).json()["data"]
        assert [r["is_locked"] for r in data] == [True, True, True, False]

    def test_meter_factors_cannot_change_under_locked_readings(self, api, meter, locked):
        for body in ({"multiplier": 2}, {"max_value": 1000}):
            response = api.patch(f"/api/v1/meters/{meter.pk}/", body, format="json")
            assert response.status_code == 400, body
        default = meter.registers.get()
        response = api.patch(
            f"/api/v1/meters/{meter.pk}/registers/{default.pk}/",
            {"transformer_ratio": 5},
            format="json",
        )
        assert response.status_code == 400
        assert "transformer_ratio" in response.json()["error"]["details"]

    def test_the_service_refuses_for_every_path(self, meter, locked):
        with pytest.raises(Exception) as exc:
            services.delete_reading(reading=locked[0], actor=services.Actor("admin:x", "ADMIN"))
        assert getattr(exc.value, "error_code", None) == "reading_locked"
        result = services.create_readings(
            meter=meter,
            items=[services.ReadingInput(reading_date=day(0.5), value=Decimal(15))],
            actor=services.Actor("import:x", "IMPORT"),
        )
        assert [e.code for e in result.errors] == ["reading_locked"]


class TestHistory:
    def test_every_change_is_recorded_with_who_when_and_values(self, api, meter):
        response = api.post(
            url(meter), {"reading_date": day(0).isoformat(), "value": 10}, format="json"
        )
        reading_id = response.json()["data"]["id"]
        api.patch(url(meter, f"{reading_id}/"), {"value": 12}, format="json")
        api.delete(url(meter, f"{reading_id}/"))
        history = selectors.reading_history(reading_ids=[reading_id])
        assert [entry.action for entry in history] == ["delete", "update", "insert"]
        actor = f"key:{api.raw_key[:12]}"
        assert {(entry.actor, entry.source) for entry in history} == {(actor, "API")}
        assert history[1].changes["value"] == (Decimal(10), Decimal(12))
        assert history[2].changes["value"] == (None, Decimal(10))
        assert history[0].changes["value"] == (Decimal(12), None)
        assert all(entry.at for entry in history)

    def test_bulk_writes_and_recomputed_neighbours_are_recorded(self, api, meter):
        add(meter, (0, 10), (2, 30))
        items = [
            {"reading_date": day(1).isoformat(), "value": 15},
            {"reading_date": day(3).isoformat(), "value": 40},
        ]
        api.post(url(meter, "batch/"), {"readings": items}, format="json")
        history = selectors.reading_history(meter_id=meter.pk)
        by_date = {}
        for entry in history:
            reading = Reading.objects.get(pk=entry.reading_id)
            by_date.setdefault(reading.reading_date, []).append(entry)
        by_key = [e for e in history if e.actor == f"key:{api.raw_key[:12]}"]
        inserted = [e for e in by_key if e.action == "insert"]
        assert len(inserted) == 2
        # The reading at day 2 was re-derived by the batch: its change is attributed to it.
        (update,) = [e for e in by_date[day(2)] if e.action == "update"]
        assert update in by_key
        assert update.changes["previous_value"] == (Decimal(10), Decimal(15))
        assert update.changes["consumption"] == (Decimal(20), Decimal(15))

    def test_each_path_is_named(self, meter):
        for label, source in [("user:alice", "ADMIN"), ("import:file.csv", "IMPORT")]:
            services.create_readings(
                meter=meter,
                items=[services.ReadingInput(reading_date=day(len(label)), value=Decimal(1))],
                actor=services.Actor(label, source),
            )
        history = selectors.reading_history(meter_id=meter.pk)
        assert {(e.actor, e.source) for e in history} == {
            ("user:alice", "ADMIN"),
            ("import:file.csv", "IMPORT"),
        }

    def test_connections_skip_the_per_row_trigger_setting_lookup(self, meter):
        # Without the setting, every audited row costs a subtransaction (config/settings/base).
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('pgtrigger.ignore', true)")
            assert cursor.fetchone() == ("{}",)
        (reading,) = add(meter, (0, 1))
        history = selectors.reading_history(reading_ids=[reading.pk])
        assert [entry.action for entry in history] == ["insert"]


class TestSeriesParameters:
    """A change of the parameters a series is derived from derives it again."""

    def test_multiplier(self, api, meter, register):
        add(meter, (0, 10), (1, 12))
        api.patch(f"/api/v1/meters/{meter.pk}/", {"multiplier": 10}, format="json")
        assert Reading.objects.get(reading_date=day(1)).consumption == 20
        assert stored_series(register) == fresh_series(register)

    def test_max_value(self, api, meter, register):
        add(meter, (0, 990), (1, 5))
        assert Reading.objects.get(reading_date=day(1)).flag_negative
        api.patch(f"/api/v1/meters/{meter.pk}/", {"max_value": 1000}, format="json")
        later = Reading.objects.get(reading_date=day(1))
        assert (later.consumption, later.is_rollover, later.flag_negative) == (15, True, False)

    def test_transformer_ratio(self, api, meter, register):
        add(meter, (0, 10), (1, 12))
        api.patch(
            f"/api/v1/meters/{meter.pk}/registers/{register.pk}/",
            {"transformer_ratio": 3},
            format="json",
        )
        assert Reading.objects.get(reading_date=day(1)).consumption == 6

    def test_account_thresholds(self, account, meter, register):
        add(meter, (0, 0), (1, 10), (2, 20), (3, 30), (4, 42))
        assert Reading.objects.get(reading_date=day(4)).anomaly_flags == []
        metering_services.update_account(
            account=account, values={"anomaly_deviation_ratio": Decimal("0.1")}
        )
        assert Reading.objects.get(reading_date=day(4)).anomaly_flags == ["DEVIATION"]
        assert stored_series(register) == fresh_series(register)

    def test_other_changes_do_not_touch_readings(self, api, meter, register):
        add(meter, (0, 10), (1, 12))
        before = list(Reading.objects.values_list("updated_at", flat=True))
        api.patch(f"/api/v1/meters/{meter.pk}/", {"name": "renamed"}, format="json")
        assert list(Reading.objects.values_list("updated_at", flat=True)) == before


def test_making_another_register_the_default_moves_the_meters_last_reading(api, account):
    meter = MeterFactory(account=account)
    add(meter, (0, 10))
    other = Register.objects.create(meter=meter, code="1.8.2", unit=meter.unit)
    add(meter, (1, 77), register=other)
    api.patch(
        f"/api/v1/meters/{meter.pk}/registers/{other.pk}/", {"is_default": True}, format="json"
    )
    meter.refresh_from_db()
    assert meter.last_reading_value == 77
