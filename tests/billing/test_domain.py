"""The billing rules of CONTRACT §5, worked by hand, without a database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from fractions import Fraction as F

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain import (
    EQUAL,
    SHARES,
    SURFACE,
    AllocationError,
    CumulativeReading,
    EstateBasis,
    IndexAt,
    LeaseTerm,
    PeriodPart,
    StoredReading,
    TariffTerm,
    allocate_by_lease_days,
    collective_shares,
    consumption_over,
    consumption_over_days,
    cumulate,
    index_at,
    largest_remainder,
    price_part,
    round_to_cent,
    shares_by_ratio,
    split_amount,
    split_period,
    tariff_on,
    tariffs_by_priority,
)

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PARIS = dt.timezone(dt.timedelta(hours=1))  # Europe/Paris in winter


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def reading(n: float, index, billing=False, estimated=False) -> CumulativeReading:
    return CumulativeReading(day(n), D(str(index)), billing, estimated)


def date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# --- I(t) -------------------------------------------------------------------------------------


class TestCumulate:
    def test_running_sum_of_stored_consumptions(self):
        # A rollover (25) and a replacement (the new device's first interval, 7) are already in
        # the stored consumptions: the index just adds them up from 0 at the first reading.
        series = cumulate(
            [
                StoredReading(day(0), None),
                StoredReading(day(1), D("12.5"), is_billing_reading=True),
                StoredReading(day(2), D(25)),
                StoredReading(day(3), D(7), is_estimated=True),
            ]
        )
        assert [r.index for r in series] == [D(0), D("12.5"), D("37.5"), D("44.5")]
        assert [r.is_billing_reading for r in series] == [False, True, False, False]
        assert series[3].is_estimated

    def test_refuses_unordered_readings(self):
        with pytest.raises(ValueError):
            cumulate([StoredReading(day(1), None), StoredReading(day(1), D(1))])


class TestIndexAt:
    SERIES = (reading(0, 0), reading(10, 100), reading(20, 300, billing=True))

    def test_reading_at_the_instant(self):
        assert index_at(self.SERIES, day(10)) == IndexAt(D(100), False, (day(10),))

    def test_an_estimated_reading_gives_an_estimated_index(self):
        assert index_at([reading(0, 0), reading(1, 5, estimated=True)], day(1)).is_estimated

    def test_interpolation_between_the_readings_around(self):
        # 5 days of 10 between 0 and 100: 50.
        assert index_at(self.SERIES, day(5)) == IndexAt(D(50), True, (day(0), day(10)))

    def test_nearest_billing_reading_within_7_days(self):
        # The billing reading of day 20 is 5 days away: its index, not estimated.
        assert index_at(self.SERIES, day(15)) == IndexAt(D(300), False, (day(20),))

    def test_7_days_exactly_is_within(self):
        assert index_at(self.SERIES, day(13)).index == D(300)

    def test_beyond_7_days_interpolates(self):
        # Day 12: the billing reading is 8 days away. 100 + 200 × 2/10 = 140.
        assert index_at(self.SERIES, day(12)) == IndexAt(D(140), True, (day(10), day(20)))
        just_beyond = index_at(self.SERIES, day(13) - dt.timedelta(microseconds=1))
        assert just_beyond.is_estimated

    def test_billing_reading_wins_over_a_nearer_ordinary_reading(self):
        series = [reading(0, 0, billing=True), reading(3, 30), reading(10, 100)]
        # Day 4: the ordinary reading of day 3 is 1 day away, the billing one 4 days: 0.
        assert index_at(series, day(4)) == IndexAt(D(0), False, (day(0),))

    def test_tie_between_two_billing_readings_takes_the_earlier(self):
        series = [reading(0, 0, billing=True), reading(10, 100, billing=True)]
        assert index_at(series, day(5)).index == D(0)
        assert index_at(series, day(5) + dt.timedelta(microseconds=1)).index == D(100)

    def test_nearest_billing_reading_on_each_side(self):
        series = [reading(0, 0, billing=True), reading(9, 90), reading(10, 100, billing=True)]
        assert index_at(series, day(4)).index == D(0)
        assert index_at(series, day(6)).index == D(100)

    def test_a_billing_reading_serves_beyond_the_last_reading(self):
        assert index_at(self.SERIES, day(27)).index == D(300)
        assert index_at(self.SERIES, day(27.5)) is None

    def test_no_reading_on_one_side_is_none(self):
        assert index_at(self.SERIES, day(-1)) is None
        assert index_at([reading(0, 0), reading(10, 100)], day(11)) is None
        assert index_at([], day(0)) is None

    def test_interpolation_rounds_half_away_from_zero_at_18_decimals(self):
        third = dt.timedelta(microseconds=1)
        series = [
            CumulativeReading(T0, D(0)),
            CumulativeReading(T0 + 3 * third, D(1)),
        ]
        assert index_at(series, T0 + third).index == D("0.333333333333333333")
        assert index_at(series, T0 + 2 * third).index == D("0.666666666666666667")
        # Exactly half a unit of 10⁻¹⁸: away from zero, up or down.
        tiny = D("1E-18")
        rising = [CumulativeReading(T0, D(0)), CumulativeReading(T0 + 2 * third, tiny)]
        assert index_at(rising, T0 + third).index == tiny
        falling = [CumulativeReading(T0, tiny), CumulativeReading(T0 + 2 * third, D(0))]
        assert index_at(falling, T0 + third).index == 0

    def test_consumption_is_the_difference_of_indexes(self):
        result = consumption_over(self.SERIES, day(5), day(15))
        assert (result.index_start, result.index_end, result.consumption) == (50, 300, 250)
        assert result.is_estimated  # the start is interpolated
        assert consumption_over(self.SERIES, day(-1), day(5)) is None

    def test_adjacent_periods_add_up_with_a_billing_reading_snapped(self):
        # Billing readings on 1 January and 1 March; an ordinary one on 29 January, and the
        # billing one of 3 February, 2 days after the periods' boundary:
        #   January  [1 Jan, 1 Feb): I(1 Feb) is the billing reading of 3 Feb (660): 660 − 0
        #   February [1 Feb, 1 Mar): 1200 − 660 = 540
        #   both     [1 Jan, 1 Mar): 1200, and 660 + 540 = 1200.
        series = [
            CumulativeReading(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), D(0), True),
            CumulativeReading(dt.datetime(2024, 1, 29, tzinfo=dt.UTC), D(560)),
            CumulativeReading(dt.datetime(2024, 2, 3, tzinfo=dt.UTC), D(660), True),
            CumulativeReading(dt.datetime(2024, 3, 1, tzinfo=dt.UTC), D(1200), True),
        ]
        january = consumption_over_days(series, date("2024-01-01"), date("2024-01-31"), dt.UTC)
        february = consumption_over_days(series, date("2024-02-01"), date("2024-02-29"), dt.UTC)
        both = consumption_over_days(series, date("2024-01-01"), date("2024-02-29"), dt.UTC)
        assert (january.consumption, february.consumption, both.consumption) == (660, 540, 1200)
        assert january.index_end == february.index_start
        assert not (january.is_estimated or february.is_estimated)

    def test_adjacent_periods_add_up_when_interpolated(self):
        # Readings at UTC midnights; the periods are Paris days (start 23:00 UTC the day
        # before), so every boundary is interpolated: 100 per day, 1/24 of a day off.
        series = [reading(n, 100 * n) for n in range(0, 40, 7)]
        first = consumption_over_days(series, date("2024-01-02"), date("2024-01-10"), PARIS)
        second = consumption_over_days(series, date("2024-01-11"), date("2024-01-20"), PARIS)
        both = consumption_over_days(series, date("2024-01-02"), date("2024-01-20"), PARIS)
        assert first.consumption + second.consumption == both.consumption
        assert first.consumption == 900  # 9 days of 100, shifted by one hour at both ends
        assert first.is_estimated


moments = st.integers(min_value=-2 * 24 * 60, max_value=40 * 24 * 60).map(
    lambda minutes: T0 + dt.timedelta(minutes=minutes)
)


@given(
    points=st.lists(
        st.tuples(
            st.integers(0, 38 * 24 * 60),
            st.decimals(min_value=-50, max_value=500, places=3, allow_nan=False),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda point: point[0],
    ),
    instants=st.lists(moments, min_size=3, max_size=3, unique=True).map(sorted),
)
def test_consecutive_periods_always_add_up(points, instants):
    stored = [
        StoredReading(T0 + dt.timedelta(minutes=minutes), consumption, billing)
        for minutes, consumption, billing in sorted(points)
    ]
    series = cumulate(stored)
    a, b, c = instants
    first, second = consumption_over(series, a, b), consumption_over(series, b, c)
    whole = consumption_over(series, a, c)
    if first is not None and second is not None:
        assert first.consumption + second.consumption == whole.consumption
        assert first.index_end == second.index_start


# --- tariffs and parts ------------------------------------------------------------------------


T1 = TariffTerm(
    1,
    D("0.1512"),
    date("2023-01-01"),
    date("2024-06-20"),
    standing_charge_per_day=D("0.4567"),
    vat_rate=D("0.20"),
)
T2 = TariffTerm(
    2,
    D("0.1650"),
    date("2024-06-21"),
    None,
    standing_charge_per_day=D("0.5000"),
    vat_rate=D("0.20"),
)
LEASE_A = LeaseTerm(10, date("2023-09-01"), date("2024-06-10"))
LEASE_B = LeaseTerm(11, date("2024-06-11"), None)


class TestSplitPeriod:
    def test_cut_at_lease_ends_and_tariff_changes(self):
        march = (date("2024-03-01"), date("2024-03-31"))
        a = LeaseTerm(1, date("2024-01-01"), date("2024-03-10"))
        b = LeaseTerm(2, date("2024-03-16"))
        old = TariffTerm(1, D("0.10"), date("2023-01-01"), date("2024-03-20"))
        new = TariffTerm(2, D("0.12"), date("2024-03-21"))
        parts = split_period(*march, leases=[b, a], tariffs=[old, new])
        assert parts == [
            PeriodPart(date("2024-03-01"), date("2024-03-10"), a, old),
            PeriodPart(date("2024-03-11"), date("2024-03-15"), None, old),
            PeriodPart(date("2024-03-16"), date("2024-03-20"), b, old),
            PeriodPart(date("2024-03-21"), date("2024-03-31"), b, new),
        ]
        assert [p.days for p in parts] == [10, 5, 5, 11]
        assert sum(p.days for p in parts) == 31
        assert parts[1].is_vacancy

    def test_no_lease_and_no_tariff(self):
        parts = split_period(date("2024-03-01"), date("2024-03-31"))
        assert parts == [PeriodPart(date("2024-03-01"), date("2024-03-31"), None, None)]

    def test_days_without_tariff_are_a_part_without_tariff(self):
        late = TariffTerm(1, D(1), date("2024-03-11"))
        parts = split_period(date("2024-03-01"), date("2024-03-31"), tariffs=[late])
        assert [(p.days, p.tariff) for p in parts] == [(10, None), (21, late)]

    def test_a_change_of_a_shadowed_tariff_does_not_cut(self):
        own = TariffTerm(1, D(1), date("2020-01-01"))
        shadowed = TariffTerm(2, D(2), date("2020-01-01"), date("2024-03-15"))
        parts = split_period(date("2024-03-01"), date("2024-03-31"), tariffs=[own, shadowed])
        assert parts == [PeriodPart(date("2024-03-01"), date("2024-03-31"), None, own)]

    def test_open_ended_dates_at_the_limits(self):
        lease = LeaseTerm(1, dt.date.min, dt.date.max)
        parts = split_period(date("2024-03-01"), date("2024-03-02"), leases=[lease])
        assert [(p.lease, p.days) for p in parts] == [(lease, 2)]

    def test_refuses_overlapping_leases_and_reversed_periods(self):
        leases = [LeaseTerm(1, date("2024-01-01")), LeaseTerm(2, date("2024-03-05"))]
        with pytest.raises(ValueError):
            split_period(date("2024-03-01"), date("2024-03-31"), leases=leases)
        with pytest.raises(ValueError):
            split_period(date("2024-03-02"), date("2024-03-01"))


class TestTariffChoice:
    def test_meter_tariff_first_then_the_slot_then_any_slot_newest_first(self):
        meter_own = TariffTerm(1, D(1), date("2024-02-01"), date("2024-02-29"))
        any_old = TariffTerm(2, D(2), date("2020-01-01"))
        any_new = TariffTerm(3, D(3), date("2024-01-01"))
        peak = TariffTerm(4, D(4), date("2023-01-01"), tariff_slot="PEAK")
        offpeak = TariffTerm(5, D(5), date("2019-01-01"), tariff_slot="OFFPEAK")
        ordered = tariffs_by_priority(
            meter_tariff=meter_own,
            account_tariffs=[any_old, peak, any_new, offpeak],
            tariff_slot="PEAK",
        )
        assert ordered == [meter_own, peak, any_new, any_old]
        assert tariff_on(date("2024-02-10"), ordered) == meter_own
        assert tariff_on(date("2024-03-01"), ordered) == peak
        assert tariff_on(date("2022-06-01"), ordered) == any_old
        assert tariff_on(date("2019-06-01"), ordered) is None

    def test_a_register_without_slot_takes_only_tariffs_without_slot(self):
        any_slot = TariffTerm(2, D(2), date("2020-01-01"))
        peak = TariffTerm(4, D(4), date("2023-01-01"), tariff_slot="PEAK")
        assert tariffs_by_priority(
            meter_tariff=None, account_tariffs=[peak, any_slot], tariff_slot=None
        ) == [any_slot]


class TestPricing:
    def test_consumption_and_standing_charge_then_vat(self):
        price = price_part(consumption=D(120), days=10, tariff=T1)
        # 120 × 0.1512 = 18.144; 10 × 0.4567 = 4.567; net 22.711; VAT 20 %: 4.5422.
        assert price.consumption_amount == D("18.144")
        assert price.standing_amount == D("4.567")
        assert (price.net, price.vat, price.total) == (D("22.711"), D("4.5422"), D("27.2532"))

    def test_exact_beyond_28_digits(self):
        # 40 significant digits: the default context (28) would round the product.
        consumption = D("123456789012345678.123456789012345678")
        price = price_part(consumption=consumption, days=3, tariff=T1)
        expected = F(consumption) * F("0.1512") + 3 * F("0.4567")
        assert F(price.net) == expected
        assert F(price.vat) == expected * F("0.20")

    def test_tariff_change_and_lease_change_in_a_period(self):
        # June 2024 on an INDIVIDUAL meter: lease A until 10 June, lease B from 11 June; T1
        # (0.1512 €/kWh, 0.4567 €/day) until 20 June, T2 (0.1650 €/kWh, 0.50 €/day) from
        # 21 June, both with 20 % VAT. Readings at Paris midnights: 1000 (1 June), 1120
        # (11 June), 1300 (21 June), 1450 (1 July).
        #   A  T1  1–10 June  120 kWh: 18.144 + 10 × 0.4567 = 22.711, VAT 4.5422
        #   B  T1 11–20 June  180 kWh: 27.216 + 4.567       = 31.783, VAT 6.3566
        #   B  T2 21–30 June  150 kWh: 24.75  + 10 × 0.50   = 29.75,  VAT 5.95
        # Meter: net 84.244 → 84.24, VAT 16.8488 → 16.85. Net lines cut to the cent add up
        # (22.71 + 31.78 + 29.75 = 84.24); VAT lines cut make 16.84, the missing cent goes to
        # the largest remainder (6.3566): 4.54, 6.36, 5.95.
        def midnight(text):
            return dt.datetime.combine(date(text), dt.time.min, tzinfo=PARIS)

        series = [
            CumulativeReading(midnight("2024-06-01"), D(1000)),
            CumulativeReading(midnight("2024-06-11"), D(1120)),
            CumulativeReading(midnight("2024-06-21"), D(1300)),
            CumulativeReading(midnight("2024-07-01"), D(1450)),
        ]
        ordered = tariffs_by_priority(meter_tariff=None, account_tariffs=[T2, T1], tariff_slot=None)
        parts = split_period(
            date("2024-06-01"), date("2024-06-30"), leases=[LEASE_A, LEASE_B], tariffs=ordered
        )
        assert [(p.lease, p.tariff, p.days) for p in parts] == [
            (LEASE_A, T1, 10),
            (LEASE_B, T1, 10),
            (LEASE_B, T2, 10),
        ]
        prices = []
        for part in parts:
            used = consumption_over_days(series, part.start_date, part.end_date, PARIS)
            prices.append(
                price_part(consumption=used.consumption, days=part.days, tariff=part.tariff)
            )
        assert [p.net for p in prices] == [D("22.711"), D("31.783"), D("29.75")]
        assert [p.vat for p in prices] == [D("4.5422"), D("6.3566"), D("5.95")]
        nets = largest_remainder([p.net for p in prices])
        vats = largest_remainder([p.vat for p in prices])
        assert nets == [D("22.71"), D("31.78"), D("29.75")]
        assert vats == [D("4.54"), D("6.36"), D("5.95")]
        assert sum(nets) == D("84.24") and sum(vats) == D("16.85")
        assert [n + v for n, v in zip(nets, vats, strict=True)] == [
            D("27.25"),
            D("38.14"),
            D("35.70"),
        ]


# --- rounding ---------------------------------------------------------------------------------


class TestLargestRemainder:
    def test_the_missing_cents_go_to_the_largest_remainders(self):
        # 0.114 + 0.113 + 0.117 = 0.344 → 0.34; cut: 0.11 × 3 = 0.33; one cent missing, to
        # the largest remainder (0.117).
        assert largest_remainder([D("0.114"), D("0.113"), D("0.117")]) == [
            D("0.11"),
            D("0.11"),
            D("0.12"),
        ]

    def test_ties_go_to_the_earlier_line(self):
        third = F(100, 3)
        assert largest_remainder([third] * 3) == [D("33.34"), D("33.33"), D("33.33")]

    def test_whole_cents_are_kept(self):
        assert largest_remainder([D("1.10"), D("2.2"), D(3)]) == [D("1.10"), D("2.20"), D("3.00")]

    def test_the_total_rounds_half_away_from_zero(self):
        assert largest_remainder([D("0.0025"), D("0.0025")]) == [D("0.01"), D("0.00")]
        assert largest_remainder([D("-0.0025"), D("-0.0025")]) == [D("-0.01"), D("0.00")]
        assert round_to_cent(D("2.345")) == D("2.35")
        assert round_to_cent(D("-2.345")) == D("-2.35")
        assert round_to_cent(D("2.3449999")) == D("2.34")

    def test_a_credit_is_the_mirror_image_of_the_charge(self):
        charge = largest_remainder([F(200, 3)] * 3)
        credit = largest_remainder([F(-200, 3)] * 3)
        assert charge == [D("66.67"), D("66.67"), D("66.66")]
        assert credit == [-amount for amount in charge]

    def test_mixed_signs(self):
        # 10.005 − 3.333 = 6.672 → 6.67; cut down: 10.00 and −3.34 = 6.66; remainders 0.5
        # cent (10.005) and 0.7 cent (−3.333 is 0.7 cent above −3.34): the cent goes to −3.333.
        assert largest_remainder([D("10.005"), D("-3.333")]) == [D("10.00"), D("-3.33")]

    def test_no_line(self):
        assert largest_remainder([]) == []

    def test_split_amount_needs_shares_adding_up_to_1(self):
        assert split_amount(D(10), [F(1, 3), F(2, 3)]) == [D("3.33"), D("6.67")]
        with pytest.raises(ValueError):
            split_amount(D(10), [F(1, 3), F(1, 3)])


@given(
    total=st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False),
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30).filter(
        any
    ),
)
def test_split_lines_add_up_to_the_total_and_stay_within_a_cent(total, weights):
    shares = [F(weight, sum(weights)) for weight in weights]
    lines = split_amount(total, shares)
    assert sum(lines) == total.quantize(D("0.01"), rounding="ROUND_HALF_UP")
    for line, share in zip(lines, shares, strict=True):
        assert line == line.quantize(D("0.01"))
        assert abs(F(line) - F(total) * share) < F(1, 100)


@given(
    amounts=st.lists(
        st.decimals(min_value=-(10**6), max_value=10**6, places=5, allow_nan=False), max_size=30
    )
)
def test_rounded_lines_add_up_to_their_rounded_sum(amounts):
    lines = largest_remainder(amounts)
    assert sum(lines, D(0)) == round_to_cent(sum(amounts, D(0)))
    for line, amount in zip(lines, amounts, strict=True):
        assert abs(line - amount) < D("0.01")


# --- allocation -------------------------------------------------------------------------------


APRIL = (date("2024-04-01"), date("2024-04-30"))  # 30 days


class TestSharedMeter:
    def test_the_contracts_example(self):
        # 1,000 kWh at 0.20 €/kWh = 200 €, shared by E1 (ratio 1) and E2 (ratio 2); E1 leased
        # the 30 days, E2 the first 15 then vacant:
        #   E1 lease   200 × 1/3         = 66.666… → 66.67
        #   E2 lease   200 × 2/3 × 15/30 = 66.666… → 66.67
        #   E2 vacancy 200 × 2/3 × 15/30 = 66.666… → 66.66 (equal remainders: earlier lines
        #   get the missing cents)
        tariff = TariffTerm(1, D("0.20"), date("2024-01-01"))
        cost = price_part(consumption=D(1000), days=30, tariff=tariff)
        assert cost.total == D(200)
        l1 = LeaseTerm(1, date("2023-01-01"))
        l2 = LeaseTerm(2, date("2024-01-01"), date("2024-04-15"))
        lines = allocate_by_lease_days(
            *APRIL,
            estate_shares=shares_by_ratio({1: D(1), 2: D(2)}),
            leases={1: [l1], 2: [l2]},
        )
        assert [(a.estate_id, a.lease, a.days, a.share) for a in lines] == [
            (1, l1, 30, F(1, 3)),
            (2, l2, 15, F(1, 3)),
            (2, None, 15, F(1, 3)),
        ]
        assert lines[2].is_vacancy
        assert (lines[2].start_date, lines[2].end_date) == (date("2024-04-16"), date("2024-04-30"))
        assert lines[1].estate_share == F(2, 3)
        amounts = split_amount(cost.total, [a.share for a in lines])
        assert amounts == [D("66.67"), D("66.67"), D("66.66")]

    def test_ratios_must_be_positive(self):
        with pytest.raises(ValueError):
            shares_by_ratio({1: D(1), 2: D(0)})
        with pytest.raises(AllocationError):
            shares_by_ratio({})

    def test_decimal_ratios_are_exact(self):
        assert shares_by_ratio({1: D("0.1"), 2: D("0.2")}) == {1: F(1, 3), 2: F(2, 3)}


class TestCollectiveMeter:
    def test_70_percent_by_consumption_30_by_surface(self):
        # Estates A (50 m², sub-meters 300 kWh), B (80 m², 500 kWh), C (70 m², 200 kWh):
        # Σ surface 200 m², Σ consumption 1,000 kWh.
        #   A  0.7 × 300/1000 + 0.3 × 50/200 = 0.21 + 0.075 = 0.285
        #   B  0.7 × 500/1000 + 0.3 × 80/200 = 0.35 + 0.12  = 0.47
        #   C  0.7 × 200/1000 + 0.3 × 70/200 = 0.14 + 0.105 = 0.245      (Σ = 1)
        # Cost 4,321 kWh × 0.10 €/kWh = 432.10 €. A and B leased all April, C vacant the first
        # 10 days and leased the last 20:
        #   A lease     432.10 × 0.285         = 123.1485  → 123.14 + 1 cent = 123.15
        #   B lease     432.10 × 0.47          = 203.087   → 203.08 + 1 cent = 203.09
        #   C vacancy   432.10 × 0.245 × 10/30 =  35.28816… →  35.28 + 1 cent =  35.29
        #   C lease     432.10 × 0.245 × 20/30 =  70.57633… →  70.57
        # The cut lines make 432.07: the 3 missing cents go to the largest remainders
        # (0.85, 0.8166…, 0.7 cent), not to C's lease (0.6333… cent). 432.10 in all.
        estates = [
            EstateBasis(1, surface_m2=D(50), sub_meter_consumption=D(300)),
            EstateBasis(2, surface_m2=D(80), sub_meter_consumption=D(500)),
            EstateBasis(3, surface_m2=D(70), sub_meter_consumption=D(200)),
        ]
        shares = collective_shares(estates, basis=SURFACE, consumption_part_percent=D(70))
        assert shares == {1: F("0.285"), 2: F("0.47"), 3: F("0.245")}
        cost = price_part(
            consumption=D(4321), days=30, tariff=TariffTerm(1, D("0.10"), date("2024-01-01"))
        )
        assert cost.total == D("432.10")
        la, lb = LeaseTerm(1, date("2024-01-01")), LeaseTerm(2, date("2024-01-01"))
        lc = LeaseTerm(3, date("2024-04-11"))
        lines = allocate_by_lease_days(
            *APRIL, estate_shares=shares, leases={1: [la], 2: [lb], 3: [lc]}
        )
        assert [(a.estate_id, a.lease, a.days) for a in lines] == [
            (1, la, 30),
            (2, lb, 30),
            (3, None, 10),
            (3, lc, 20),
        ]
        amounts = split_amount(cost.total, [a.share for a in lines])
        assert amounts == [D("123.15"), D("203.09"), D("35.29"), D("70.57")]
        assert sum(amounts) == D("432.10")

    def test_by_shares_and_equally(self):
        estates = [EstateBasis(1, shares=120), EstateBasis(2, shares=880), EstateBasis(3)]
        assert collective_shares(estates, basis=SHARES) == {
            1: F(120, 1000),
            2: F(880, 1000),
            3: F(0),
        }
        assert collective_shares(estates, basis=EQUAL) == {1: F(1, 3), 2: F(1, 3), 3: F(1, 3)}

    def test_no_sub_meter_consumption_splits_that_part_by_the_basis(self):
        estates = [EstateBasis(1, shares=1), EstateBasis(2, shares=3)]
        shares = collective_shares(estates, basis=SHARES, consumption_part_percent=D(50))
        assert shares == {1: F(1, 4), 2: F(3, 4)}

    def test_all_by_consumption(self):
        estates = [
            EstateBasis(1, sub_meter_consumption=D("1.5")),
            EstateBasis(2, sub_meter_consumption=D("4.5")),
        ]
        shares = collective_shares(estates, basis=EQUAL, consumption_part_percent=D(100))
        assert shares == {1: F(1, 4), 2: F(3, 4)}

    def test_what_cannot_be_allocated(self):
        with pytest.raises(AllocationError):
            collective_shares([EstateBasis(1, surface_m2=None)], basis=SURFACE)
        with pytest.raises(AllocationError):
            collective_shares([EstateBasis(1), EstateBasis(2)], basis=SHARES)
        with pytest.raises(AllocationError):
            collective_shares(
                [EstateBasis(1, shares=1, sub_meter_consumption=D(-1))],
                basis=SHARES,
                consumption_part_percent=D(10),
            )
        with pytest.raises(ValueError):
            collective_shares(
                [EstateBasis(1, shares=1)], basis=SHARES, consumption_part_percent=D(101)
            )
        with pytest.raises(ValueError):
            collective_shares([EstateBasis(1, shares=1)], basis="ROOMS")

    def test_an_estate_without_lease_is_one_vacancy_line(self):
        lines = allocate_by_lease_days(*APRIL, estate_shares={7: F(1)}, leases={})
        assert [(a.estate_id, a.lease, a.days, a.share) for a in lines] == [(7, None, 30, F(1))]
