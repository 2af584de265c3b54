"""The consumption chain and anomaly flags of a register's series (CONTRACT §4.1, §4.2).

Pure functions on ``Decimal`` and datetimes: the readings engine, the importer and the tests
all derive a series with ``derive_series``, so "what a fresh in-order computation gives" has
one definition. Comparisons are exact: rates are compared by cross-multiplying consumptions
with interval lengths counted in microseconds, under a context precise enough for every value
the database can hold.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import deque
from collections.abc import Sequence
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


@dataclass(frozen=True)
class Point:
    """One reading of a register: its instant and its index value."""

    reading_date: dt.datetime
    value: Decimal


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
        if value >= previous:
            return (value - previous) * factor, False
        if max_value is not None:
            return (max_value - previous + value) * factor, True
        return (value - previous) * factor, False


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
    """
    if consumption < 0:
        return frozenset({NEGATIVE})
    if baseline_intervals < thresholds.min_intervals:
        return NO_FLAGS
    if baseline_consumption == 0:
        return frozenset({DEVIATION, SPIKE}) if consumption > 0 else NO_FLAGS
    with decimal.localcontext(_EXACT):
        rate = consumption * baseline_micros
        baseline = baseline_consumption * micros
        flags = set()
        if abs(rate - baseline) > thresholds.deviation * baseline:
            flags.add(DEVIATION)
        if rate >= thresholds.spike * baseline:
            flags.add(SPIKE)
        if rate < thresholds.drop * baseline:
            flags.add(DROP)
    return frozenset(flags)


def derive_series(
    points: Sequence[Point],
    *,
    factor: Decimal,
    max_value: Decimal | None,
    thresholds: Thresholds,
    since: dt.datetime | None = None,
) -> list[Derived | None]:
    """The chain and flags of a register's readings, given in ``reading_date`` order.

    The first point has no previous value. Each later point's baseline is made of the earlier
    intervals (not NEGATIVE) that end within ``baseline_days`` before it, lower bound included;
    a sliding window keeps the whole computation linear in the number of points.

    With ``since``, points dated before it only feed the baselines and their result is None:
    the engine re-derives the end of a series and needs the earlier points for nothing else.
    """
    results: list[Derived | None] = []
    window: deque[tuple[dt.datetime, int, Decimal]] = deque()  # (end, µs, consumption)
    window_consumption = Decimal(0)
    window_micros = 0
    span = thresholds.baseline_span
    previous: Point | None = None
    for point in points:
        if previous is None:
            first = since is None or point.reading_date >= since
            results.append(Derived(None, None, False, NO_FLAGS) if first else None)
            previous = point
            continue
        consumption, is_rollover = consumption_between(
            previous.value, point.value, factor=factor, max_value=max_value
        )
        micros = (point.reading_date - previous.reading_date) // _MICROSECOND
        oldest_end = point.reading_date - span
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
            results.append(Derived(previous.value, consumption, is_rollover, flags))
        if consumption >= 0:
            window.append((point.reading_date, micros, consumption))
            window_micros += micros
            with decimal.localcontext(_EXACT):
                window_consumption += consumption
        previous = point
    return results
