"""Period readings (CONTRACT §4.4): their flag rule without a database, then their services.

The services are every path's (API, batch, admin, import, demo): overlaps, locks, flags kept
current after any write, audit history, and a database constraint behind the overlap rule.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering import services as metering_services
from metering.errors import ApiError, Conflict, Overlap, ReadingLocked
from metering.models import Meter, Register
from readings import domain, periods, selectors, services
from readings.domain import DEVIATION, DROP, NEGATIVE, SPIKE, Period, Thresholds
from readings.models import PeriodReading, Reading
from tests.factories import AccountFactory, MeterFactory
from tests.threads import run_threads

PARIS = dt.timezone(dt.timedelta(hours=1))  # Europe/Paris in winter
ACTOR = services.Actor("test:periods", "IMPORT")
D0 = dt.date(2023, 1, 1)
DEFAULTS = Thresholds()


def date(n: int) -> dt.date:
    """``n`` days after 2023-01-01."""
    return D0 + dt.timedelta(days=n)


def flags_of(*periods_: tuple[int, int, str], thresholds: Thresholds = DEFAULTS):
    """Flags of periods given as ``(first day, last day, consumption)`` offsets from D0."""
    series = [Period(date(start), date(end), D(amount)) for start, end, amount in periods_]
    return domain.derive_period_flags(series, thresholds=thresholds)


def monthly(*amounts: str, days: int = 30) -> list[tuple[int, int, str]]:
    """Consecutive periods of ``days`` days with the given consumptions."""
    return [(k * days, k * days + days - 1, amount) for k, amount in enumerate(amounts)]


# --- the rule, without a database ----------------------------------------------------------


class TestDomain:
    def test_days_include_both_ends(self):
        assert Period(date(0), date(0), D(1)).days == 1
        assert Period(dt.date(2024, 2, 1), dt.date(2024, 2, 29), D(1)).days == 29
        assert Period(dt.date(1, 1, 1), dt.date(9999, 12, 31), D(1)).days == 3652059

    def test_no_rate_flag_before_three_earlier_periods(self):
        assert flags_of(*monthly("30", "30", "300")) == [frozenset()] * 3

    def test_spike_and_deviation_against_the_baseline(self):
        # Baseline: 1 a day. 3 a day is a SPIKE (≥ 3 ×) and a DEVIATION (> 1.5 ×).
        assert flags_of(*monthly("30", "30", "30", "90"))[-1] == {SPIKE, DEVIATION}
        assert flags_of(*monthly("30", "30", "30", "89.99"))[-1] == {DEVIATION}
        assert flags_of(*monthly("30", "30", "30", "45"))[-1] == frozenset()  # not > 1.5 ×
        assert flags_of(*monthly("30", "30", "30", "45.01"))[-1] == {DEVIATION}

    def test_drop(self):
        assert flags_of(*monthly("30", "30", "30", "7.49"))[-1] == {DROP, DEVIATION}
        assert flags_of(*monthly("30", "30", "30", "7.5"))[-1] == {DEVIATION}  # not < 0.25 ×

    def test_rates_are_per_day_of_each_period(self):
        # 10 days of 10, 20 days of 20, 31 days of 31: 1 a day; then 90 days of 90, also 1 a day.
        series = [(0, 9, "10"), (10, 29, "20"), (30, 60, "31"), (61, 150, "90")]
        assert flags_of(*series)[-1] == frozenset()
        # The baseline is Σ consumption / Σ days (61 / 61), not the mean of the rates.
        series = [(0, 0, "5"), (1, 30, "30"), (31, 60, "30"), (61, 90, "50")]
        # Σ = 65 over 61 days: 1.066 a day; 50 / 30 = 1.667 a day > 1.5 × 1.066.
        assert flags_of(*series)[-1] == {DEVIATION}

    def test_negative_is_flagged_alone_and_left_out_of_baselines(self):
        flags = flags_of(*monthly("30", "30", "-5", "30", "30"))
        assert flags[2] == {NEGATIVE}
        assert flags[3] == frozenset()  # two usable periods only: no baseline
        assert flags_of(*monthly("30", "30", "-5", "30", "90"))[-1] == {SPIKE, DEVIATION}

    def test_baseline_of_zero(self):
        assert flags_of(*monthly("0", "0", "0", "1"))[-1] == {DEVIATION, SPIKE}
        assert flags_of(*monthly("0", "0", "0", "0"))[-1] == frozenset()

    def test_baseline_keeps_periods_ending_within_the_window(self):
        # Earlier periods end on days 9, 19, 29; the last one ends on day 129, 120 days after
        # the first one's end: in the window of 120 days (lower bound included), not of 119.
        series = [(0, 9, "10"), (10, 19, "10"), (20, 29, "10"), (120, 129, "40")]
        assert flags_of(*series, thresholds=Thresholds(baseline_days=120))[-1] == {
            SPIKE,
            DEVIATION,
        }
        assert flags_of(*series, thresholds=Thresholds(baseline_days=119))[-1] == frozenset()

    def test_account_thresholds(self):
        strict = Thresholds(deviation=D("0.1"), min_intervals=1)
        assert flags_of(*monthly("30", "34"), thresholds=strict) == [frozenset(), {DEVIATION}]

    @given(
        lengths=st.lists(st.integers(1, 70), min_size=1, max_size=25),
        amounts=st.lists(st.decimals(-5, 500, places=3, allow_nan=False), min_size=25),
        baseline_days=st.integers(1, 400),
    )
    def test_back_to_back_periods_flag_as_index_readings_at_their_bounds(
        self, lengths, amounts, baseline_days
    ):
        """One rule (§4.2): consecutive periods are the intervals between index readings taken
        at each period's first instant, so both derivations give the same flags."""
        rules = Thresholds(baseline_days=baseline_days)
        series, points, start, index = [], [], 0, D(0)
        midnight = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
        points.append(domain.Point(midnight, index))
        for length, amount in zip(lengths, amounts, strict=False):
            series.append(Period(date(start), date(start + length - 1), amount))
            start += length
            index += amount
            points.append(domain.Point(midnight + dt.timedelta(days=start), index))
        by_index = domain.derive_series(points, factor=D(1), max_value=None, thresholds=rules)
        expected = [derived.flags for derived in by_index[1:]]
        assert domain.derive_period_flags(series, thresholds=rules) == expected

    def test_overlap_includes_both_ends(self):
        january = Period(dt.date(2024, 1, 1), dt.date(2024, 1, 31), D(1))
        assert domain.periods_overlap(january, Period(dt.date(2024, 1, 31), date(500), D(1)))
        assert not domain.periods_overlap(january, Period(dt.date(2024, 2, 1), date(500), D(1)))
        assert domain.periods_overlap(january, Period(dt.date(2024, 1, 10), date(375), D(1)))

    def test_a_period_starting_before_the_lock_instant_is_locked(self):
        lock = dt.datetime(2024, 2, 1, tzinfo=PARIS)  # 1 February 00:00 in Paris
        assert not domain.period_is_locked(dt.date(2024, 1, 1), None, PARIS)
        assert domain.period_is_locked(dt.date(2024, 1, 31), lock, PARIS)
        assert not domain.period_is_locked(dt.date(2024, 2, 1), lock, PARIS)
        # Locked at 08:00: the first hours of 1 February are in the closed range.
        assert domain.period_is_locked(dt.date(2024, 2, 1), lock + dt.timedelta(hours=8), PARIS)
        assert domain.period_is_locked(dt.date(1, 1, 1), lock, PARIS)


# --- the services ----------------------------------------------------------------------------


def item(start: int, end: int, amount: str = "30", **extra) -> periods.PeriodInput:
    return periods.PeriodInput(
        start_date=date(start), end_date=date(end), consumption=D(amount), **extra
    )


def create(meter: Meter, *items: periods.PeriodInput, actor=ACTOR) -> list[PeriodReading]:
    result = periods.create_period_readings(meter=meter, items=items, actor=actor)
    assert not result.errors, result.errors
    return result.accepted


def stored_flags(meter: Meter) -> list[tuple]:
    rows = PeriodReading.objects.filter(meter=meter).order_by("start_date")
    return [(r.start_date, r.end_date, r.consumption, frozenset(r.anomaly_flags)) for r in rows]


def fresh_flags(meter: Meter) -> list[tuple]:
    """What deriving the meter's period series in date order gives (CONTRACT §4.2)."""
    meter = Meter.objects.select_related("account").get(pk=meter.pk)
    rows = list(PeriodReading.objects.filter(meter=meter).order_by("start_date"))
    derived = domain.derive_period_flags(
        [Period(r.start_date, r.end_date, r.consumption) for r in rows],
        thresholds=services.thresholds(meter.account),
    )
    return [
        (r.start_date, r.end_date, r.consumption, flags)
        for r, flags in zip(rows, derived, strict=True)
    ]


@pytest.fixture
def meter(account):
    return MeterFactory(account=account, meter_type="GAS", serial_number="G-1")


@pytest.mark.django_db
class TestCreate:
    def test_stored_fields(self, meter, account):
        (period,) = create(
            meter,
            item(
                0, 30, "412.5", cost=D("98.40"), demand_kw=D("12.5"), is_estimated=True, notes="n"
            ),
        )
        stored = PeriodReading.objects.get()
        assert stored.pk == period.pk
        assert (stored.account, stored.meter, stored.start_date, stored.end_date) == (
            account,
            meter,
            date(0),
            date(30),
        )
        assert (stored.consumption, stored.cost, stored.cost_currency, stored.demand_kw) == (
            D("412.5"),
            D("98.40"),
            "EUR",
            D("12.5"),
        )
        assert (stored.is_estimated, stored.notes) == (True, "n")
        assert (stored.source, stored.created_by) == ("IMPORT", "test:periods")
        assert stored.anomaly_flags == [] and not stored.is_locked

    def test_currency_defaults_to_the_accounts(self, db):
        account = AccountFactory(currency="CHF")
        meter = MeterFactory(account=account)
        (period,) = create(meter, item(0, 9))
        assert period.cost_currency == "CHF"
        (period,) = create(meter, item(10, 19, cost_currency="EUR"))
        assert period.cost_currency == "EUR"

    def test_flags_of_a_batch_in_any_order(self, meter):
        create(meter, *[item(30 * k, 30 * k + 29) for k in (3, 0, 4, 1, 2)], item(150, 179, "95"))
        assert stored_flags(meter) == fresh_flags(meter)
        assert stored_flags(meter)[-1][3] == {SPIKE, DEVIATION}

    def test_invalid_values_are_reported_per_item(self, meter):
        tomorrow = meter.account.today() + dt.timedelta(days=1)
        items = [
            item(5, 4),  # ends before it starts
            periods.PeriodInput(start_date=date(0), end_date=tomorrow, consumption=D(1)),
            item(0, 9, cost_currency="XXY"),
            item(0, 9, demand_kw=D(-1)),
            item(0, 9, "1.0000001"),
            item(0, 9, cost=D("1.001")),
            item(0, 9, "1" * 19),
            item(20, 29),
        ]
        result = periods.create_period_readings(meter=meter, items=items, actor=ACTOR)
        assert [(e.index, e.code, sorted(e.details)) for e in result.errors] == [
            (0, "validation_error", ["end_date"]),
            (1, "validation_error", ["end_date"]),
            (2, "validation_error", ["cost_currency"]),
            (3, "validation_error", ["demand_kw"]),
            (4, "validation_error", ["consumption"]),
            (5, "validation_error", ["cost"]),
            (6, "validation_error", ["consumption"]),
        ]
        assert [p.start_date for p in result.accepted] == [date(20)]
        assert PeriodReading.objects.count() == 1

    def test_a_day_shared_with_a_stored_period_is_an_overlap(self, meter):
        create(meter, item(10, 19))
        items = [item(0, 10), item(19, 25), item(12, 14), item(0, 40), item(0, 9), item(20, 29)]
        result = periods.create_period_readings(meter=meter, items=items, actor=ACTOR)
        assert [(e.index, e.code) for e in result.errors] == [
            (0, "overlap"),
            (1, "overlap"),
            (2, "overlap"),
            (3, "overlap"),
        ]
        assert {e.message for e in result.errors} == {Overlap.default_detail}
        assert [
            (r.start_date, r.end_date) for r in PeriodReading.objects.order_by("start_date")
        ] == [
            (date(0), date(9)),
            (date(10), date(19)),
            (date(20), date(29)),
        ]

    def test_items_of_a_batch_overlapping_each_other_keep_the_first(self, meter):
        items = [item(0, 9), item(9, 12), item(20, 29), item(15, 20), item(10, 14)]
        result = periods.create_period_readings(meter=meter, items=items, actor=ACTOR)
        assert [(e.index, e.code, e.message) for e in result.errors] == [
            (1, "overlap", periods.BATCH_OVERLAP_MESSAGE),
            (3, "overlap", periods.BATCH_OVERLAP_MESSAGE),
        ]
        assert PeriodReading.objects.count() == 3

    def test_same_days_on_another_meter_are_fine(self, meter, account):
        create(meter, item(0, 9))
        create(MeterFactory(account=account), item(0, 9))
        assert PeriodReading.objects.count() == 2

    def test_a_decommissioned_meter_takes_no_period_reading(self, account):
        meter = MeterFactory(account=account, status="DECOMMISSIONED")
        with pytest.raises(Conflict):
            periods.create_period_readings(meter=meter, items=[item(0, 9)], actor=ACTOR)
        assert not PeriodReading.objects.exists()


@pytest.mark.django_db
class TestFlagsKeptCurrent:
    @pytest.fixture
    def series(self, meter):
        # Months of 30 at 1 a day, with a gap to fill at k = 3, then a high one.
        return create(
            meter, *[item(30 * k, 30 * k + 29) for k in (0, 1, 2, 4, 5)], item(180, 209, "60")
        )

    def test_inserting_in_the_middle(self, meter, series):
        assert stored_flags(meter)[-1][3] == {DEVIATION}
        create(meter, item(90, 119, "300"))  # a spike that raises the later baselines
        assert stored_flags(meter) == fresh_flags(meter)
        flags = {row[0]: row[3] for row in stored_flags(meter)}
        assert flags[date(90)] == {SPIKE, DEVIATION}
        assert flags[date(180)] == frozenset()  # its baseline now holds the spike

    def test_changing_a_consumption(self, meter, series):
        periods.update_period_reading(period=series[1], values={"consumption": D(300)}, actor=ACTOR)
        assert stored_flags(meter) == fresh_flags(meter)
        assert stored_flags(meter)[1][3] == frozenset()  # no baseline yet
        assert stored_flags(meter)[-1][3] == frozenset()

    def test_moving_a_period(self, meter, series):
        periods.update_period_reading(
            period=series[0], values={"start_date": date(95), "end_date": date(119)}, actor=ACTOR
        )
        assert stored_flags(meter) == fresh_flags(meter)
        assert [row[0] for row in stored_flags(meter)] == [
            date(d) for d in (30, 60, 95, 120, 150, 180)
        ]

    def test_deleting(self, meter, series):
        periods.delete_period_reading(period=series[2], actor=ACTOR)
        assert stored_flags(meter) == fresh_flags(meter)
        assert not PeriodReading.objects.filter(pk=series[2].pk).exists()

    def test_only_rows_whose_flags_change_are_written(self, meter, series):
        before = dict(PeriodReading.objects.values_list("pk", "updated_at"))
        create(meter, item(300, 329))
        after = dict(PeriodReading.objects.values_list("pk", "updated_at"))
        assert all(after[pk] == before[pk] for pk in before)

    def test_changing_the_account_thresholds(self, meter, series, account):
        assert stored_flags(meter)[-1][3] == {DEVIATION}
        metering_services.update_account(account=account, values={"anomaly_deviation_ratio": D(2)})
        assert stored_flags(meter)[-1][3] == frozenset()
        assert stored_flags(meter) == fresh_flags(meter)

    def test_a_meters_multiplier_does_not_touch_period_readings(self, meter, series):
        before = list(PeriodReading.objects.values_list("updated_at", "consumption"))
        metering_services.update_meter(meter=meter, values={"multiplier": D(2)})
        assert list(PeriodReading.objects.values_list("updated_at", "consumption")) == before


@pytest.mark.django_db
class TestUpdateAndDelete:
    def test_moving_onto_another_period_is_an_overlap(self, meter):
        first, second = create(meter, item(0, 9), item(10, 19))
        with pytest.raises(Overlap):
            periods.update_period_reading(
                period=second, values={"start_date": date(9)}, actor=ACTOR
            )
        with pytest.raises(Overlap):
            periods.update_period_reading(
                period=first, values={"start_date": date(15), "end_date": date(25)}, actor=ACTOR
            )
        assert [(r.start_date, r.end_date) for r in PeriodReading.objects.order_by("pk")] == [
            (date(0), date(9)),
            (date(10), date(19)),
        ]

    def test_a_period_may_grow_over_its_own_days(self, meter):
        (period,) = create(meter, item(10, 19))
        updated = periods.update_period_reading(
            period=period, values={"start_date": date(5), "end_date": date(25)}, actor=ACTOR
        )
        assert (updated.start_date, updated.end_date) == (date(5), date(25))

    def test_invalid_change_is_refused_and_changes_nothing(self, meter):
        (period,) = create(meter, item(10, 19))
        with pytest.raises(ValidationError) as error:
            periods.update_period_reading(period=period, values={"end_date": date(9)}, actor=ACTOR)
        assert "end_date" in error.value.message_dict
        with pytest.raises(ValidationError) as error:
            periods.update_period_reading(
                period=period, values={"cost_currency": "ABC"}, actor=ACTOR
            )
        assert "cost_currency" in error.value.message_dict
        assert PeriodReading.objects.get().end_date == date(19)

    def test_empty_currency_is_the_accounts(self, meter):
        (period,) = create(meter, item(10, 19, cost_currency="USD"))
        updated = periods.update_period_reading(
            period=period, values={"cost_currency": ""}, actor=ACTOR
        )
        assert updated.cost_currency == PeriodReading.objects.get().cost_currency == "EUR"

    def test_a_decommissioned_meters_periods_can_still_be_corrected(self, meter):
        first, second = create(meter, item(0, 9), item(10, 19))
        Meter.objects.filter(pk=meter.pk).update(status="DECOMMISSIONED")
        periods.update_period_reading(period=first, values={"consumption": D(31)}, actor=ACTOR)
        periods.delete_period_reading(period=second, actor=ACTOR)
        assert list(PeriodReading.objects.values_list("consumption", flat=True)) == [D(31)]


@pytest.mark.django_db
class TestLocks:
    @pytest.fixture
    def locked(self, meter):
        """January, February and March 2024; January and February locked, as a close does."""
        rows = create(
            meter,
            periods.PeriodInput(dt.date(2024, 1, 1), dt.date(2024, 1, 31), D(31)),
            periods.PeriodInput(dt.date(2024, 2, 1), dt.date(2024, 2, 29), D(29)),
            periods.PeriodInput(dt.date(2024, 3, 1), dt.date(2024, 3, 31), D(31)),
        )
        periods.lock_period_readings(
            periods=PeriodReading.objects.filter(pk__in=[r.pk for r in rows[:2]])
        )
        return rows

    def test_lock_reaches_the_end_of_the_latest_locked_period(self, meter, locked):
        register = meter.registers.get(is_default=True)
        # 1 March 00:00 in Paris (UTC+1 in winter).
        assert register.locked_until == dt.datetime(2024, 2, 29, 23, tzinfo=dt.UTC)
        assert [p.is_locked for p in PeriodReading.objects.order_by("start_date")] == [
            True,
            True,
            False,
        ]
        assert [p.is_locked for p in PeriodReading.objects.with_lock().order_by("start_date")] == [
            True,
            True,
            False,
        ]

    def test_locks_only_move_forward(self, meter, locked):
        periods.lock_period_readings(periods=PeriodReading.objects.filter(pk=locked[0].pk))
        register = meter.registers.get(is_default=True)
        assert register.locked_until == dt.datetime(2024, 2, 29, 23, tzinfo=dt.UTC)
        assert periods.lock_period_readings(periods=PeriodReading.objects.none()) == 0

    def test_locked_periods_cannot_change_or_go(self, meter, locked):
        january, february, march = locked
        for values in ({"consumption": D(1)}, {"notes": "x"}, {"end_date": dt.date(2024, 1, 30)}):
            with pytest.raises(ReadingLocked):
                periods.update_period_reading(period=february, values=values, actor=ACTOR)
        with pytest.raises(ReadingLocked):
            periods.delete_period_reading(period=january, actor=ACTOR)
        # Nor may a free period move into the closed range.
        with pytest.raises(ReadingLocked):
            periods.update_period_reading(
                period=march, values={"start_date": dt.date(2024, 2, 25)}, actor=ACTOR
            )
        assert PeriodReading.objects.get(pk=february.pk).consumption == 29
        assert PeriodReading.objects.count() == 3

    def test_no_new_period_starting_before_the_lock(self, meter, locked):
        PeriodReading.objects.filter(pk=locked[0].pk).delete()  # a gap in the closed range
        result = periods.create_period_readings(
            meter=meter,
            items=[
                periods.PeriodInput(dt.date(2023, 12, 1), dt.date(2023, 12, 31), D(31)),
                periods.PeriodInput(dt.date(2024, 1, 1), dt.date(2024, 1, 31), D(31)),
                periods.PeriodInput(dt.date(2024, 4, 1), dt.date(2024, 4, 30), D(30)),
            ],
            actor=ACTOR,
        )
        assert [(e.index, e.code) for e in result.errors] == [
            (0, "reading_locked"),
            (1, "reading_locked"),
        ]
        assert len(result.accepted) == 1

    def test_after_the_lock_everything_is_allowed(self, meter, locked):
        march = locked[2]
        periods.update_period_reading(period=march, values={"consumption": D(40)}, actor=ACTOR)
        periods.delete_period_reading(period=march, actor=ACTOR)
        create(meter, periods.PeriodInput(dt.date(2024, 3, 1), dt.date(2024, 3, 15), D(15)))
        assert stored_flags(meter) == fresh_flags(meter)

    def test_index_readings_lock_period_readings_of_their_meter(self, meter):
        (january,) = create(
            meter, periods.PeriodInput(dt.date(2024, 1, 1), dt.date(2024, 1, 31), D(31))
        )
        services.create_readings(
            meter=meter,
            items=[services.ReadingInput(dt.datetime(2024, 1, 15, tzinfo=dt.UTC), D(5))],
            actor=ACTOR,
        )
        services.lock_readings(readings=Reading.objects.filter(meter=meter))
        with pytest.raises(ReadingLocked):
            periods.delete_period_reading(period=january, actor=ACTOR)

    def test_a_lock_on_another_register_does_not_count(self, meter):
        (january,) = create(
            meter, periods.PeriodInput(dt.date(2024, 1, 1), dt.date(2024, 1, 31), D(31))
        )
        other = Register.objects.create(meter=meter, code="2.8.0", unit=meter.unit)
        Register.objects.filter(pk=other.pk).update(
            locked_until=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        )
        periods.delete_period_reading(period=january, actor=ACTOR)


@pytest.mark.django_db
class TestHistory:
    def test_every_change_is_recorded_with_who_and_the_values(self, meter):
        (period,) = create(meter, item(0, 9, "10"), actor=services.Actor("user:ann", "ADMIN"))
        periods.update_period_reading(
            period=period, values={"consumption": D(12)}, actor=services.Actor("key:abc", "API")
        )
        periods.delete_period_reading(period=period, actor=services.Actor("import:f.csv", "IMPORT"))
        history = selectors.period_reading_history(period_ids=[period.pk])
        assert [(e.action, e.actor, e.source) for e in history] == [
            ("delete", "import:f.csv", "IMPORT"),
            ("update", "key:abc", "API"),
            ("insert", "user:ann", "ADMIN"),
        ]
        assert history[1].changes == {"consumption": (D(10), D(12))}
        assert history[2].changes["end_date"] == (None, date(9))
        assert history[0].changes["consumption"] == (D(12), None)

    def test_flags_changed_by_a_write_are_attributed_to_it(self, meter):
        create(meter, *[item(30 * k, 30 * k + 29) for k in range(4)], item(120, 149, "31"))
        create(meter, item(150, 179, "2000"), actor=services.Actor("key:late", "API"))
        last_but_one = PeriodReading.objects.get(start_date=date(120))
        assert last_but_one.anomaly_flags == []
        periods.update_period_reading(
            period=PeriodReading.objects.get(start_date=date(90)),
            values={"consumption": D(900)},
            actor=services.Actor("key:fix", "API"),
        )
        entries = selectors.period_reading_history(meter_id=meter.pk)
        (recomputed,) = [
            e for e in entries if e.reading_id == last_but_one.pk and e.action == "update"
        ]
        assert recomputed.actor == "key:fix"
        assert recomputed.changes == {"flag_drop": (False, True), "flag_deviation": (False, True)}

    def test_history_limit_shows_the_changes_before_the_oldest_shown(self, meter):
        (period,) = create(meter, item(0, 9, "10"))
        for amount in (11, 12, 13):
            periods.update_period_reading(
                period=period, values={"consumption": D(amount)}, actor=ACTOR
            )
        history = selectors.period_reading_history(period_ids=[period.pk], limit=2)
        assert [e.changes for e in history] == [
            {"consumption": (D(12), D(13))},
            {"consumption": (D(11), D(12))},
        ]


@pytest.mark.django_db
class TestDatabaseConstraint:
    def test_overlapping_rows_are_refused_by_postgresql(self, meter, account):
        if connection.vendor != "postgresql":
            pytest.skip("the exclusion constraint exists on PostgreSQL only")
        create(meter, item(10, 19))
        with pytest.raises(IntegrityError) as error, transaction.atomic():
            PeriodReading.objects.create(
                account=account, meter=meter, start_date=date(19), end_date=date(25), consumption=1
            )
        assert error.value.__cause__.sqlstate == "23P01"
        PeriodReading.objects.create(
            account=account, meter=meter, start_date=date(20), end_date=date(25), consumption=1
        )


@pytest.mark.django_db
def test_queries_do_not_grow_with_the_batch_or_the_history(account):
    counts = {}
    for history in (5, 200):
        for size in (1, 50):
            meter = MeterFactory(account=account)
            create(meter, *[item(2 * k, 2 * k, "10") for k in range(history)])
            # Spikes between stored periods: later flags change in every case.
            items = [item(2 * k + 7, 2 * k + 7, "100") for k in range(size)]
            with CaptureQueriesContext(connection) as queries:
                create(meter, *items)
            counts[(history, size)] = len(queries)
            assert stored_flags(meter) == fresh_flags(meter)
            assert any(
                r.updated_at > r.created_at for r in PeriodReading.objects.filter(meter=meter)
            )
    assert len(set(counts.values())) == 1, counts


# --- any order of writes ---------------------------------------------------------------------

spans = st.tuples(st.integers(0, 200), st.integers(0, 40))
amounts = st.sampled_from(["0", "5", "10", "10", "10", "12", "40", "-3"])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), st.lists(st.tuples(spans, amounts), min_size=1, max_size=6)),
        st.tuples(st.just("consumption"), st.integers(0, 50), amounts),
        st.tuples(st.just("move"), st.integers(0, 50), spans),
        st.tuples(st.just("delete"), st.integers(0, 50)),
    ),
    min_size=1,
    max_size=15,
)


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=operations)
def test_any_sequence_of_writes_leaves_the_in_order_flags_and_no_overlap(account, operations):
    metering_services.update_account(
        account=account, values={"anomaly_baseline_days": 60, "anomaly_min_intervals": 2}
    )
    meter = MeterFactory(account=account)
    try:
        for operation in operations:
            stored = list(PeriodReading.objects.filter(meter=meter).order_by("pk"))
            kind = operation[0]
            try:
                if kind == "batch":
                    items = [item(s, s + n, amount) for (s, n), amount in operation[1]]
                    periods.create_period_readings(meter=meter, items=items, actor=ACTOR)
                elif stored and kind == "consumption":
                    period = stored[operation[1] % len(stored)]
                    periods.update_period_reading(
                        period=period, values={"consumption": D(operation[2])}, actor=ACTOR
                    )
                elif stored and kind == "move":
                    (start, length) = operation[2]
                    period = stored[operation[1] % len(stored)]
                    values = {"start_date": date(start), "end_date": date(start + length)}
                    periods.update_period_reading(period=period, values=values, actor=ACTOR)
                elif stored and kind == "delete":
                    periods.delete_period_reading(
                        period=stored[operation[1] % len(stored)], actor=ACTOR
                    )
            except ApiError as error:
                assert error.error_code == "overlap"
            assert stored_flags(meter) == fresh_flags(meter)
            rows = stored_flags(meter)
            assert all(a[1] < b[0] for a, b in itertools.pairwise(rows))
    finally:
        PeriodReading.objects.filter(meter=meter).delete()


# --- concurrency ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_writes_keep_one_of_each():
    """Threads with their own connections write periods that overlap each other's: the meter's
    row lock lets exactly one of each overlapping pair in, and the flags stay in order."""
    meter = MeterFactory(account=AccountFactory())
    outcomes = []

    def work(index: int) -> None:
        for k in range(8):
            # Every thread writes the same 8 ten-day periods, shifted by 0 to 5 days.
            result = periods.create_period_readings(
                meter=meter,
                items=[item(20 * k + index % 2 * 5, 20 * k + index % 2 * 5 + 9)],
                actor=services.Actor(f"thread:{index}"),
            )
            outcomes.append(bool(result.accepted))

    assert run_threads(6, work) == []
    assert sum(outcomes) == 8
    rows = stored_flags(meter)
    assert len(rows) == 8
    assert all(a[1] < b[0] for a, b in itertools.pairwise(rows))
    assert rows == fresh_flags(meter)
