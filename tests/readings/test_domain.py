"""The chain and flag rules of CONTRACT §4.1 and §4.2, worked by hand, without a database."""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal as D

import pytest

from readings.domain import (
    DEVIATION,
    DROP,
    NEGATIVE,
    SPIKE,
    Point,
    Thresholds,
    consumption_between,
    derive_series,
)

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


DEFAULTS = Thresholds()


def series(*values, days=None, factor=D(1), max_value=None, thresholds=DEFAULTS):
    days = days or list(range(len(values)))
    points = [Point(day(d), D(str(v))) for d, v in zip(days, values, strict=True)]
    return derive_series(points, factor=factor, max_value=max_value, thresholds=thresholds)


class TestConsumption:
    def test_increase(self):
        assert consumption_between(D("100.5"), D("103"), factor=D(1), max_value=None) == (
            D("2.5"),
            False,
        )

    def test_multiplier_times_transformer_ratio(self):
        assert consumption_between(D(10), D(12), factor=D(2) * D(40), max_value=None) == (
            D(160),
            False,
        )

    def test_rollover_at_max_value(self):
        # 99990 -> 15 on a 100000 counter: 10 to the top, 15 after.
        assert consumption_between(D(99990), D(15), factor=D(1), max_value=D(100000)) == (
            D(25),
            True,
        )

    def test_negative_without_max_value(self):
        assert consumption_between(D(50), D(45), factor=D(2), max_value=None) == (D(-10), False)

    def test_exact_decimal_arithmetic(self):
        consumption, _ = consumption_between(
            D("0.000001"),
            D("1234567890123.999999"),
            factor=D("1.000001") * D("3.000007"),
            max_value=None,
        )
        with decimal.localcontext(prec=100):
            exact = D("1234567890123.999998") * D("3.000010000007")
        assert consumption == exact == D("3703716016059.543209230847999986")


class TestChain:
    def test_first_reading_has_no_previous_value(self):
        first, second = series(100, 110)
        assert (first.previous_value, first.consumption, first.flags) == (None, None, frozenset())
        assert (second.previous_value, second.consumption) == (D(100), D(10))

    def test_negative_is_flagged_and_gets_no_rate_flag(self):
        results = series(0, 10, 20, 30, 25)
        assert results[-1].consumption == D(-5)
        assert results[-1].flags == {NEGATIVE}


class TestFlags:
    def test_no_baseline_with_fewer_than_three_intervals(self):
        # Intervals of 10, 10 then 100: only two earlier intervals, no flag.
        assert series(0, 10, 20, 120)[-1].flags == frozenset()

    def test_spike_and_deviation(self):
        # Baseline 10/day; a 30/day interval is a SPIKE (≥ 3×) and a DEVIATION (> 50 % off).
        assert series(0, 10, 20, 30, 60)[-1].flags == {SPIKE, DEVIATION}

    def test_just_under_three_times_is_only_a_deviation(self):
        assert series(0, 10, 20, 30, "59.999")[-1].flags == {DEVIATION}

    def test_deviation_bound_is_strict(self):
        assert series(0, 10, 20, 30, 45)[-1].flags == frozenset()  # exactly +50 %
        assert series(0, 10, 20, 30, "45.001")[-1].flags == {DEVIATION}

    def test_drop_below_a_quarter(self):
        assert series(0, 10, 20, 30, "32.5")[-1].flags == {DEVIATION}  # 2.5 = a quarter
        assert series(0, 10, 20, 30, "32.499")[-1].flags == {DEVIATION, DROP}

    def test_rates_are_per_day(self):
        # Baseline 10/day; 20 over 2 days is 10/day: no flag.
        assert series(0, 10, 20, 30, 50, days=[0, 1, 2, 3, 5])[-1].flags == frozenset()

    def test_baseline_is_time_weighted(self):
        # Intervals: 10 over 1 day, 10 over 1 day, 100 over 8 days -> 120/10 = 12/day.
        # Then 20 over 1 day: 20/12 > 1.5 -> DEVIATION, < 3 -> no SPIKE.
        results = series(0, 10, 20, 120, 140, days=[0, 1, 2, 10, 11])
        assert results[-1].flags == {DEVIATION}

    def test_baseline_of_zero(self):
        assert series(0, 0, 0, 0, 1)[-1].flags == {DEVIATION, SPIKE}
        assert series(0, 0, 0, 0, 0)[-1].flags == frozenset()

    def test_negative_intervals_are_not_in_the_baseline(self):
        # 10, 10, -5 (NEGATIVE), 10: only 2 clean intervals before the last -> no baseline.
        results = series(0, 10, 20, 15, 25, 35)
        assert results[3].flags == {NEGATIVE}
        assert results[4].flags == frozenset()
        # The next one has three clean intervals (10, 10, 10): 10/day, no flag.
        assert results[5].flags == frozenset()

    def test_only_intervals_ending_within_the_baseline_span_count(self):
        th = Thresholds(baseline_days=5)
        # Old intervals at 100/day end at days 1..3; the recent ones at 10/day end at 7..9.
        values = [0, 100, 200, 300, 310, 320, 330, 340]
        days = [0, 1, 2, 3, 6, 7, 8, 9]
        results = series(*values, days=days, thresholds=th)
        # Reading at day 9: intervals ending in [4, 9): days 6 (10 over 3 days), 7, 8 -> baseline
        # 30/5 = 6/day; 10/day is +67 % -> DEVIATION.
        assert results[-1].flags == {DEVIATION}

    def test_lower_bound_of_the_span_is_included(self):
        th = Thresholds(baseline_days=3)
        results = series(0, 10, 20, 30, 40, days=[0, 1, 2, 3, 4], thresholds=th)
        # At day 4 the intervals ending at days 1, 2, 3 count (day 1 = 4 − 3).
        assert results[-1].flags == frozenset()

    def test_thresholds_are_settings(self):
        strict = Thresholds(deviation=D("0.1"), spike=D(2), drop=D("0.9"), min_intervals=2)
        assert series(0, 10, 20, 32, thresholds=strict)[-1].flags == {DEVIATION}
        assert series(0, 10, 20, 25, thresholds=strict)[-1].flags == {DEVIATION, DROP}

    @pytest.mark.parametrize("factor", [D(1), D("2.5")])
    def test_rollover_interval_is_a_normal_interval(self, factor):
        results = series(99970, 99980, 99990, 0, 10, factor=factor, max_value=D(100000))
        assert results[3].is_rollover and results[3].consumption == 10 * factor
        assert [r.flags for r in results] == [frozenset()] * 5


class TestSince:
    @pytest.mark.parametrize("since_day", [0, 3, 7, 12])
    def test_points_from_since_are_derived_as_in_the_whole_series(self, since_day):
        values = [0, 10, 20, 30, 40, 100, 110, 115, 116, 200, 210, 5, 15]
        points = [Point(day(n), D(v)) for n, v in enumerate(values)]
        whole = derive_series(points, factor=D(1), max_value=D(1000), thresholds=DEFAULTS)
        end = derive_series(
            points, factor=D(1), max_value=D(1000), thresholds=DEFAULTS, since=day(since_day)
        )
        assert end[since_day:] == whole[since_day:]
        assert end[:since_day] == [None] * since_day
        assert any(result.flags for result in whole[since_day:] if result)
