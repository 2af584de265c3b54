"""Consumption over time (CONTRACT §4.5): buckets, exact spreading, the SQL and Python paths.

The first part tests the pure rules of ``readings.domain`` without a database; the second runs
``readings.selectors`` on PostgreSQL (the one-query SQL path), and checks that the Python path
of the SQLite demo gives the same figures on the same rows.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.models import Account
from readings import domain, selectors, services
from readings.models import PeriodReading, Reading
from tests.factories import AccountFactory, MeterFactory, RegisterFactory

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
HAVANA = zoneinfo.ZoneInfo("America/Havana")  # the clock goes back from 01:00 to 00:00
ACTOR = services.Actor("test:consumption", "API")
UNIT = Decimal(1).scaleb(-domain.SPREAD_DECIMALS)


def local(year: int, month: int, day: int, hour: int = 0, zone=PARIS) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=zone).astimezone(dt.UTC)


def interval(start, end, consumption, estimated=False) -> domain.Interval:
    return domain.Interval(start, end, Decimal(consumption), estimated)


def spread_days(intervals, first: dt.date, last: dt.date, zone=PARIS) -> list[domain.Spread]:
    ranges = domain.buckets(first, last, "day", zone)
    return domain.spread(intervals, domain.bucket_bounds(ranges))


# --- buckets ---------------------------------------------------------------------------------


class TestBuckets:
    def test_days_are_local_midnight_to_local_midnight_with_23_and_25_hour_days(self):
        spring = domain.buckets(dt.date(2024, 3, 30), dt.date(2024, 4, 1), "day", PARIS)
        autumn = domain.buckets(dt.date(2024, 10, 26), dt.date(2024, 10, 28), "day", PARIS)
        hours = [(b.end - b.start) / dt.timedelta(hours=1) for b in spring + autumn]
        assert hours == [24, 23, 24, 24, 25, 24]
        assert spring[1].start == local(2024, 3, 31) == dt.datetime(2024, 3, 30, 23, tzinfo=dt.UTC)
        assert spring[1].end == dt.datetime(2024, 3, 31, 22, tzinfo=dt.UTC)

    def test_weeks_start_on_monday_and_are_clipped_to_the_range(self):
        ranges = domain.buckets(dt.date(2024, 1, 3), dt.date(2024, 1, 20), "week", PARIS)
        assert [(b.period_start, b.period_end) for b in ranges] == [
            (dt.date(2024, 1, 3), dt.date(2024, 1, 7)),
            (dt.date(2024, 1, 8), dt.date(2024, 1, 14)),
            (dt.date(2024, 1, 15), dt.date(2024, 1, 20)),
        ]
        assert all(b.period_start.weekday() == 0 for b in ranges[1:])

    def test_months_and_years_are_calendar_ones(self):
        months = domain.buckets(dt.date(2023, 12, 15), dt.date(2024, 3, 10), "month", PARIS)
        assert [(b.period_start, b.period_end) for b in months] == [
            (dt.date(2023, 12, 15), dt.date(2023, 12, 31)),
            (dt.date(2024, 1, 1), dt.date(2024, 1, 31)),
            (dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
            (dt.date(2024, 3, 1), dt.date(2024, 3, 10)),
        ]
        years = domain.buckets(dt.date(2022, 6, 1), dt.date(2024, 1, 1), "year", PARIS)
        assert [(b.period_start, b.period_end) for b in years] == [
            (dt.date(2022, 6, 1), dt.date(2022, 12, 31)),
            (dt.date(2023, 1, 1), dt.date(2023, 12, 31)),
            (dt.date(2024, 1, 1), dt.date(2024, 1, 1)),
        ]

    def test_buckets_are_contiguous(self):
        ranges = domain.buckets(dt.date(2024, 1, 1), dt.date(2024, 12, 31), "week", PARIS)
        assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
        assert all(
            a.period_end + dt.timedelta(days=1) == b.period_start
            for a, b in itertools.pairwise(ranges)
        )

    def test_the_extreme_dates_have_buckets(self):
        for granularity in domain.GRANULARITIES:
            last = domain.buckets(dt.date(9999, 12, 1), domain.LAST_DAY, granularity, PARIS)
            assert last[-1].period_end == domain.LAST_DAY
            first = domain.buckets(domain.FIRST_DAY, dt.date(1, 1, 9), granularity, PARIS)
            assert first[0].period_start == domain.FIRST_DAY

    def test_a_midnight_repeated_by_the_clock_is_its_first_occurrence(self):
        # Havana, 2024-11-03: at 01:00 (UTC−4) the clock goes back to 00:00 (UTC−5).
        assert domain.local_midnight(dt.date(2024, 11, 3), HAVANA) == dt.datetime(
            2024, 11, 3, 4, tzinfo=dt.UTC
        )
        # 2024-03-10: at 00:00 (UTC−5) the clock jumps to 01:00 (UTC−4): the day starts then.
        assert domain.local_midnight(dt.date(2024, 3, 10), HAVANA) == dt.datetime(
            2024, 3, 10, 5, tzinfo=dt.UTC
        )

    @given(
        start=st.dates(domain.FIRST_DAY, domain.LAST_DAY),
        days=st.integers(0, 3000),
        granularity=st.sampled_from(domain.GRANULARITIES),
    )
    def test_bucket_count_is_the_number_of_buckets(self, start, days, granularity):
        end = start + dt.timedelta(days=min(days, (domain.LAST_DAY - start).days))
        ranges = domain.buckets(start, end, granularity, dt.UTC)
        assert domain.bucket_count(start, end, granularity) == len(ranges)
        assert ranges[0].period_start == start and ranges[-1].period_end == end


# --- spreading -------------------------------------------------------------------------------


class TestSpread:
    def test_an_interval_inside_a_bucket_gives_it_its_whole_consumption(self):
        parts = spread_days(
            [interval(local(2024, 1, 2, 6), local(2024, 1, 2, 18), "7.5")],
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 3),
        )
        assert parts == [
            domain.Spread(Decimal(0), False),
            domain.Spread(Decimal("7.5"), False),
            domain.Spread(Decimal(0), False),
        ]

    def test_readings_exactly_at_bucket_edges_are_not_spread(self):
        parts = spread_days(
            [
                interval(local(2024, 1, 1), local(2024, 1, 2), 10),
                interval(local(2024, 1, 2), local(2024, 1, 3), 20),
            ],
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 2),
        )
        assert parts == [domain.Spread(Decimal(10), False), domain.Spread(Decimal(20), False)]

    def test_an_interval_spanning_buckets_is_spread_over_time_and_estimated(self):
        # From Jan 1 12:00 to Jan 4 00:00: 12 h, 24 h, 24 h.
        parts = spread_days(
            [interval(local(2024, 1, 1, 12), local(2024, 1, 4), 60)],
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 3),
        )
        assert [p.consumption for p in parts] == [12, 24, 24]
        assert all(p.is_estimated for p in parts)

    @pytest.mark.parametrize(
        ("first", "last", "hours"),
        [
            (dt.date(2024, 3, 30), dt.date(2024, 3, 31), [24, 23]),  # spring: a 23-hour day
            (dt.date(2024, 10, 26), dt.date(2024, 10, 27), [24, 25]),  # autumn: a 25-hour day
        ],
    )
    def test_dst_days_get_their_share_of_time(self, first, last, hours):
        start = domain.local_midnight(first, PARIS)
        end = domain.local_midnight(last + dt.timedelta(days=1), PARIS)
        parts = spread_days([interval(start, end, sum(hours))], first, last)
        assert [p.consumption for p in parts] == hours

    def test_the_parts_telescope_to_exactly_the_consumption(self):
        parts = spread_days(
            [interval(local(2024, 1, 1), local(2024, 1, 4), 1)],
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 3),
        )
        assert [p.consumption for p in parts] == [
            Decimal("0.333333333333333333"),
            Decimal("0.333333333333333334"),
            Decimal("0.333333333333333333"),
        ]
        assert sum(p.consumption for p in parts) == 1

    def test_an_interval_spanning_many_buckets(self):
        # Two years between two readings, spread over months.
        ranges = domain.buckets(dt.date(2022, 1, 1), dt.date(2023, 12, 31), "month", PARIS)
        whole = interval(ranges[0].start, ranges[-1].end, "730.000001")
        parts = domain.spread([whole], domain.bucket_bounds(ranges))
        assert len(parts) == 24 and sum(p.consumption for p in parts) == Decimal("730.000001")
        january, february = parts[0].consumption, parts[1].consumption
        assert abs(january - Decimal(31)) < Decimal("0.001")
        assert abs(february - Decimal(28)) < Decimal("0.001")

    def test_negative_and_huge_consumptions_spread_exactly(self):
        huge = "12345678901234567890.123456789012345678"
        parts = spread_days(
            [
                interval(local(2024, 1, 1, 7), local(2024, 1, 3, 5), f"-{huge}"),
                interval(local(2024, 1, 3, 5), local(2024, 1, 5, 1), huge),
            ],
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 5),
        )
        assert domain.exact_sum(p.consumption for p in parts) == 0
        assert parts[0].consumption < 0 < parts[3].consumption

    def test_an_interval_running_past_the_last_bucket_gives_it_only_its_share(self):
        parts = spread_days(
            [interval(local(2024, 1, 2, 12), local(2024, 1, 4, 12), 48)],
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 2),
        )
        assert [p.consumption for p in parts] == [0, 12]
        assert [p.is_estimated for p in parts] == [False, True]
        single = spread_days(
            [interval(local(2024, 1, 2, 12), local(2024, 1, 4, 12), 48)],
            dt.date(2024, 1, 2),
            dt.date(2024, 1, 2),
        )
        assert single == [domain.Spread(Decimal(12), True)]

    def test_the_parts_outside_the_buckets_are_left_out(self):
        # 10 days of readings, 2 days asked: only their share.
        parts = spread_days(
            [interval(local(2024, 1, 1), local(2024, 1, 11), 100)],
            dt.date(2024, 1, 5),
            dt.date(2024, 1, 6),
        )
        assert [p.consumption for p in parts] == [10, 10]

    def test_an_estimated_interval_makes_its_bucket_estimated(self):
        parts = spread_days(
            [interval(local(2024, 1, 1, 1), local(2024, 1, 1, 2), 1, True)],
            dt.date(2024, 1, 1),
            dt.date(2024, 1, 2),
        )
        assert [p.is_estimated for p in parts] == [True, False]

    def test_readings_per_bucket_counts_a_reading_at_an_edge_in_the_later_bucket(self):
        ranges = domain.buckets(dt.date(2024, 1, 1), dt.date(2024, 1, 2), "day", PARIS)
        bounds = domain.bucket_bounds(ranges)
        dates = [
            local(2023, 12, 31, 23),
            local(2024, 1, 1),
            local(2024, 1, 1, 12),
            local(2024, 1, 2),
            local(2024, 1, 3),
        ]
        assert domain.readings_per_bucket(dates, bounds) == [2, 1]

    @settings(max_examples=300)
    @given(
        cuts=st.lists(st.integers(1, 10_000_000), min_size=2, max_size=12, unique=True),
        edges=st.lists(st.integers(0, 10_000_000), max_size=8, unique=True),
        consumptions=st.lists(
            st.decimals(-(10**6), 10**9, places=6, allow_nan=False, allow_infinity=False),
            min_size=11,
            max_size=11,
        ),
    )
    def test_buckets_covering_a_chain_of_intervals_add_up_to_its_consumption(
        self, cuts, edges, consumptions
    ):
        """Property: whatever the bucket bounds, parts add up exactly, and each part is the
        exact proportional share rounded to 10⁻¹⁸ (within one unit)."""
        origin = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        seconds = sorted(cuts)
        moments = [origin + dt.timedelta(seconds=s) for s in seconds]
        chain = [
            interval(a, b, c) for a, b, c in zip(moments, moments[1:], consumptions, strict=False)
        ]
        inner = sorted({s for s in edges if seconds[0] < s < seconds[-1]})
        bounds = [origin + dt.timedelta(seconds=s) for s in [seconds[0], *inner, seconds[-1]]]
        parts = domain.spread(chain, bounds)
        assert domain.exact_sum(p.consumption for p in parts) == domain.exact_sum(
            i.consumption for i in chain
        )
        for index, part in enumerate(parts):
            low, high = bounds[index], bounds[index + 1]
            exact = sum(
                (
                    Fraction(i.consumption)
                    * Fraction(
                        max(min(high, i.end) - max(low, i.start), dt.timedelta(0)).total_seconds()
                    )
                    / Fraction((i.end - i.start).total_seconds())
                    for i in chain
                ),
                Fraction(0),
            )
            assert abs(Fraction(part.consumption) - exact) <= len(chain) * Fraction(UNIT)


class TestBalanceDifference:
    def test_difference_and_ratio(self):
        assert domain.balance_difference(Decimal(100), Decimal(88)) == (
            Decimal(12),
            Decimal("0.120000"),
        )
        assert domain.balance_difference(Decimal(3), Decimal(2))[1] == Decimal("0.333333")
        assert domain.balance_difference(Decimal(0), Decimal(5)) == (Decimal(-5), None)


# --- the selectors, on PostgreSQL ------------------------------------------------------------


def add_readings(meter, readings, register=None, **fields) -> list[Reading]:
    items = [
        services.ReadingInput(
            reading_date=when,
            value=Decimal(str(value)),
            register_code=register.code if register else None,
            **fields,
        )
        for when, value in readings
    ]
    result = services.create_readings(meter=meter, items=items, actor=ACTOR)
    assert not result.errors, result.errors
    return result.accepted


def add_period(meter, start, end, consumption, **fields) -> PeriodReading:
    return PeriodReading.objects.create(
        account=meter.account,
        meter=meter,
        start_date=start,
        end_date=end,
        consumption=Decimal(str(consumption)),
        **fields,
    )


def both_paths(meter, register, ranges) -> list[selectors.BucketTotal]:
    """The figures of the SQL paths, after checking that both SQL strategies and the Python
    path of the SQLite demo give the same."""
    sources = [selectors.Source(meter.pk, register.pk, register.is_default)]
    account = Account.objects.get(pk=meter.account_id)
    results = {
        strategy: selectors.spread_consumption(
            account=account, sources=sources, ranges=ranges, strategy=strategy
        )
        for strategy in selectors.SPREAD_SQL
    }
    in_python = selectors._spread_in_python(account, sources, ranges)
    assert results["probe"] == in_python
    assert results["scan"] == in_python
    assert (
        selectors.meter_consumption(meter=meter, register=register, ranges=ranges)
        == (in_python[meter.pk])
    )
    return in_python[meter.pk]


def months(first: dt.date, last: dt.date, zone=PARIS) -> list[domain.Bucket]:
    return domain.buckets(first, last, "month", zone)


@pytest.mark.django_db
class TestSelectors:
    def test_readings_at_midnight_sum_exactly_to_the_stored_consumption(self, meter, register):
        readings = add_readings(
            meter,
            [
                (local(2024, 1, 1), "0"),
                (local(2024, 1, 20, 7), "10.123"),
                (local(2024, 2, 10, 13), "20.5"),
                (local(2024, 4, 1), "31.001"),
            ],
        )
        totals = both_paths(meter, register, months(dt.date(2024, 1, 1), dt.date(2024, 3, 31)))
        stored = sum(r.consumption for r in readings[1:])
        assert sum(t.consumption for t in totals) == stored == Decimal("31.001")
        assert [t.readings_count for t in totals] == [2, 1, 0]
        # January holds the first interval whole and part of the second: estimated.
        assert [t.is_estimated for t in totals] == [True, True, True]

    def test_empty_buckets(self, meter, register):
        add_readings(meter, [(local(2024, 1, 10), 1), (local(2024, 1, 12), 3)])
        totals = both_paths(meter, register, months(dt.date(2023, 11, 1), dt.date(2024, 3, 31)))
        assert totals[0] == totals[1] == totals[3] == totals[4] == selectors.EMPTY_BUCKET
        assert totals[2] == selectors.BucketTotal(Decimal(2), False, 2)

    def test_no_readings_at_all(self, meter, register):
        totals = both_paths(meter, register, months(dt.date(2024, 1, 1), dt.date(2024, 2, 29)))
        assert totals == [selectors.EMPTY_BUCKET] * 2

    def test_dst_days_in_paris(self, meter, register):
        add_readings(
            meter,
            [
                (local(2024, 3, 30), 0),
                (local(2024, 4, 1), 47),
                (local(2024, 10, 26), 100),
                (local(2024, 10, 28), 149),
            ],
        )
        spring = both_paths(
            meter,
            register,
            domain.buckets(dt.date(2024, 3, 30), dt.date(2024, 3, 31), "day", PARIS),
        )
        autumn = both_paths(
            meter,
            register,
            domain.buckets(dt.date(2024, 10, 26), dt.date(2024, 10, 27), "day", PARIS),
        )
        assert [t.consumption for t in spring] == [24, 23]
        assert [t.consumption for t in autumn] == [24, 25]

    def test_a_reading_at_a_bucket_edge_belongs_to_the_later_bucket(self, meter, register):
        add_readings(
            meter,
            [(local(2024, 1, 31, 12), 0), (local(2024, 2, 1), 12), (local(2024, 2, 1, 12), 24)],
        )
        totals = both_paths(meter, register, months(dt.date(2024, 1, 1), dt.date(2024, 2, 29)))
        assert totals == [
            selectors.BucketTotal(Decimal(12), False, 1),
            selectors.BucketTotal(Decimal(12), False, 2),
        ]

    def test_intervals_reaching_beyond_the_range_give_only_their_share(self, meter, register):
        add_readings(meter, [(local(2023, 12, 22), 0), (local(2024, 1, 11), 200)])
        ranges = domain.buckets(dt.date(2024, 1, 1), dt.date(2024, 1, 2), "day", PARIS)
        totals = both_paths(meter, register, ranges)
        assert [t.consumption for t in totals] == [10, 10]
        assert all(t.is_estimated and t.readings_count == 0 for t in totals)

    def test_a_range_ending_inside_an_interval(self, meter, register):
        add_readings(meter, [(local(2024, 1, 1, 7), 0), (local(2024, 1, 31, 7), 300)])
        add_readings(meter, [(local(2024, 2, 5, 7), 350)])
        january = both_paths(meter, register, months(dt.date(2024, 1, 1), dt.date(2024, 1, 31)))
        # 300 whole, 17 h of the next 120 h (50).
        assert january[0].consumption == 300 + Decimal("7.083333333333333333")
        assert january[0].is_estimated and january[0].readings_count == 2

    def test_rollover_readings(self, account):
        meter = MeterFactory(account=account, max_value=Decimal(1000), multiplier=Decimal(2))
        register = meter.registers.get(is_default=True)
        add_readings(
            meter, [(local(2024, 1, 1), 990), (local(2024, 1, 2), 10), (local(2024, 1, 3), 15)]
        )
        ranges = domain.buckets(dt.date(2024, 1, 1), dt.date(2024, 1, 2), "day", PARIS)
        assert [t.consumption for t in both_paths(meter, register, ranges)] == [40, 10]

    def test_an_estimated_reading_makes_its_intervals_estimated(self, meter, register):
        add_readings(meter, [(local(2024, 1, 1), 0), (local(2024, 1, 3), 4)])
        add_readings(meter, [(local(2024, 1, 2), 1)], reading_type="ESTIMATED")
        ranges = domain.buckets(dt.date(2024, 1, 1), dt.date(2024, 1, 3), "day", PARIS)
        totals = both_paths(meter, register, ranges)
        assert [(t.consumption, t.is_estimated) for t in totals] == [
            (1, True),
            (3, True),
            (0, False),
        ]

    def test_period_readings_are_spread(self, meter, register):
        add_period(meter, dt.date(2024, 1, 25), dt.date(2024, 2, 5), 120)
        add_period(meter, dt.date(2024, 3, 1), dt.date(2024, 3, 31), "31.5", is_estimated=True)
        totals = both_paths(meter, register, months(dt.date(2024, 1, 1), dt.date(2024, 3, 31)))
        # 7 of the first period's 12 days in January (120), 5 in February.
        assert [(t.consumption, t.is_estimated, t.readings_count) for t in totals] == [
            (70, True, 0),
            (50, True, 0),
            (Decimal("31.5"), True, 0),
        ]

    def test_a_meter_with_index_readings_is_not_counted_from_its_bills_too(self, meter, register):
        # Its bills (a supplier's period readings) measure the same consumption again.
        add_period(meter, dt.date(2024, 1, 1), dt.date(2024, 1, 31), 500)
        add_readings(meter, [(local(2024, 1, 1), 0), (local(2024, 2, 1), 31)])
        totals = both_paths(meter, register, months(dt.date(2024, 1, 1), dt.date(2024, 1, 31)))
        assert [(t.consumption, t.readings_count) for t in totals] == [(31, 1)]

    def test_period_readings_go_with_the_default_register_only(self, meter):
        night = RegisterFactory(meter=meter, code="1.8.2")
        add_period(meter, dt.date(2024, 1, 1), dt.date(2024, 1, 31), 31)
        add_readings(meter, [(local(2024, 1, 1), 0), (local(2024, 2, 1), 5)], register=night)
        totals = both_paths(meter, night, months(dt.date(2024, 1, 1), dt.date(2024, 1, 31)))
        assert [t.consumption for t in totals] == [5]

    def test_local_midnights_agree_on_a_day_the_clock_goes_back_over_midnight(self):
        account = AccountFactory(timezone="America/Havana")
        meter = MeterFactory(account=account)
        register = meter.registers.get(is_default=True)
        add_period(meter, dt.date(2024, 11, 2), dt.date(2024, 11, 2), 24)
        add_period(meter, dt.date(2024, 3, 9), dt.date(2024, 3, 10), 47)  # 00:00 is skipped
        november = domain.buckets(dt.date(2024, 11, 2), dt.date(2024, 11, 3), "day", HAVANA)
        march = domain.buckets(dt.date(2024, 3, 9), dt.date(2024, 3, 10), "day", HAVANA)
        assert both_paths(meter, register, november) == [
            selectors.BucketTotal(Decimal(24), False, 0),
            selectors.EMPTY_BUCKET,
        ]
        assert [t.consumption for t in both_paths(meter, register, march)] == [24, 23]

    def test_several_meters_added_up_in_sql_match_the_python_path(self, account):
        meters = [MeterFactory(account=account) for _ in range(3)]
        for number, meter in enumerate(meters):
            add_readings(
                meter,
                [
                    (local(2024, 1, 1, number), 0),
                    (local(2024, 1, 20, 5), 10 + number),
                    (local(2024, 3, 3, 3 * number), 40),
                ],
            )
        billed = MeterFactory(account=account)  # measured by its bills only
        add_period(billed, dt.date(2024, 2, 10), dt.date(2024, 2, 20), "7.5")
        add_period(meters[1], dt.date(2024, 2, 10), dt.date(2024, 2, 20), "100")  # not counted
        meters.append(billed)
        sources = [
            selectors.Source(m.pk, m.registers.get(is_default=True).pk, True) for m in meters
        ]
        ranges = domain.buckets(dt.date(2024, 1, 1), dt.date(2024, 3, 31), "week", PARIS)
        in_python = selectors._add_up(
            list(selectors._spread_in_python(account, sources, ranges).values()), len(ranges)
        )
        for strategy in selectors.SPREAD_SQL:
            assert (
                selectors.spread_total(
                    account=account, sources=sources, ranges=ranges, strategy=strategy
                )
                == in_python
            )
        assert sum(t.consumption for t in in_python) == 120 + Decimal("7.5")

    def test_one_query_whatever_the_number_of_readings(
        self, meter, register, django_assert_num_queries
    ):
        start = local(2024, 1, 1)
        add_readings(meter, [(start + dt.timedelta(hours=7 * n), n) for n in range(500)])
        ranges = months(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
        with django_assert_num_queries(1):
            totals = selectors.meter_consumption(meter=meter, register=register, ranges=ranges)
        assert sum(t.consumption for t in totals) == 499


# The property of CONTRACT §4.5: a range whose edges are readings gets exactly their
# consumption, with both SQL strategies and the Python path agreeing on every bucket.
readings_moments = st.lists(
    st.tuples(st.integers(0, 400), st.sampled_from([0, 0, 3, 11, 23]), st.booleans()),
    min_size=0,
    max_size=25,
    unique_by=lambda moment: moment[0] * 24 + moment[1],
)
# Period readings inside the range: (first day, days) as fractions of its length.
period_slots = st.lists(st.tuples(st.integers(0, 9), st.integers(1, 3), st.booleans()), max_size=3)


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    moments=readings_moments,
    edges=st.tuples(st.integers(0, 400), st.integers(1, 400)),
    values=st.lists(st.decimals(0, 99_999, places=3), min_size=30, max_size=30),
    periods=period_slots,
    granularity=st.sampled_from(domain.GRANULARITIES),
)
def test_buckets_between_two_readings_add_up_to_their_stored_consumption(
    account, moments, edges, values, periods, granularity
):
    meter = MeterFactory(account=account, precision_digits=3, multiplier=Decimal("1.5"))
    register = meter.registers.get(is_default=True)
    offset, length = edges
    first_day = dt.date(2023, 3, 1) + dt.timedelta(days=offset)
    last_day = first_day + dt.timedelta(days=length - 1)
    start = domain.local_midnight(first_day, PARIS)
    end = domain.local_midnight(last_day + dt.timedelta(days=1), PARIS)
    estimated = {
        local(2023, 3, 1) + dt.timedelta(days=day, hours=hour): flag for day, hour, flag in moments
    }
    dates = sorted({start, end, *estimated})
    items = [
        services.ReadingInput(
            reading_date=when,
            value=values[n % len(values)],
            is_estimated=estimated.get(when, False),
        )
        for n, when in enumerate(dates)
    ]
    result = services.create_readings(meter=meter, items=items, actor=ACTOR)
    assert not result.errors
    readings = result.accepted
    # Non-overlapping period readings within the range, by tenths of its length, on a meter
    # measured by its bills only (a meter with index readings is not counted from its bills).
    billed = MeterFactory(account=account)
    taken: set[int] = set()
    added = Decimal(0)
    for first_tenth, tenths, flag in periods:
        slots = set(range(first_tenth, min(first_tenth + tenths, 10)))
        if slots & taken or length < 10:
            continue
        taken |= slots
        period_start = first_day + dt.timedelta(days=length * min(slots) // 10)
        period_end = first_day + dt.timedelta(days=length * (max(slots) + 1) // 10 - 1)
        consumption = values[len(taken)] + Decimal("0.000001")
        add_period(billed, period_start, period_end, consumption, is_estimated=flag)
        added += consumption
    stored = domain.exact_sum(
        r.consumption for r in readings if start < r.reading_date <= end and r.consumption
    )
    ranges = domain.buckets(first_day, last_day, granularity, PARIS)
    totals = both_paths(meter, register, ranges)
    assert domain.exact_sum(t.consumption for t in totals) == stored
    bills = both_paths(billed, billed.registers.get(is_default=True), ranges)
    assert domain.exact_sum(t.consumption for t in bills) == added
    assert sum(t.readings_count for t in totals) == sum(
        start <= r.reading_date < end for r in readings
    )


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    moments=readings_moments,
    edges=st.tuples(st.integers(-20, 420), st.integers(1, 120)),
    values=st.lists(st.decimals(0, 99_999, places=3), min_size=30, max_size=30),
    periods=st.lists(
        st.tuples(st.integers(-30, 430), st.integers(1, 60), st.booleans()), max_size=4
    ),
    granularity=st.sampled_from(domain.GRANULARITIES),
)
def test_any_range_gives_the_same_figures_on_every_path(
    account, moments, edges, values, periods, granularity
):
    """Ranges whose edges fall anywhere, readings and period readings anywhere."""
    meter = MeterFactory(account=account, precision_digits=3)
    register = meter.registers.get(is_default=True)
    origin = dt.date(2023, 3, 1)
    items = [
        services.ReadingInput(
            reading_date=local(2023, 3, 1) + dt.timedelta(days=day, hours=hour),
            value=values[n % len(values)],
            is_estimated=flag,
        )
        for n, (day, hour, flag) in enumerate(sorted(moments))
    ]
    assert not services.create_readings(meter=meter, items=items, actor=ACTOR).errors
    taken: list[tuple[dt.date, dt.date]] = []
    for offset, days, flag in periods:
        start = origin + dt.timedelta(days=offset)
        end = start + dt.timedelta(days=days - 1)
        if any(start <= other_end and other_start <= end for other_start, other_end in taken):
            continue
        taken.append((start, end))
        add_period(meter, start, end, values[len(taken)], is_estimated=flag)
    first_day = origin + dt.timedelta(days=edges[0])
    ranges = domain.buckets(first_day, first_day + dt.timedelta(days=edges[1]), granularity, PARIS)
    both_paths(meter, register, ranges)
