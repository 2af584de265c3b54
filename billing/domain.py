"""The billing rules of CONTRACT §5: index at an instant, period parts, prices, allocation and
rounding to the cent.

Pure functions on ``Decimal``, ``Fraction``, dates and dataclasses; the ``compute`` service
loads rows, calls these and writes charges. Money stays exact (``Decimal`` under a wide
context, shares as ``Fraction``) until ``largest_remainder`` rounds the lines of one meter to
the cent, so that they add up exactly to the meter's cost rounded to the cent. The net amounts
and the VAT amounts of a meter's lines are rounded that way each on its own (VAT computed on the
exact net); a line's total is then its amount plus its VAT.

Where the contract is silent:

- ``I(t)``: "within 7 days" includes 7 days exactly; between two billing readings equally far
  from ``t``, the earlier one is used. A value taken from a reading (at ``t`` or a billing
  reading) is estimated only when that reading is; an interpolated value always is.
- ``SHARED`` and ``COLLECTIVE`` meters split their cost by lease *days* (the contract's example:
  ``200 × 2/3 × 15/30``), not by the consumption measured during each lease; an ``INDIVIDUAL``
  meter charges each lease the consumption ``I(b) − I(a)`` of its own days.
- A ``COLLECTIVE`` consumption part whose sub-meters consumed nothing in total is split by the
  basis instead (nothing to weigh by).
"""

from __future__ import annotations

import bisect
import datetime as dt
import decimal
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from readings.domain import add_units, consumption_units, local_midnight, share_until

# Wide enough that sums and products of stored values (38 digits at most) are never rounded.
_EXACT = decimal.Context(prec=120)
_MICROSECOND = dt.timedelta(microseconds=1)

BILLING_READING_WINDOW = dt.timedelta(days=7)

SHARES, SURFACE, EQUAL = "SHARES", "SURFACE", "EQUAL"
ALLOCATION_BASES = (SHARES, SURFACE, EQUAL)


class AllocationError(ValueError):
    """A cost cannot be allocated as asked (no weight at all, a missing surface...): an issue."""


# --- index at an instant (§5 Rules) -----------------------------------------------------------


@dataclass(frozen=True)
class StoredReading:
    """A register's reading as billing reads it: its instant and its stored consumption (None
    for the register's first reading)."""

    reading_date: dt.datetime
    consumption: Decimal | None
    is_billing_reading: bool = False
    is_estimated: bool = False


@dataclass(frozen=True)
class CumulativeReading:
    """A reading with its cumulative index: the running sum of the register's consumptions up
    to it, so rollovers and device replacements are already accounted for. Only differences of
    indexes mean something: the origin (0) is wherever the series was started."""

    reading_date: dt.datetime
    index: Decimal
    is_billing_reading: bool = False
    is_estimated: bool = False


@dataclass(frozen=True)
class IndexAt:
    """``I(t)``: the cumulative index at an instant, whether it is estimated, and the instants
    of the readings it was taken from (one, or the two around ``t`` when interpolated)."""

    index: Decimal
    is_estimated: bool
    reading_dates: tuple[dt.datetime, ...]


@dataclass(frozen=True)
class PeriodConsumption:
    """Consumption over ``[start, end)``: ``index_end − index_start``, in the register's unit."""

    index_start: Decimal
    index_end: Decimal
    consumption: Decimal
    is_estimated: bool


def cumulate(
    readings: Iterable[StoredReading], *, origin: Decimal = Decimal(0)
) -> list[CumulativeReading]:
    """The cumulative index of each reading, given in strictly increasing ``reading_date``.

    The first reading's index is ``origin`` (0 by default); each later one adds its stored
    consumption (a missing one counts 0). The sum is exact.
    """
    series: list[CumulativeReading] = []
    index = origin
    with decimal.localcontext(_EXACT):
        for reading in readings:
            if series and reading.reading_date <= series[-1].reading_date:
                raise ValueError("Readings must be in strictly increasing reading_date order.")
            if series and reading.consumption is not None:
                index += reading.consumption
            series.append(
                CumulativeReading(
                    reading.reading_date,
                    index,
                    reading.is_billing_reading,
                    reading.is_estimated,
                )
            )
    return series


def _reading_date(reading: CumulativeReading) -> dt.datetime:
    return reading.reading_date


def _nearest_billing_reading(
    readings: Sequence[CumulativeReading], position: int, instant: dt.datetime
) -> CumulativeReading | None:
    """The billing reading nearest ``instant`` within ``BILLING_READING_WINDOW`` (bounds
    included), the earlier one on a tie; ``position`` is where ``instant`` would be inserted."""
    before = None
    for index in range(position - 1, -1, -1):
        reading = readings[index]
        if instant - reading.reading_date > BILLING_READING_WINDOW:
            break
        if reading.is_billing_reading:
            before = reading
            break
    after = None
    for index in range(position, len(readings)):
        reading = readings[index]
        if reading.reading_date - instant > BILLING_READING_WINDOW:
            break
        if reading.is_billing_reading:
            after = reading
            break
    if before is None or after is None:
        return before or after
    if after.reading_date - instant < instant - before.reading_date:
        return after
    return before


def index_at(readings: Sequence[CumulativeReading], instant: dt.datetime) -> IndexAt | None:
    """``I(t)`` of a register whose readings are given in strictly increasing date order.

    In this order: the index of the reading at ``t``; else that of the nearest billing reading
    within 7 days of ``t`` (before or after, 7 days included, the earlier on a tie); else the
    linear interpolation in time (microseconds) between the readings just before and just
    after ``t``, estimated. The interpolated part ``(I₁ − I₀) × elapsed / length`` is rounded
    half away from zero to 18 decimals, the rule of ``readings.domain.spread`` (§4.5), so a
    consumption spread over buckets and one billed over a period agree. None when there is no
    reading on one side: an issue for the caller.

    ``I(t)`` depends on ``t`` only, so ``I(b) − I(a)`` over adjacent periods add up.
    """
    position = bisect.bisect_left(readings, instant, key=_reading_date)
    if position < len(readings) and readings[position].reading_date == instant:
        reading = readings[position]
        return IndexAt(reading.index, reading.is_estimated, (reading.reading_date,))
    billing = _nearest_billing_reading(readings, position, instant)
    if billing is not None:
        return IndexAt(billing.index, billing.is_estimated, (billing.reading_date,))
    if position == 0 or position == len(readings):
        return None
    before, after = readings[position - 1], readings[position]
    length = (after.reading_date - before.reading_date) // _MICROSECOND
    elapsed = (instant - before.reading_date) // _MICROSECOND
    with decimal.localcontext(_EXACT):
        units = consumption_units(after.index - before.index)
    index = add_units(before.index, share_until(units, elapsed, length))
    return IndexAt(index, True, (before.reading_date, after.reading_date))


def consumption_over(
    readings: Sequence[CumulativeReading], start: dt.datetime, end: dt.datetime
) -> PeriodConsumption | None:
    """Consumption over ``[start, end)``: ``I(end) − I(start)`` (None when either is None).

    Estimated when either index is.
    """
    first, last = index_at(readings, start), index_at(readings, end)
    if first is None or last is None:
        return None
    with decimal.localcontext(_EXACT):
        consumption = last.index - first.index
    return PeriodConsumption(
        first.index, last.index, consumption, first.is_estimated or last.is_estimated
    )


def consumption_over_days(
    readings: Sequence[CumulativeReading],
    start_date: dt.date,
    end_date: dt.date,
    zone: dt.tzinfo,
) -> PeriodConsumption | None:
    """Consumption of the days ``start_date``..``end_date`` (both included) in ``zone``: over
    ``[start_date 00:00, end_date + 1 day 00:00)``, local midnights as ``local_midnight``."""
    return consumption_over(
        readings,
        local_midnight(start_date, zone),
        local_midnight(end_date + dt.timedelta(days=1), zone),
    )


# --- tariffs and period parts ---------------------------------------------------------------


@dataclass(frozen=True)
class LeaseTerm:
    """A lease's days: ``start_date`` to ``end_date`` (both included; None: ongoing)."""

    lease_id: int
    start_date: dt.date
    end_date: dt.date | None = None


@dataclass(frozen=True)
class TariffTerm:
    """A tariff and its validity ``valid_from``..``valid_to`` (both included; None: open).

    ``unit_price`` per unit of consumption, ``standing_charge_per_day`` per day, ``vat_rate`` a
    fraction (0.20 is 20 %). ``tariff_slot`` None serves any register.
    """

    tariff_id: int
    unit_price: Decimal
    valid_from: dt.date
    valid_to: dt.date | None = None
    standing_charge_per_day: Decimal = Decimal(0)
    vat_rate: Decimal = Decimal(0)
    tariff_slot: str | None = None


@dataclass(frozen=True)
class PeriodPart:
    """The days ``start_date``..``end_date`` (both included) of a period with one lease (None:
    vacancy) and one tariff (None: no tariff valid then, an issue)."""

    start_date: dt.date
    end_date: dt.date
    lease: LeaseTerm | None
    tariff: TariffTerm | None

    @property
    def days(self) -> int:
        """``end_date − start_date + 1``."""
        return self.end_date.toordinal() - self.start_date.toordinal() + 1

    @property
    def is_vacancy(self) -> bool:
        return self.lease is None


def _covers(start: dt.date, end: dt.date | None, ordinal: int) -> bool:
    return start.toordinal() <= ordinal and (end is None or ordinal <= end.toordinal())


def tariffs_by_priority(
    *,
    meter_tariff: TariffTerm | None,
    account_tariffs: Iterable[TariffTerm],
    tariff_slot: str | None,
) -> list[TariffTerm]:
    """The tariffs that may serve a register, the one to use on a day being the first valid.

    The meter's own tariff comes first (used whenever valid); then the account's tariffs (of the
    meter's type: the caller filters) whose slot is the register's, then those without slot
    (they serve any register). Within each group a later ``valid_from`` comes first, so a new
    tariff overrides an older one left open; then the given order.
    """
    candidates = list(account_tariffs)
    same_slot = [t for t in candidates if tariff_slot is not None and t.tariff_slot == tariff_slot]
    any_slot = [t for t in candidates if t.tariff_slot is None]

    def newest_first(tariffs: list[TariffTerm]) -> list[TariffTerm]:
        return sorted(tariffs, key=lambda tariff: -tariff.valid_from.toordinal())

    ordered = newest_first(same_slot) + newest_first(any_slot)
    return ([meter_tariff] if meter_tariff is not None else []) + ordered


def tariff_on(day: dt.date, tariffs: Sequence[TariffTerm]) -> TariffTerm | None:
    """The first of ``tariffs`` (in priority order) valid on ``day``, or None."""
    ordinal = day.toordinal()
    for tariff in tariffs:
        if _covers(tariff.valid_from, tariff.valid_to, ordinal):
            return tariff
    return None


def split_period(
    start_date: dt.date,
    end_date: dt.date,
    *,
    leases: Sequence[LeaseTerm] = (),
    tariffs: Sequence[TariffTerm] = (),
) -> list[PeriodPart]:
    """The days ``start_date``..``end_date`` cut at lease starts and ends and tariff changes.

    Each part has one lease (None: vacancy, days without a lease) and one tariff, the first of
    ``tariffs`` (priority order, see ``tariffs_by_priority``) valid on its days (None when
    none is). Adjacent days with the same lease and tariff make one part; the parts cover the
    period exactly, in date order. ``leases`` are those of one estate: overlapping leases are
    an error. Without tariffs the parts are the occupancy of the estate.
    """
    first, last = start_date.toordinal(), end_date.toordinal()
    if last < first:
        raise ValueError("A period ends on or after its start.")
    cuts = {first}
    for lease in leases:
        cuts.add(lease.start_date.toordinal())
        if lease.end_date is not None:
            cuts.add(lease.end_date.toordinal() + 1)
    for tariff in tariffs:
        cuts.add(tariff.valid_from.toordinal())
        if tariff.valid_to is not None:
            cuts.add(tariff.valid_to.toordinal() + 1)
    starts = sorted(cut for cut in cuts if first <= cut <= last)
    parts: list[PeriodPart] = []
    for index, part_start in enumerate(starts):
        part_end = starts[index + 1] - 1 if index + 1 < len(starts) else last
        active = [
            lease for lease in leases if _covers(lease.start_date, lease.end_date, part_start)
        ]
        if len(active) > 1:
            raise ValueError("Two leases of one estate overlap.")
        lease = active[0] if active else None
        tariff = tariff_on(dt.date.fromordinal(part_start), tariffs)
        first_day = dt.date.fromordinal(part_start)
        if parts and parts[-1].lease == lease and parts[-1].tariff == tariff:
            first_day = parts.pop().start_date  # the same lease and tariff go on
        parts.append(PeriodPart(first_day, dt.date.fromordinal(part_end), lease, tariff))
    return parts


# --- pricing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartPrice:
    """The exact price of a part, in the tariff's currency: ``net`` (consumption and standing
    charge), ``vat`` on it, and ``total = net + vat``. Not rounded."""

    consumption_amount: Decimal
    standing_amount: Decimal
    net: Decimal
    vat: Decimal
    total: Decimal


def price_part(*, consumption: Decimal, days: int, tariff: TariffTerm) -> PartPrice:
    """``consumption × unit_price + days × standing_charge_per_day`` = net; VAT = net ×
    ``vat_rate``. Exact: the rounding to the cent happens once, over a meter's lines."""
    with decimal.localcontext(_EXACT):
        consumption_amount = consumption * tariff.unit_price
        standing_amount = days * tariff.standing_charge_per_day
        net = consumption_amount + standing_amount
        vat = net * tariff.vat_rate
        return PartPrice(consumption_amount, standing_amount, net, vat, net + vat)


# --- rounding to the cent -------------------------------------------------------------------


def _round_half_away(value: Fraction) -> int:
    """``value`` rounded to an integer, half away from zero."""
    magnitude = (2 * abs(value.numerator) + value.denominator) // (2 * value.denominator)
    return magnitude if value >= 0 else -magnitude


def round_to_cent(amount: Decimal | Fraction) -> Decimal:
    """``amount`` to the cent, half away from zero."""
    return Decimal(_round_half_away(Fraction(amount) * 100)).scaleb(-2)


def largest_remainder(amounts: Sequence[Decimal | Fraction]) -> list[Decimal]:
    """The exact ``amounts`` of a meter's lines rounded to the cent so that they add up to their
    exact sum rounded to the cent (half away from zero).

    Each line is first cut down to the cent; the cents still missing go one each to the lines
    with the largest remainders, ties to the earlier line. A line already in whole cents is
    never changed, and each line differs from its exact amount by less than a cent. A negative
    sum (a credit) is rounded as the mirror image of the same charge: magnitudes are cut down
    and the missing cents added to them, so a credit and its charge cancel line by line.
    """
    cents = [Fraction(amount) * 100 for amount in amounts]
    sign = -1 if sum(cents, Fraction(0)) < 0 else 1
    magnitudes = [sign * cent for cent in cents]
    target = _round_half_away(sum(magnitudes, Fraction(0)))
    rounded = [math.floor(magnitude) for magnitude in magnitudes]
    missing = target - sum(rounded)  # 0 ≤ missing ≤ number of lines with a remainder
    by_remainder = sorted(
        range(len(magnitudes)), key=lambda line: (rounded[line] - magnitudes[line], line)
    )
    for line in by_remainder[:missing]:
        rounded[line] += 1
    return [Decimal(sign * cent).scaleb(-2) for cent in rounded]


def split_amount(total: Decimal | Fraction, shares: Sequence[Fraction]) -> list[Decimal]:
    """``total`` split by ``shares`` (fractions adding up to exactly 1), to the cent: the lines
    are ``largest_remainder`` of ``total × share``, so they add up to ``total`` rounded to the
    cent."""
    if sum(shares, Fraction(0)) != 1:
        raise ValueError("Shares must add up to exactly 1.")
    exact = Fraction(total)
    return largest_remainder([exact * share for share in shares])


# --- allocation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EstateBasis:
    """What a ``COLLECTIVE`` allocation knows of an estate: its ``shares`` (tantièmes), its
    ``surface_m2`` and the consumption of its sub-meters of the collective meter."""

    estate_id: int
    shares: int = 0
    surface_m2: Decimal | None = None
    sub_meter_consumption: Decimal = Decimal(0)


@dataclass(frozen=True)
class Allocation:
    """One line's part of a meter's cost: an estate's lease (None: vacancy, the owner's share)
    over ``start_date``..``end_date``. ``share = estate_share × days / period_days``."""

    estate_id: int
    lease: LeaseTerm | None
    start_date: dt.date
    end_date: dt.date
    days: int
    period_days: int
    estate_share: Fraction
    share: Fraction

    @property
    def is_vacancy(self) -> bool:
        return self.lease is None


def _normalised(weights: Mapping[int, Fraction]) -> dict[int, Fraction]:
    total = sum(weights.values(), Fraction(0))
    if total == 0:
        raise AllocationError("No estate has any weight to allocate by.")
    return {estate: weight / total for estate, weight in weights.items()}


def shares_by_ratio(ratios: Mapping[int, Decimal]) -> dict[int, Fraction]:
    """A ``SHARED`` meter's split over estates: ``ratio / Σ ratio`` (ratios > 0), exact."""
    if not ratios:
        raise AllocationError("The shared meter has no share.")
    if any(ratio <= 0 for ratio in ratios.values()):
        raise ValueError("A share's ratio is greater than 0.")
    return _normalised({estate: Fraction(ratio) for estate, ratio in ratios.items()})


def _basis_weight(estate: EstateBasis, basis: str) -> Fraction:
    if basis == SHARES:
        return Fraction(estate.shares)
    if basis == SURFACE:
        if estate.surface_m2 is None:
            raise AllocationError(f"Estate {estate.estate_id} has no surface.")
        return Fraction(estate.surface_m2)
    if basis == EQUAL:
        return Fraction(1)
    raise ValueError(f"Unknown allocation basis {basis!r}.")


def collective_shares(
    estates: Sequence[EstateBasis],
    *,
    basis: str,
    consumption_part_percent: Decimal = Decimal(0),
) -> dict[int, Fraction]:
    """A ``COLLECTIVE`` meter's split over its place's estates, exact, adding up to 1.

    With ``p = consumption_part_percent / 100``: ``p × c / Σc + (1 − p) × w / Σw``, ``c`` being
    an estate's sub-meter consumption and ``w`` its weight by ``basis`` (``SHARES``: its
    shares, ``SURFACE``: its surface in m², ``EQUAL``: 1). When the sub-meters consumed
    nothing in total, the consumption part is split by the basis too. A missing surface, a
    negative consumption or no weight at all is an ``AllocationError``.
    """
    if not estates:
        raise AllocationError("The place has no estate.")
    part = Fraction(consumption_part_percent) / 100
    if not 0 <= part <= 1:
        raise ValueError("consumption_part_percent is between 0 and 100.")
    by_basis = _normalised({estate.estate_id: _basis_weight(estate, basis) for estate in estates})
    if part == 0:
        return by_basis
    if any(estate.sub_meter_consumption < 0 for estate in estates):
        raise AllocationError("A sub-meter's consumption is negative.")
    consumed = {estate.estate_id: Fraction(estate.sub_meter_consumption) for estate in estates}
    by_consumption = by_basis if sum(consumed.values()) == 0 else _normalised(consumed)
    return {
        estate: part * by_consumption[estate] + (1 - part) * by_basis[estate] for estate in by_basis
    }


def allocate_by_lease_days(
    start_date: dt.date,
    end_date: dt.date,
    *,
    estate_shares: Mapping[int, Fraction],
    leases: Mapping[int, Sequence[LeaseTerm]],
) -> list[Allocation]:
    """Each estate's share of ``start_date``..``end_date`` split by the days of its leases.

    A lease's share is ``estate_share × lease days / period days``; days without a lease make
    vacancy lines (the owner's share). Lines come estate by estate in ``estate_shares`` order,
    each estate's in date order; their shares add up to ``Σ estate_share``.
    """
    period_days = end_date.toordinal() - start_date.toordinal() + 1
    lines: list[Allocation] = []
    for estate, estate_share in estate_shares.items():
        for part in split_period(start_date, end_date, leases=leases.get(estate, ())):
            lines.append(
                Allocation(
                    estate_id=estate,
                    lease=part.lease,
                    start_date=part.start_date,
                    end_date=part.end_date,
                    days=part.days,
                    period_days=period_days,
                    estate_share=estate_share,
                    share=estate_share * Fraction(part.days, period_days),
                )
            )
    return lines
