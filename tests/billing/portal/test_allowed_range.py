"""``meters/{id}/allowed-range/``: the values a reading could take without a flag (§4.2, §6).

The series below is worked out by hand: readings 10 days apart, 100 apart, so every interval
consumes 100 over 10 days and the baseline is 10 a day. A reading 10 days after the last one
(400) is unflagged when its consumption c keeps the rate within the deviation band,
0.5 × 10 ≤ c / 10 ≤ 1.5 × 10 (DROP at 0.25 and SPIKE at 3 are outside it): 450 ≤ value ≤ 550.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from metering.models import Register
from readings import domain
from readings import services as readings_services
from readings.models import Reading
from tests.billing.api import assert_error
from tests.readings.conftest import add, day

pytestmark = pytest.mark.django_db

BASE = [(0, 100), (10, 200), (20, 300), (30, 400)]


def ask(client, meter, when: dt.datetime | str, query: str = "") -> dict:
    moment = when if isinstance(when, str) else when.isoformat().replace("+00:00", "Z")
    response = client.get(
        f"/api/v1/portal/meters/{meter.pk}/allowed-range/?reading_date={moment}{query}"
    )
    assert response.status_code == 200, response.content[:300]
    return response.json()["data"]


def bounds(data: dict) -> tuple:
    return data["min_value"], data["max_value"]


def flags_at(meter, register: Register, when: dt.datetime, value: Decimal) -> frozenset[str]:
    """The flags the engine's own rule gives a reading of ``value`` at ``when``."""
    rows = list(
        Reading.objects.filter(register=register)
        .order_by("reading_date")
        .values_list("reading_date", "value")
    )
    points = sorted([*rows, (when, value)])
    meter.refresh_from_db()
    derived = domain.derive_series(
        [domain.Point(at, v) for at, v in points],
        factor=meter.multiplier * register.transformer_ratio,
        max_value=meter.max_value,
        thresholds=readings_services.thresholds(meter.account),
        restarts=readings_services.restarts_of(meter=meter, register=register),
    )
    return derived[points.index((when, value))].flags


def assert_tight(meter, when: dt.datetime, data: dict) -> None:
    """The bounds are unflagged and one step (0.001) outside them is flagged."""
    register = meter.registers.get(is_default=True)
    step = Decimal("0.001")
    low, high = Decimal(str(data["min_value"])), Decimal(str(data["max_value"]))
    assert flags_at(meter, register, when, low) == frozenset()
    assert flags_at(meter, register, when, high) == frozenset()
    assert flags_at(meter, register, when, low - step)
    assert flags_at(meter, register, when, high + step)


class TestHandWorked:
    def test_ten_days_after(self, portal, meter):
        add(meter, *BASE)
        data = ask(portal, meter, day(40))
        assert data == {
            "reading_date": "2024-02-10T00:00:00Z",
            "register_id": meter.registers.get(is_default=True).pk,
            "register": "default",
            "min_value": 450.0,
            "max_value": 550.0,
            "previous_value": 400.0,
            "previous_reading_date": "2024-01-31T00:00:00Z",
            "next_value": None,
            "next_reading_date": None,
            "baseline_intervals": 3,
            "baseline_daily_consumption": 10.0,
            "is_locked": False,
        }
        assert_tight(meter, day(40), data)

    def test_five_days_after(self, portal, meter):
        add(meter, *BASE)
        assert bounds(ask(portal, meter, day(35))) == (425, 475)

    def test_a_third_of_a_day_rounds_inwards_to_the_meters_decimals(self, portal, meter):
        # 8 h: 10/3 at the baseline's rate; 400 + 0.5 × 10/3 = 401.6666… → 401.667 (up);
        # 400 + 1.5 × 10/3 = 405 exactly.
        add(meter, *BASE)
        when = day(30) + dt.timedelta(hours=8)
        data = ask(portal, meter, when)
        assert bounds(data) == (401.667, 405)
        assert_tight(meter, when, data)

    def test_spike_below_the_deviation_band_is_a_strict_bound(self, portal, meter, account):
        # Deviation 3: the band is −2 × .. 4 × the baseline; DROP (0.25) then bounds it
        # below, SPIKE (rate ≥ 3 × baseline) above, strictly: 400 + 300 − 0.001.
        account.anomaly_deviation_ratio = Decimal(3)
        account.save()
        add(meter, *BASE)
        data = ask(portal, meter, day(40))
        assert bounds(data) == (425, 699.999)
        assert_tight(meter, day(40), data)

    def test_a_multiplier_does_not_move_the_index_bounds(self, portal, meter):
        meter.multiplier = Decimal(2)
        meter.save()
        add(meter, *BASE)
        data = ask(portal, meter, day(40))
        assert bounds(data) == (450, 550)
        assert data["baseline_daily_consumption"] == 20  # 200 a day × 2 / 10 days

    def test_a_baseline_of_zero_allows_only_the_same_value(self, portal, meter):
        add(meter, (0, 100), (10, 100), (20, 100), (30, 100))
        assert bounds(ask(portal, meter, day(40))) == (100, 100)

    def test_negative_intervals_are_no_part_of_the_baseline(self, portal, meter):
        # 100 → 200 → 150 (NEGATIVE) → 250 → 350: three intervals of 100 over 10 days.
        add(meter, (0, 100), (10, 200), (20, 150), (30, 250), (40, 350))
        data = ask(portal, meter, day(50))
        assert bounds(data) == (400, 500)
        assert data["baseline_intervals"] == 3

    def test_only_intervals_ending_within_the_baseline_days_count(self, portal, meter):
        # At day 440 only the interval ending at day 430 is within 365 days: no baseline.
        add(meter, *BASE, (430, 500))
        data = ask(portal, meter, day(440))
        assert bounds(data) == (500, None)
        assert data["baseline_intervals"] == 1 and data["baseline_daily_consumption"] is None


class TestWithoutBaseline:
    def test_fewer_than_three_intervals(self, portal, meter):
        add(meter, (0, 100), (10, 200))
        data = ask(portal, meter, day(20))
        assert bounds(data) == (200, None)  # never below the previous value: NEGATIVE
        assert data["baseline_intervals"] == 1

    def test_no_reading_yet(self, portal, meter):
        data = ask(portal, meter, day(0))
        assert bounds(data) == (0, None)
        assert data["previous_value"] is None and data["previous_reading_date"] is None


class TestCaps:
    def test_a_rollover_counter_caps_at_its_max_value(self, portal, meter):
        meter.max_value = Decimal(500)
        meter.save()
        add(meter, *BASE)
        assert bounds(ask(portal, meter, day(40))) == (450, 500)

    def test_a_later_reading_caps_the_max(self, portal, meter):
        add(meter, *BASE, (50, 520))
        data = ask(portal, meter, day(40))
        assert bounds(data) == (450, 520)
        assert data["next_value"] == 520 and data["next_reading_date"] == "2024-02-20T00:00:00Z"

    def test_a_reading_at_that_date_is_left_out(self, portal, meter):
        add(meter, *BASE, (40, 999))
        data = ask(portal, meter, day(40))
        assert bounds(data) == (450, 550) and data["previous_value"] == 400

    def test_after_a_device_replacement_it_counts_from_the_new_device(self, portal, meter):
        # The old device's final reading, 450 at day 35, makes a fourth interval (50 over 5
        # days, still 10 a day); the new device starts at 0: 5 days later, 25 to 75.
        add(meter, *BASE)
        readings_services.replace_device(
            meter=meter,
            replaced_at=day(35),
            final_value=Decimal(450),
            new_serial_number="E-A12-2",
            initial_value=Decimal(0),
            actor=readings_services.Actor("test"),
        )
        data = ask(portal, meter, day(40))
        assert bounds(data) == (25, 75)
        assert data["previous_value"] == 0 and data["baseline_intervals"] == 4
        assert_tight(meter, day(40), data)


class TestParameters:
    def test_reading_date_is_required(self, portal, meter):
        response = portal.get(f"/api/v1/portal/meters/{meter.pk}/allowed-range/")
        assert_error(response, 400, "validation_error", "reading_date")

    @pytest.mark.parametrize("value", ["yesterday", "2024-02-30", "2099-01-01"])
    def test_invalid_or_future_reading_date_is_400(self, portal, meter, value):
        response = portal.get(
            f"/api/v1/portal/meters/{meter.pk}/allowed-range/?reading_date={value}"
        )
        assert_error(response, 400, "validation_error", "reading_date")

    def test_a_date_alone_is_midnight_in_the_accounts_zone(self, portal, meter):
        assert ask(portal, meter, "2024-02-10")["reading_date"] == "2024-02-09T23:00:00Z"

    def test_another_register(self, portal, meter):
        register = meter.registers.create(code="1.8.2", unit="kWh")
        add(meter, *BASE, register=register)
        assert bounds(ask(portal, meter, day(40))) == (0, None)
        assert bounds(ask(portal, meter, day(40), "&register=1.8.2")) == (450, 550)
        data = ask(portal, meter, day(40), f"&register_id={register.pk}")
        assert data["register"] == "1.8.2" and bounds(data) == (450, 550)
        response = portal.get(
            f"/api/v1/portal/meters/{meter.pk}/allowed-range/?reading_date=2024-01-01&register=nope"
        )
        assert_error(response, 400, "validation_error", "register")

    def test_a_locked_date_says_so(self, portal, meter):
        add(meter, *BASE)
        meter.registers.update(locked_until=day(45))
        assert ask(portal, meter, day(40))["is_locked"] is True


def test_a_reading_sent_at_the_bounds_is_not_flagged(portal, meter):
    add(meter, *BASE)
    data = ask(portal, meter, day(40))
    path = f"/api/v1/portal/meters/{meter.pk}/readings/"
    for value, flags in ((data["max_value"] + 0.001, ["DEVIATION"]), (data["max_value"], [])):
        body = {"reading_date": "2024-02-10T00:00:00Z", "value": round(value, 3)}
        response = portal.post(path, body, format="json")
        assert response.json()["data"]["anomaly_flags"] == flags
        reading = Reading.objects.get(pk=response.json()["data"]["id"])
        readings_services.delete_reading(reading=reading, actor=readings_services.Actor("t"))


class TestDomain:
    """``domain.unflagged_range`` without a database."""

    THRESHOLDS = domain.Thresholds()
    TEN_DAYS = 10 * 86_400_000_000
    BASELINE = domain.Baseline(Decimal(300), 3 * TEN_DAYS, 3)

    def range_(self, **kwargs) -> domain.ValueRange:
        values = {
            "start": Decimal(400),
            "micros": self.TEN_DAYS,
            "baseline": self.BASELINE,
            "factor": Decimal(1),
            "thresholds": self.THRESHOLDS,
            "decimals": 3,
        }
        return domain.unflagged_range(**{**values, **kwargs})

    def test_the_band(self):
        assert self.range_() == domain.ValueRange(Decimal(450), Decimal(550))

    def test_decimals(self):
        third = self.range_(micros=self.TEN_DAYS // 30, decimals=0)  # 8 h: 3.33… at baseline
        assert third == domain.ValueRange(Decimal(402), Decimal(405))

    def test_factor(self):
        assert self.range_(factor=Decimal(4)) == domain.ValueRange(
            Decimal("412.5"), Decimal("437.5")
        )

    def test_caps(self):
        assert self.range_(modulus=Decimal("499.9999")).max_value == Decimal("499.999")
        assert self.range_(later_value=Decimal(470)).max_value == Decimal(470)
        # With a modulus the later reading does not cap: above it, it would be a rollover.
        assert self.range_(modulus=Decimal(999), later_value=Decimal(470)).max_value == 550

    def test_no_previous_no_baseline(self):
        assert self.range_(start=None) == domain.ValueRange(Decimal(0), None)
        few = domain.Baseline(Decimal(200), 2 * self.TEN_DAYS, 2)
        assert self.range_(baseline=few) == domain.ValueRange(Decimal(400), None)

    def test_start_value_after_a_restart(self):
        previous = domain.Point(day(30), Decimal(400))
        restarts = [domain.Restart(day(35), Decimal(7)), domain.Restart(day(50), Decimal(9))]
        assert domain.start_value(previous, day(40), restarts) == 7
        assert domain.start_value(previous, day(35), restarts) == 400
        assert domain.start_value(previous, day(60), restarts) == 9
