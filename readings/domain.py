"""The consumption chain and anomaly flags of a register's series (CONTRACT §4.1, §4.2).

Pure functions on ``Decimal`` and datetimes: the readings engine, the importer and the tests
all derive a series with ``derive_series``, so "what a fresh in-order computation gives" has
one definition. Comparisons are exact: rates are compared by cross-multiplying consumptions
with interval lengths counted in microseconds, under a context precise enough for every value
the database can hold.
"""

from __future__ import annotations

import bisect
import datetime as dt
import decimal
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

DEVIATION, SPIKE, DROP, NEGATIVE = "DEVIATION", "SPIKE", "DROP", "NEGATIVE"
FLAGS = (DEVIATION, SPIKE, DROP, NEGATIVE)
FLAG_FIELDS = {
    DEVIATION: "flag_deviation",
    SPIKE: "flag_spike",
    DROP: "flag_drop",
    NEGATIVE: "flag_negative",
}
NO_FLAGS: frozenset[str] = frozenset()

_MICROSECOND = dt.timedelta(microseconds=1)
_DAY = dt.timedelta(days=1)
# Wide enough that products of stored values (38 digits at most) are never rounded.
_EXACT = decimal.Context(prec=120)


@dataclass(frozen=True)
class Thresholds:
    """The account settings of §4.2 (defaults as in the contract)."""

    deviation: Decimal = Decimal("0.5")
    spike: Decimal = Decimal("3")
    drop: Decimal = Decimal("0.25")
    baseline_days: int = 365
    min_intervals: int = 3

    @property
    def baseline_span(self) -> dt.timedelta:
        return dt.timedelta(days=self.baseline_days)


_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


def earlier_by(instant: dt.datetime, span: dt.timedelta) -> dt.datetime:
    """``instant − span``, or the earliest representable instant when that is before year 1."""
    try:
        return instant - span
    except OverflowError:
        return _EARLIEST


@dataclass(frozen=True)
class Point:
    """One reading of a register: its instant and its index value."""

    reading_date: dt.datetime
    value: Decimal


@dataclass(frozen=True, order=True)
class Restart:
    """A device replacement: from ``at`` on, the register counts from ``initial_value``."""

    at: dt.datetime
    initial_value: Decimal


@dataclass(frozen=True)
class Derived:
    """What the chain gives a reading: the stored, server-computed fields."""

    previous_value: Decimal | None
    consumption: Decimal | None
    is_rollover: bool
    flags: frozenset[str]


def consumption_between(
    previous: Decimal, value: Decimal, *, factor: Decimal, max_value: Decimal | None
) -> tuple[Decimal, bool]:
    """Consumption from ``previous`` to ``value``, in the register's unit × ``factor``.

    ``factor`` is the meter's multiplier × the register's transformer ratio. A value below the
    previous one rolls over at ``max_value`` when the meter has one (``is_rollover``); without
    it the consumption is negative.
    """
    with decimal.localcontext(_EXACT):
        return _consumption_between(previous, value, factor, max_value)


def _consumption_between(
    previous: Decimal, value: Decimal, factor: Decimal, max_value: Decimal | None
) -> tuple[Decimal, bool]:
    """``consumption_between`` in the exact context, which the caller has entered."""
    if value >= previous:
        return (value - previous) * factor, False
    if max_value is not None:
        return (max_value - previous + value) * factor, True
    return (value - previous) * factor, False


_NEGATIVE_ONLY = frozenset({NEGATIVE})
_DEVIATION_AND_SPIKE = frozenset({DEVIATION, SPIKE})


def rate_flags(
    consumption: Decimal,
    micros: int,
    baseline_consumption: Decimal,
    baseline_micros: int,
    baseline_intervals: int,
    thresholds: Thresholds,
) -> frozenset[str]:
    """Flags of an interval of ``consumption`` over ``micros`` µs against its baseline.

    rate = consumption / days and baseline = Σ consumption / Σ days of the earlier intervals;
    with ``r = consumption × Σµs`` and ``b = Σ consumption × µs`` (both scaled by the same
    positive number), DEVIATION is ``|r − b| > deviation × b``, SPIKE ``r ≥ spike × b``, DROP
    ``r < drop × b``. A baseline of 0 flags any positive rate as DEVIATION and SPIKE.

    Computed in the caller's decimal context, which must be the exact one (``_EXACT``): the
    series' loops enter it once for all their points (one per point cost a third of the time).
    """
    if consumption < 0:
        return _NEGATIVE_ONLY
    if baseline_intervals < thresholds.min_intervals:
        return NO_FLAGS
    if baseline_consumption == 0:
        return _DEVIATION_AND_SPIKE if consumption > 0 else NO_FLAGS
    rate = consumption * baseline_micros
    baseline = baseline_consumption * micros
    flags = set()
    if abs(rate - baseline) > thresholds.deviation * baseline:
        flags.add(DEVIATION)
    if rate >= thresholds.spike * baseline:
        flags.add(SPIKE)
    if rate < thresholds.drop * baseline:
        flags.add(DROP)
    return frozenset(flags) if flags else NO_FLAGS


def derive_series(
    points: Sequence[Point],
    *,
    factor: Decimal,
    max_value: Decimal | None,
    thresholds: Thresholds,
    since: dt.datetime | None = None,
    restarts: Sequence[Restart] = (),
) -> list[Derived | None]:
    """The chain and flags of a register's readings, given in ``reading_date`` order.

    The first point has no previous value. Each later point's baseline is made of the earlier
    intervals (not NEGATIVE) that end within ``baseline_days`` before it, lower bound included;
    a sliding window keeps the whole computation linear in the number of points.

    With ``since``, points dated before it only feed the baselines and their result is None:
    the engine re-derives the end of a series and needs the earlier points for nothing else.

    ``restarts`` are device replacements (CONTRACT §4.6): the first point after a restart
    counts from the new device's initial value, not from the old device's last reading, so
    consumption across a replacement is the old device's last interval (up to its final
    reading, at the restart instant) plus the new device's first.
    """
    pending = deque(sorted(restarts))
    results: list[Derived | None] = []
    window: deque[tuple[dt.datetime, int, Decimal]] = deque()  # (end, µs, consumption)
    window_consumption = Decimal(0)
    window_micros = 0
    span = thresholds.baseline_span
    previous: Point | None = None
    # One exact context for the whole series, which rate_flags computes in.
    with decimal.localcontext(_EXACT):
        for point in points:
            if previous is None:
                first = since is None or point.reading_date >= since
                results.append(Derived(None, None, False, NO_FLAGS) if first else None)
                previous = point
                continue
            base = previous.value
            while pending and pending[0].at < point.reading_date:
                restart = pending.popleft()
                if restart.at >= previous.reading_date:
                    base = restart.initial_value
            consumption, is_rollover = _consumption_between(base, point.value, factor, max_value)
            micros = (point.reading_date - previous.reading_date) // _MICROSECOND
            oldest_end = earlier_by(point.reading_date, span)
            while window and window[0][0] < oldest_end:
                _, old_micros, old_consumption = window.popleft()
                window_micros -= old_micros
                window_consumption -= old_consumption
            if since is not None and point.reading_date < since:
                results.append(None)
            else:
                flags = rate_flags(
                    consumption, micros, window_consumption, window_micros, len(window), thresholds
                )
                results.append(Derived(base, consumption, is_rollover, flags))
            if consumption >= 0:
                window.append((point.reading_date, micros, consumption))
                window_micros += micros
                window_consumption += consumption
            previous = point
    return results


# --- the values a new reading could take without a flag (the portal's allowed range) ----------


def start_value(previous: Point, at: dt.datetime, restarts: Sequence[Restart] = ()) -> Decimal:
    """The value a reading at ``at`` counts its consumption from, as ``derive_series`` does:
    the previous reading's, or the initial value of the last device installed at or after the
    previous reading and before ``at``."""
    base = previous.value
    for restart in sorted(restarts):
        if previous.reading_date <= restart.at < at:
            base = restart.initial_value
    return base


@dataclass(frozen=True)
class Baseline:
    """The earlier intervals of §4.2: Σ consumption, Σ length in µs, and how many."""

    consumption: Decimal = Decimal(0)
    micros: int = 0
    intervals: int = 0

    def per_day(self, decimals: int = 6) -> Decimal | None:
        """Σ consumption / Σ days, rounded to ``decimals``; None without an interval."""
        if not self.micros:
            return None
        with decimal.localcontext(_EXACT):
            daily = self.consumption * (_DAY // _MICROSECOND) / self.micros
            return _to_step(daily, decimals, decimal.ROUND_HALF_EVEN)


@dataclass(frozen=True)
class ValueRange:
    """``min_value``..``max_value``, both included; ``max_value`` None: no upper bound."""

    min_value: Decimal
    max_value: Decimal | None


def _to_step(value: Decimal, decimals: int, rounding: str) -> Decimal:
    with decimal.localcontext(_EXACT):
        return value.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)


def unflagged_range(
    *,
    start: Decimal | None,
    micros: int,
    baseline: Baseline,
    factor: Decimal,
    thresholds: Thresholds,
    decimals: int,
    modulus: Decimal | None = None,
    later_value: Decimal | None = None,
) -> ValueRange:
    """The index values, with at most ``decimals`` decimals, that a new reading ``micros`` µs
    after the previous one (which it counts from, ``start``) could take without a flag.

    - No previous reading (``start`` None): any value from 0; no upper bound.
    - Fewer than ``min_intervals`` baseline intervals: no rate flag, only NEGATIVE: from
      ``start``, no upper bound.
    - A baseline of 0: only ``start`` (any consumption would be DEVIATION and SPIKE).
    - Otherwise the consumption ``c = (value − start) × factor`` over ``days`` must keep the
      rate ``c / days`` within ``max(drop, 1 − deviation) × baseline`` and
      ``(1 + deviation) × baseline``, and below ``spike × baseline`` (strictly).

    The bounds are rounded inwards to ``decimals``. The upper bound is further capped at
    ``modulus`` (a counter's ``max_value``: a value past it is refused; the values after a
    rollover are not offered) and, without a modulus, at ``later_value`` (the value of the
    register's next reading: above it, that reading would turn NEGATIVE). A ``min_value``
    above ``max_value`` means that no value of that precision goes unflagged.
    """
    if start is None:
        return ValueRange(Decimal(0), None)
    if baseline.intervals < thresholds.min_intervals:
        return ValueRange(start, None)
    if baseline.consumption == 0:
        return ValueRange(start, start)
    with decimal.localcontext(_EXACT):
        # The consumption at the baseline's rate over this interval, in the index's unit.
        expected = baseline.consumption * micros / baseline.micros / factor
        low = max(thresholds.drop, 1 - thresholds.deviation, Decimal(0)) * expected
        high = (1 + thresholds.deviation) * expected
        spike = thresholds.spike * expected
        min_value = _to_step(start + low, decimals, decimal.ROUND_CEILING)
        if spike <= high:  # the rate must stay strictly below spike × baseline
            max_value = _to_step(start + spike, decimals, decimal.ROUND_CEILING)
            max_value -= Decimal(1).scaleb(-decimals)
        else:
            max_value = _to_step(start + high, decimals, decimal.ROUND_FLOOR)
        if modulus is not None:
            max_value = min(max_value, _to_step(modulus, decimals, decimal.ROUND_FLOOR))
        elif later_value is not None:
            max_value = min(max_value, later_value)
    return ValueRange(min_value, max_value)


# --- period readings (CONTRACT §4.4) ---------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Consumption known for the days ``start_date``..``end_date``, both included."""

    start_date: dt.date
    end_date: dt.date
    consumption: Decimal

    @property
    def days(self) -> int:
        """``end_date − start_date + 1`` (ordinals: no date arithmetic that could overflow)."""
        return self.end_date.toordinal() - self.start_date.toordinal() + 1


def periods_overlap(first: Period, second: Period) -> bool:
    """Whether two periods share a day (both ends are included)."""
    return first.start_date <= second.end_date and second.start_date <= first.end_date


def derive_period_flags(
    periods: Sequence[Period], *, thresholds: Thresholds
) -> list[frozenset[str]]:
    """The anomaly flags (§4.2) of a meter's period readings, given in date order.

    The periods never overlap, so date order is both ``start_date`` and ``end_date`` order. Each
    period is an interval standing at its ``end_date``: ``rate = consumption / days`` with
    ``days = end_date − start_date + 1``; its baseline is ``Σ consumption / Σ days`` of the
    earlier periods (not NEGATIVE) whose ``end_date`` lies within ``baseline_days`` before its
    own, lower bound included. The comparisons are ``rate_flags``'s (lengths in days instead of
    microseconds: the rule only compares ratios). A sliding window keeps it linear.
    """
    results: list[frozenset[str]] = []
    window: deque[tuple[int, int, Decimal]] = deque()  # (end ordinal, days, consumption)
    window_consumption = Decimal(0)
    window_days = 0
    with decimal.localcontext(_EXACT):  # as in derive_series: one exact context for the series
        for period in periods:
            oldest_end = period.end_date.toordinal() - thresholds.baseline_days
            while window and window[0][0] < oldest_end:
                _, old_days, old_consumption = window.popleft()
                window_days -= old_days
                window_consumption -= old_consumption
            days = period.days
            results.append(
                rate_flags(
                    period.consumption,
                    days,
                    window_consumption,
                    window_days,
                    len(window),
                    thresholds,
                )
            )
            if period.consumption >= 0:
                window.append((period.end_date.toordinal(), days, period.consumption))
                window_days += days
                window_consumption += period.consumption
    return results


def period_is_locked(
    start_date: dt.date, locked_until: dt.datetime | None, zone: dt.tzinfo
) -> bool:
    """Whether a closed billing period reaches a period reading (CONTRACT §4.7).

    A period covers ``[start_date 00:00, end_date + 1 day 00:00)`` in the account's time zone.
    It is locked when part of it lies before the lock instant ``locked_until`` (its meter's
    default register's): its consumption then counts in a closed period. One starting at the
    lock instant or later is free.
    """
    if locked_until is None:
        return False
    return dt.datetime.combine(start_date, dt.time.min, tzinfo=zone) < locked_until


# --- consumption over time (CONTRACT §4.5) ---------------------------------------------------
#
# A range of local dates is cut into buckets (day, week from Monday, calendar month or year),
# clipped to the range. Each interval between two index readings, and each period reading, is
# spread over the buckets it overlaps in proportion to time; the part of bucket i is
# round(C × F_i) − round(C × F_{i−1}), F being the interval's elapsed fraction at the bucket's
# end and round() half away from zero at ``SPREAD_DECIMALS`` decimals, so that the parts of an
# interval add up exactly to its consumption. ``readings.selectors`` computes the same in SQL.

GRANULARITIES = ("day", "week", "month", "year")
MAX_BUCKETS = 1000
# The scale of the stored consumption (NUMERIC(38, 18)): a part is a whole number of 10⁻¹⁸.
SPREAD_DECIMALS = 18
# The dates a range may hold: each day's local midnight, and the next day's, must be an instant
# Python can represent in every time zone (years 1 to 9999 in UTC).
FIRST_DAY = dt.date(1, 1, 2)
LAST_DAY = dt.date(9999, 12, 30)


def local_midnight(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    """The instant (UTC) at which ``day`` starts in ``zone``: its local 00:00.

    The same rule as a date-only ``reading_date`` (fold 0): when the clock goes back over
    midnight, the first 00:00; when it jumps over midnight, the instant of the jump.
    """
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone).astimezone(dt.UTC)


def period_start(day: dt.date, granularity: str) -> dt.date:
    """The first day of the calendar period (of ``granularity``) holding ``day``."""
    if granularity == "day":
        return day
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())  # weeks start on Monday
    if granularity == "month":
        return day.replace(day=1)
    if granularity == "year":
        return day.replace(month=1, day=1)
    raise ValueError(f"Unknown granularity {granularity!r}.")


def period_last_day(day: dt.date, granularity: str) -> dt.date:
    """The last day of the calendar period holding ``day``, capped at 9999-12-31."""
    if granularity == "day":
        return day
    if granularity == "week":
        sunday = day.toordinal() + 6 - day.weekday()
        return dt.date.fromordinal(min(sunday, dt.date.max.toordinal()))
    if granularity == "month":
        if day.month == 12:
            return day.replace(day=31)
        return day.replace(month=day.month + 1, day=1) - dt.timedelta(days=1)
    if granularity == "year":
        return day.replace(month=12, day=31)
    raise ValueError(f"Unknown granularity {granularity!r}.")


def bucket_count(start: dt.date, end: dt.date, granularity: str) -> int:
    """How many buckets ``start``..``end`` makes at ``granularity`` (without making them)."""
    if granularity == "day":
        return end.toordinal() - start.toordinal() + 1
    if granularity == "week":
        first, last = period_start(start, "week"), period_start(end, "week")
        return (last.toordinal() - first.toordinal()) // 7 + 1
    if granularity == "month":
        return (end.year - start.year) * 12 + end.month - start.month + 1
    if granularity == "year":
        return end.year - start.year + 1
    raise ValueError(f"Unknown granularity {granularity!r}.")


@dataclass(frozen=True)
class Bucket:
    """The days ``period_start``..``period_end`` (both included) of a consumption range.

    ``start`` and ``end`` are the instants (UTC) it covers, ``[start, end)``: the local
    midnights of ``period_start`` and of the day after ``period_end``.
    """

    period_start: dt.date
    period_end: dt.date
    start: dt.datetime
    end: dt.datetime


def buckets(start: dt.date, end: dt.date, granularity: str, zone: dt.tzinfo) -> list[Bucket]:
    """The calendar periods of ``granularity`` covering ``start``..``end``, clipped to it.

    Days are local to ``zone``: a day runs from local midnight to local midnight (23 or 25
    hours on a change of clock), weeks start on Monday, months and years are the calendar's.
    The first and last buckets are cut at ``start`` and ``end``, so the buckets cover exactly
    ``[start 00:00, end + 1 day 00:00)``. Dates must lie within ``FIRST_DAY``..``LAST_DAY``.
    """
    if end < start:
        return []
    days: list[tuple[dt.date, dt.date]] = []
    first = start
    while True:
        last = min(period_last_day(first, granularity), end)
        days.append((first, last))
        if last >= end:
            break
        first = last + dt.timedelta(days=1)
    bounds = [local_midnight(first, zone) for first, _ in days]
    bounds.append(local_midnight(end + dt.timedelta(days=1), zone))
    return [
        Bucket(first, last, bounds[index], bounds[index + 1])
        for index, (first, last) in enumerate(days)
    ]


def bucket_bounds(ranges: Sequence[Bucket]) -> list[dt.datetime]:
    """The ``n + 1`` instants delimiting ``n`` contiguous buckets."""
    return [bucket.start for bucket in ranges] + [ranges[-1].end] if ranges else []


@dataclass(frozen=True)
class Interval:
    """A consumption known over ``[start, end)``: the interval between two index readings of a
    register (consumption stored on the later one) or a period reading (``is_estimated``: the
    figure itself is an estimate)."""

    start: dt.datetime
    end: dt.datetime
    consumption: Decimal
    is_estimated: bool = False


@dataclass(frozen=True)
class Spread:
    """What the intervals give one bucket: its consumption, and whether part of it is estimated
    (a part of an interval reaching beyond the bucket, or of an estimated interval)."""

    consumption: Decimal
    is_estimated: bool


def consumption_units(consumption: Decimal) -> int:
    """``consumption`` as a whole number of 10⁻¹⁸ (half away from zero beyond 18 decimals)."""
    with decimal.localcontext(_EXACT):
        return int(consumption.scaleb(SPREAD_DECIMALS).to_integral_value(decimal.ROUND_HALF_UP))


def add_units(whole: Decimal, units: int) -> Decimal:
    """``whole`` plus ``units`` × 10⁻¹⁸, exactly."""
    with decimal.localcontext(_EXACT):
        return whole + Decimal(units).scaleb(-SPREAD_DECIMALS)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The sum of ``values`` without rounding (the default context keeps 28 digits)."""
    with decimal.localcontext(_EXACT):
        return sum(values, Decimal(0))


def share_until(units: int, elapsed: int, length: int) -> int:
    """round(units × elapsed / length), half away from zero, in exact integer arithmetic.

    The part of an interval of ``units`` (10⁻¹⁸) and ``length`` µs consumed in its first
    ``elapsed`` µs (0 ≤ elapsed ≤ length).
    """
    magnitude = (2 * abs(units) * elapsed + length) // (2 * length)
    return magnitude if units >= 0 else -magnitude


def spread(intervals: Iterable[Interval], bounds: Sequence[dt.datetime]) -> list[Spread]:
    """Each bucket's consumption: the intervals spread evenly over time (see section comment).

    ``bounds`` are the ``n + 1`` increasing instants of ``n`` contiguous buckets, bucket ``i``
    being ``[bounds[i], bounds[i + 1])``. An interval inside one bucket gives it its whole
    consumption; one that overlaps several gives each its telescoped part and makes them
    estimated. Parts of an interval outside the buckets are left out. Exact: an interval
    inside the buckets gives them exactly its consumption in total.
    """
    count = len(bounds) - 1
    if count < 1:
        return []
    wholes = [Decimal(0)] * count
    units = [0] * count
    estimated = [False] * count
    with decimal.localcontext(_EXACT):
        for interval in intervals:
            if interval.end <= bounds[0] or interval.start >= bounds[-1]:
                continue
            first = max(bisect.bisect_right(bounds, interval.start) - 1, 0)
            last = min(bisect.bisect_left(bounds, interval.end) - 1, count - 1)
            if bounds[first] <= interval.start and interval.end <= bounds[first + 1]:
                wholes[first] += interval.consumption
                estimated[first] = estimated[first] or interval.is_estimated
                continue
            length = (interval.end - interval.start) // _MICROSECOND
            total = consumption_units(interval.consumption)
            elapsed = max(bounds[first] - interval.start, dt.timedelta(0)) // _MICROSECOND
            before = share_until(total, elapsed, length)
            for index in range(first, last + 1):
                elapsed = min(bounds[index + 1] - interval.start, interval.end - interval.start)
                after = share_until(total, elapsed // _MICROSECOND, length)
                units[index] += after - before
                estimated[index] = True
                before = after
        return [
            Spread(wholes[index] + Decimal(units[index]).scaleb(-SPREAD_DECIMALS), estimated[index])
            for index in range(count)
        ]


def readings_per_bucket(
    reading_dates: Iterable[dt.datetime], bounds: Sequence[dt.datetime]
) -> list[int]:
    """How many of ``reading_dates`` fall in each bucket (``[bounds[i], bounds[i + 1])``)."""
    counts = [0] * max(len(bounds) - 1, 0)
    for reading_date in reading_dates:
        index = bisect.bisect_right(bounds, reading_date) - 1
        if 0 <= index < len(counts):
            counts[index] += 1
    return counts


@dataclass(frozen=True)
class IndexReading:
    """A stored index reading as consumption over time sees it: its instant, the consumption
    of the interval it ends (None for a register's first reading), whether it is estimated."""

    reading_date: dt.datetime
    consumption: Decimal | None
    is_estimated: bool = False


@dataclass(frozen=True)
class BucketConsumption:
    consumption: Decimal
    is_estimated: bool
    readings_count: int


def consumption_per_bucket(
    series: Iterable[Sequence[IndexReading]],
    periods: Iterable[Interval],
    bounds: Sequence[dt.datetime],
) -> list[BucketConsumption]:
    """The consumption of each bucket ``[bounds[i], bounds[i + 1])`` (CONTRACT §4.5).

    ``series`` holds each register's readings in date order, from the last one at or before
    ``bounds[0]`` to the first one at or after ``bounds[-1]``; ``periods`` the period readings.
    Each interval between two readings (its consumption stored on the later one) and each
    period reading is spread over time (``spread``). A bucket is estimated when it receives a
    spread part (an interval reaching beyond it), or holds an estimated reading, its two ends
    included (an interval ending or starting there is estimated), or overlaps an estimated
    period reading. ``readings_count`` counts the readings dated in the bucket.
    """
    count = max(len(bounds) - 1, 0)
    intervals: list[Interval] = list(periods)
    dates: list[dt.datetime] = []
    estimated_dates: list[dt.datetime] = []
    for readings in series:
        previous: IndexReading | None = None
        for reading in readings:
            dates.append(reading.reading_date)
            if reading.is_estimated:
                estimated_dates.append(reading.reading_date)
            if previous is not None and reading.consumption is not None:
                intervals.append(
                    Interval(previous.reading_date, reading.reading_date, reading.consumption)
                )
            previous = reading
    parts = spread(intervals, bounds)
    counts = readings_per_bucket(dates, bounds)
    estimated = [part.is_estimated for part in parts]
    for reading_date in estimated_dates:
        # Every bucket whose closed range [start, end] holds the reading.
        for index in range(
            max(bisect.bisect_left(bounds, reading_date) - 1, 0),
            min(bisect.bisect_right(bounds, reading_date), count),
        ):
            estimated[index] = True
    return [
        BucketConsumption(part.consumption, estimated[index], counts[index])
        for index, part in enumerate(parts)
    ]


BALANCE_RATIO_DECIMALS = 6


def balance_difference(main: Decimal, sub_meters: Decimal) -> tuple[Decimal, Decimal | None]:
    """``main − sub_meters`` (common use and losses) and its fraction of ``main``.

    The fraction is rounded half away from zero to ``BALANCE_RATIO_DECIMALS`` decimals; it is
    None when ``main`` is 0 (no consumption to relate the difference to).
    """
    with decimal.localcontext(_EXACT):
        difference = main - sub_meters
        if main == 0:
            return difference, None
        ratio = (difference / main).quantize(
            Decimal(1).scaleb(-BALANCE_RATIO_DECIMALS), rounding=decimal.ROUND_HALF_UP
        )
    return difference, ratio
