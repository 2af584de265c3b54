"""Consumption, place consumption and balance through the API (CONTRACT §4.5)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering import domain as metering_domain
from readings import selectors
from tests.factories import MeterFactory, PlaceFactory, RegisterFactory
from tests.readings.test_consumption import add_period, add_readings, local

pytestmark = pytest.mark.django_db

BUCKET_FIELDS = {
    "period_start",
    "period_end",
    "consumption",
    "unit",
    "is_estimated",
    "readings_count",
}


@pytest.fixture(autouse=True, params=["probe", "scan"])
def strategy(request, monkeypatch) -> str:
    """Every test runs with each of the two SQL strategies (``selectors.spread_strategy``)."""
    monkeypatch.setattr(selectors, "PROBE_LIMIT", 10**9 if request.param == "probe" else 0)
    return request.param


def consumption(api, meter, **params):
    return api.get(f"/api/v1/meters/{meter.pk}/consumption/", params)


def place_consumption(api, place, **params):
    return api.get(f"/api/v1/places/{place.pk}/consumption/", params)


def balance(api, meter, **params):
    return api.get(f"/api/v1/meters/{meter.pk}/balance/", params)


def data(response):
    assert response.status_code == 200, response.content[:500]
    return response.json()["data"]


def error(response) -> dict:
    return response.json()["error"]


class TestMeterConsumption:
    def test_monthly_buckets(self, api, meter):
        add_readings(
            meter,
            [
                (local(2024, 1, 1), 0),
                (local(2024, 1, 20, 7), "10.5"),
                (local(2024, 3, 1), 40),
            ],
        )
        buckets = data(consumption(api, meter, start="2024-01-01", end="2024-03-31"))
        assert [set(bucket) for bucket in buckets] == [BUCKET_FIELDS] * 3
        assert [(b["period_start"], b["period_end"]) for b in buckets] == [
            ("2024-01-01", "2024-01-31"),
            ("2024-02-01", "2024-02-29"),
            ("2024-03-01", "2024-03-31"),
        ]
        assert {b["unit"] for b in buckets} == {"m3"}
        # 29.5 over 40 days and 17 hours, 11 days and 17 hours of it in January.
        january = Decimal("10.5") + Decimal("29.5") * Decimal(11 * 24 + 17) / (40 * 24 + 17)
        assert buckets[0]["consumption"] == pytest.approx(float(january))
        assert sum(b["consumption"] for b in buckets) == pytest.approx(40)
        assert [b["readings_count"] for b in buckets] == [2, 0, 1]
        assert [b["is_estimated"] for b in buckets] == [True, True, False]
        assert buckets[2]["consumption"] == 0

    @pytest.mark.parametrize("given", [{}, {"granularity": ""}])
    def test_granularity_defaults_to_month(self, api, meter, given):
        buckets = data(consumption(api, meter, start="2024-01-15", end="2024-02-10", **given))
        assert [(b["period_start"], b["period_end"]) for b in buckets] == [
            ("2024-01-15", "2024-01-31"),
            ("2024-02-01", "2024-02-10"),
        ]

    def test_days_of_a_change_of_clock_get_their_hours(self, api, meter):
        add_readings(meter, [(local(2024, 3, 30), 0), (local(2024, 4, 1), 47)])
        buckets = data(
            consumption(api, meter, start="2024-03-30", end="2024-03-31", granularity="day")
        )
        assert [b["consumption"] for b in buckets] == [24, 23]

    def test_weeks_start_on_monday(self, api, meter):
        add_readings(meter, [(local(2024, 1, 1), 0), (local(2024, 1, 15), 14)])
        buckets = data(
            consumption(api, meter, start="2024-01-03", end="2024-01-16", granularity="week")
        )
        assert [(b["period_start"], b["period_end"], b["consumption"]) for b in buckets] == [
            ("2024-01-03", "2024-01-07", 5),
            ("2024-01-08", "2024-01-14", 7),
            ("2024-01-15", "2024-01-16", 0),
        ]

    def test_years(self, api, meter):
        add_readings(meter, [(local(2023, 1, 1), 0), (local(2025, 1, 1), 731)])
        buckets = data(
            consumption(api, meter, start="2023-01-01", end="2024-12-31", granularity="year")
        )
        assert [b["consumption"] for b in buckets] == [365, 366]

    def test_register_id(self, api, meter):
        night = RegisterFactory(meter=meter, code="1.8.2", unit="L")
        add_readings(meter, [(local(2024, 1, 1), 0), (local(2024, 1, 2), 3)], register=night)
        add_readings(meter, [(local(2024, 1, 1), 0), (local(2024, 1, 2), 5)])
        night_buckets = data(
            consumption(api, meter, start="2024-01-01", end="2024-01-01", register_id=night.pk)
        )
        default_buckets = data(consumption(api, meter, start="2024-01-01", end="2024-01-01"))
        assert (night_buckets[0]["consumption"], night_buckets[0]["unit"]) == (3, "L")
        assert (default_buckets[0]["consumption"], default_buckets[0]["unit"]) == (5, "m3")

    def test_period_readings_are_spread_with_the_default_register(self, api, meter):
        add_period(meter, dt.date(2024, 1, 25), dt.date(2024, 2, 5), 120)
        buckets = data(consumption(api, meter, start="2024-01-01", end="2024-02-29"))
        assert [(b["consumption"], b["is_estimated"]) for b in buckets] == [
            (70, True),
            (50, True),
        ]

    def test_the_ends_of_the_supported_calendar(self, api, meter):
        # metering.domain.FIRST_DATE..LAST_DATE: the dates the product accepts (issue 12).
        last = data(
            consumption(api, meter, start="9998-12-01", end="9998-12-31", granularity="day")
        )
        assert len(last) == 31 and last[-1]["period_end"] == "9998-12-31"
        first = data(consumption(api, meter, start="1900-01-01", end="1900-01-01"))
        assert first[0]["consumption"] == 0

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"end": "2024-01-31"}, "start"),
            ({"start": "2024-01-01"}, "end"),
            ({"start": "2024-02-30", "end": "2024-03-31"}, "start"),
            ({"start": "yesterday", "end": "2024-03-31"}, "start"),
            ({"start": "2024-01-01T00:00:00", "end": "2024-03-31"}, "start"),
            ({"start": "2024-03-01", "end": "2024-02-01"}, "end"),
            ({"start": "2024-01-01", "end": "2024-01-31", "granularity": "hour"}, "granularity"),
            ({"start": "2020-01-01", "end": "2024-12-31", "granularity": "day"}, "granularity"),
            ({"start": "1900-01-01", "end": "9998-12-31", "granularity": "year"}, "granularity"),
            ({"start": "0001-01-01", "end": "0001-01-31"}, "start"),
            ({"start": "9999-12-01", "end": "9999-12-31"}, "end"),
            ({"start": "10000-01-01", "end": "10000-01-31"}, "start"),
            ({"start": "2024-01-01", "end": "2024-01-31", "register_id": "x"}, "register_id"),
            ({"start": "2024-01-01", "end": "2024-01-31", "register_id": "0"}, "register_id"),
            ({"start": "2024-01-01", "end": "2024-01-31", "register_id": "9" * 30}, "register_id"),
            ({"start": "2024-01-01", "end": "2024-01-31", "register_id": "99999"}, "register_id"),
        ],
    )
    def test_invalid_parameters_are_a_400(self, api, meter, params, field):
        response = consumption(api, meter, **params)
        assert response.status_code == 400, response.content[:300]
        assert error(response)["code"] == "validation_error"
        assert field in error(response)["details"], error(response)

    def test_a_register_of_another_meter_is_a_400(self, api, meter, account):
        other = MeterFactory(account=account)
        register = other.registers.get(is_default=True)
        response = consumption(
            api, meter, start="2024-01-01", end="2024-01-31", register_id=register.pk
        )
        assert response.status_code == 400
        assert "register_id" in error(response)["details"]

    def test_another_accounts_meter_is_a_404(self, other_api, meter):
        response = consumption(other_api, meter, start="2024-01-01", end="2024-01-31")
        assert response.status_code == 404
        assert error(response)["code"] == "not_found"
        response = other_api.get(f"/api/v1/meters/{meter.pk}/consumption/")  # no parameters
        assert response.status_code == 404

    def test_huge_meter_id_is_a_404(self, api):
        response = api.get(f"/api/v1/meters/{'9' * 30}/consumption/")
        assert response.status_code == 404

    def test_needs_the_readings_scope(self, make_client, account, meter):
        client = make_client(account, scopes=["meters:read", "billing:read"])
        response = consumption(client, meter, start="2024-01-01", end="2024-01-31")
        assert response.status_code == 403
        assert error(response)["code"] == "insufficient_scope"
        reader = make_client(account, scopes=["readings:read"])
        assert consumption(reader, meter, start="2024-01-01", end="2024-01-31").status_code == 200

    def test_same_number_of_queries_for_1_and_many_readings(self, api, meter):
        def count() -> int:
            with CaptureQueriesContext(connection) as queries:
                data(consumption(api, meter, start="2024-01-01", end="2024-12-31"))
            return len(queries)

        add_readings(meter, [(local(2024, 1, 1), 0)])
        consumption(api, meter, start="2024-01-01", end="2024-12-31")  # warm caches
        few = count()
        start = local(2024, 1, 2)
        add_readings(meter, [(start + dt.timedelta(hours=5 * n), n) for n in range(1, 300)])
        add_period(meter, dt.date(2024, 10, 1), dt.date(2024, 10, 31), 10)
        assert count() == few


class TestPlaceConsumption:
    @pytest.fixture
    def place(self, account):
        return PlaceFactory(account=account)

    def test_sums_the_places_meters_of_one_type_without_counting_sub_meters_twice(
        self, api, account, place
    ):
        main = MeterFactory(account=account, place=place, meter_type="WATER", is_main_meter=True)
        subs = [
            MeterFactory(account=account, place=place, meter_type="WATER", parent_meter=main)
            for _ in range(2)
        ]
        grandchild = MeterFactory(
            account=account, place=place, meter_type="WATER", parent_meter=subs[0]
        )
        alone = MeterFactory(account=account, place=place, meter_type="WATER")
        hot = MeterFactory(account=account, place=place, meter_type="WATER_HOT", parent_meter=main)
        elsewhere = MeterFactory(
            account=account, place=PlaceFactory(account=account), meter_type="WATER"
        )
        # A meter of this place under a main meter of another place counts here.
        under_other = MeterFactory(
            account=account, place=place, meter_type="WATER", parent_meter=elsewhere
        )
        figures = {
            main: 100,
            subs[0]: 30,
            subs[1]: 20,
            grandchild: 5,
            alone: 7,
            hot: 9,
            elsewhere: 1000,
            under_other: 3,
        }
        for meter, amount in figures.items():
            add_readings(meter, [(local(2024, 1, 1), 0), (local(2024, 1, 2), amount)])

        water = data(
            place_consumption(
                api,
                place,
                start="2024-01-01",
                end="2024-01-01",
                granularity="day",
                meter_type="WATER",
            )
        )
        assert [(b["consumption"], b["unit"], b["readings_count"]) for b in water] == [
            (110, "m3", 3)
        ]
        hot_water = data(
            place_consumption(
                api, place, start="2024-01-01", end="2024-01-01", meter_type="WATER_HOT"
            )
        )
        assert hot_water[0]["consumption"] == 9

    def test_a_place_without_meters_of_the_type(self, api, place):
        buckets = data(
            place_consumption(api, place, start="2024-01-01", end="2024-02-29", meter_type="GAS")
        )
        assert [(b["consumption"], b["unit"], b["is_estimated"]) for b in buckets] == [
            (0, "m3", False),
            (0, "m3", False),
        ]

    def test_period_readings_count_too(self, api, account, place):
        meter = MeterFactory(account=account, place=place, meter_type="GAS")
        add_period(meter, dt.date(2024, 1, 1), dt.date(2024, 1, 31), "41000")
        buckets = data(
            place_consumption(api, place, start="2024-01-01", end="2024-01-31", meter_type="GAS")
        )
        assert buckets[0]["consumption"] == 41000

    @pytest.mark.parametrize("meter_type", [None, "", "FOO", "water"])
    def test_meter_type_is_required_and_checked(self, api, place, meter_type):
        params = {"start": "2024-01-01", "end": "2024-01-31"}
        if meter_type is not None:
            params["meter_type"] = meter_type
        response = place_consumption(api, place, **params)
        assert response.status_code == 400
        assert "meter_type" in error(response)["details"]

    def test_meters_in_different_units_are_a_400(self, api, account, place):
        MeterFactory(account=account, place=place, meter_type="ELECTRICITY")
        MeterFactory(account=account, place=place, meter_type="ELECTRICITY", unit="MWh")
        response = place_consumption(
            api, place, start="2024-01-01", end="2024-01-31", meter_type="ELECTRICITY"
        )
        assert response.status_code == 400
        assert "MWh" in error(response)["details"]["meter_type"][0]

    def test_another_accounts_place_is_a_404(self, other_api, place):
        response = place_consumption(
            other_api, place, start="2024-01-01", end="2024-01-31", meter_type="GAS"
        )
        assert response.status_code == 404

    def test_same_number_of_queries_for_1_and_many_meters(self, api, account, place):
        def make(count: int) -> None:
            for _ in range(count):
                meter = MeterFactory(account=account, place=place, meter_type="GAS")
                add_readings(meter, [(local(2024, 1, 1), 0), (local(2024, 1, 20), 2)])

        def queries() -> tuple[int, float]:
            with CaptureQueriesContext(connection) as captured:
                buckets = data(
                    place_consumption(
                        api, place, start="2024-01-01", end="2024-12-31", meter_type="GAS"
                    )
                )
            return len(captured), buckets[0]["consumption"]

        make(1)
        queries()  # warm caches
        few, one = queries()
        make(9)
        many, ten = queries()
        assert (one, ten) == (2, 20)
        assert many == few


class TestBalance:
    @pytest.fixture
    def main(self, account):
        return MeterFactory(account=account, meter_type="ELECTRICITY", is_main_meter=True)

    def sub_meter(self, account, main, amount, *moments):
        meter = MeterFactory(account=account, meter_type="ELECTRICITY", parent_meter=main)
        add_readings(meter, [(moments[0], 0), (moments[1], amount)])
        return meter

    def test_main_meter_against_two_sub_meters(self, api, account, main):
        add_readings(main, [(local(2024, 1, 1), 1000), (local(2024, 2, 1), 1400)])
        self.sub_meter(account, main, 150, local(2024, 1, 1), local(2024, 2, 1))
        self.sub_meter(account, main, 170, local(2024, 1, 1), local(2024, 2, 1))
        grandchild_parent = main.sub_meters.first()
        grandchild = MeterFactory(
            account=account, meter_type="ELECTRICITY", parent_meter=grandchild_parent
        )
        add_readings(grandchild, [(local(2024, 1, 1), 0), (local(2024, 2, 1), 99)])
        body = data(balance(api, main, start="2024-01-01", end="2024-01-31"))
        assert body == {
            "start": "2024-01-01",
            "end": "2024-01-31",
            "unit": "kWh",
            "main_consumption": 400,
            "sub_meters_consumption": 320,
            "difference": 80,
            "difference_ratio": 0.2,
            "sub_meters_count": 2,
            "is_estimated": False,
        }

    def test_intervals_over_the_range_edges_are_spread(self, api, account, main):
        # Readings every two days from Dec 31 12:00: each edge splits an interval in two.
        add_readings(main, [(local(2023, 12, 31, 12), 0), (local(2024, 1, 2, 12), 48)])
        self.sub_meter(account, main, 24, local(2023, 12, 31, 12), local(2024, 1, 2, 12))
        body = data(balance(api, main, start="2024-01-01", end="2024-01-01"))
        assert (body["main_consumption"], body["sub_meters_consumption"]) == (24, 12)
        assert (body["difference"], body["difference_ratio"], body["is_estimated"]) == (
            12,
            0.5,
            True,
        )

    def test_no_consumption_gives_no_ratio(self, api, main):
        body = data(balance(api, main, start="2024-01-01", end="2024-01-31"))
        assert body["main_consumption"] == 0 and body["difference_ratio"] is None
        assert body["sub_meters_count"] == 0

    def test_sub_meters_in_another_unit_are_a_400(self, api, account, main):
        MeterFactory(account=account, meter_type="ELECTRICITY", parent_meter=main, unit="Wh")
        response = balance(api, main, start="2024-01-01", end="2024-01-31")
        assert response.status_code == 400
        assert error(response)["code"] == "validation_error"

    @pytest.mark.parametrize(
        "params",
        [
            {},
            {"start": "2024-01-01"},
            {"start": "2024-01-31", "end": "2024-01-01"},
            {"start": "2024-13-01", "end": "2024-12-31"},
            {"start": "0001-01-01", "end": "2024-12-31"},
            {"start": "2024-01-01", "end": "9999-12-31"},
        ],
    )
    def test_invalid_ranges_are_a_400(self, api, main, params):
        response = balance(api, main, **params)
        assert response.status_code == 400
        assert error(response)["code"] == "validation_error"

    def test_the_widest_range_answers(self, api, main):
        first, last = metering_domain.FIRST_DATE, metering_domain.LAST_DATE
        body = data(balance(api, main, start=str(first), end=str(last)))
        assert body["main_consumption"] == 0

    def test_another_accounts_meter_is_a_404(self, other_api, main):
        assert balance(other_api, main, start="2024-01-01", end="2024-01-31").status_code == 404

    def test_same_number_of_queries_for_1_and_many_sub_meters(self, api, account, main):
        add_readings(main, [(local(2024, 1, 1), 0), (local(2024, 1, 20), 100)])

        def queries() -> tuple[int, float]:
            with CaptureQueriesContext(connection) as captured:
                body = data(balance(api, main, start="2024-01-01", end="2024-01-31"))
            return len(captured), body["sub_meters_consumption"]

        self.sub_meter(account, main, 1, local(2024, 1, 1), local(2024, 1, 20))
        queries()  # warm caches
        few, one = queries()
        for _ in range(9):
            self.sub_meter(account, main, 1, local(2024, 1, 1), local(2024, 1, 20))
        many, ten = queries()
        assert (one, ten) == (1, 10)
        assert many == few
