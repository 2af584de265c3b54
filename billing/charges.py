"""Computing and closing billing periods (CONTRACT §5): the writes of ``compute`` and ``close``.

``compute_period`` loads what a period needs in a fixed number of queries whatever the number
of meters, leases or readings (``_load``), applies the rules of ``billing.domain`` meter by
meter (``_Calculation``) and writes the charges with one ``bulk_create``. ``close_period``
computes again, then freezes the charges and locks the readings they used through the readings
engine's lock services.

Where the contract is silent (see also ``billing.domain``):

- The meters of a period are its place's meters, and the sub-meters of its ``COLLECTIVE``
  meters wherever they are. A ``DECOMMISSIONED`` meter with nothing at or after the period's
  start is left out.
- ``billing_direction`` null counts as ``ACCREC`` (consumption × tariff). ``ACCPAY`` meters
  recover their utility bills (period readings): each bill's ``cost`` and ``consumption`` are
  spread evenly over its days; the cost is recovered as billed (VAT included: ``vat_amount``
  0) and days of the period no bill covers are an issue.
- Registers: the ``CONSUMPTION`` registers that have readings; a meter without index readings
  is measured by its bills (default register). A register's ``conversion_factor`` ≠ 1 turns
  the measured volume into energy: the line's consumption is in kWh.
- ``COLLECTIVE`` meters are split over the place's estates except those of usage ``COMMON``;
  without an allocation rule they are split by shares, and that is an issue to confirm.
- ``INCLUDED`` meters give informational lines (amount 0) per lease: an estate's meter for
  its leases, a place's meter (an estate-less one, e.g. solar production) for every lease of
  the place, with the meter's whole consumption over the lease's days. They raise no issue.
- ``index_start``/``index_end`` are the register's cumulative index in its consumption unit,
  starting from the value of the first reading loaded (so the dial's value when the multiplier
  is 1 and the counter has not rolled over since): ``index_end − index_start`` is the meter's
  consumption over the line's days.
"""

from __future__ import annotations

import datetime as dt
import decimal
import zoneinfo
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from billing import domain
from billing.models import AllocationRule, BillingPeriod, Charge, Lease, Tariff
from metering import domain as metering_domain
from metering.errors import Conflict
from metering.models import Estate, Meter, Register
from readings import periods as readings_periods
from readings import services as readings_services
from readings.domain import local_midnight
from readings.models import PeriodReading, Reading

_EXACT = decimal.Context(prec=120)
_QUANTUM = Decimal(1).scaleb(-18)
_SHARE_QUANTUM = Decimal(1).scaleb(-12)
_MILLI = Decimal("0.001")
_ENERGY_UNIT = "kWh"


def _decimal(value: Fraction | Decimal, quantum: Decimal = _QUANTUM) -> Decimal:
    """``value`` rounded half away from zero to ``quantum`` (18 decimals by default)."""
    if isinstance(value, Decimal):
        with decimal.localcontext(_EXACT):
            return value.quantize(quantum, rounding=decimal.ROUND_HALF_UP)
    with decimal.localcontext(_EXACT):
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(quantum, rounding=decimal.ROUND_HALF_UP)


def _days(start: dt.date, end: dt.date) -> int:
    return end.toordinal() - start.toordinal() + 1


def _ratio_text(value: Decimal | int | None) -> str:
    """A decimal as people write it: ``120``, ``45.5`` (no exponent, no trailing zeros)."""
    if value is None:
        return "?"
    return format(Decimal(value).normalize(), "f")


def converted(register: Register | None) -> str:
    """What a line's basis adds when its register converts volume to energy."""
    if register is None or register.conversion_factor == 1:
        return ""
    unit = register.unit or register.meter.unit
    factor = _ratio_text(register.conversion_factor)
    return f"; index in {unit}, × {factor} {_ENERGY_UNIT}/{unit}"


# --- what a period needs, loaded ------------------------------------------------------------


@dataclass
class _Inputs:
    period: BillingPeriod
    zone: zoneinfo.ZoneInfo
    meters: list[Meter]
    estates: list[Estate]
    leases_by_estate: dict[int, list[Lease]]
    readings: dict[int, list[domain.CumulativeReading]]  # by register id
    bills: dict[int, list[PeriodReading]]  # by meter id, in date order
    tariffs: dict[str, list[Tariff]]  # by meter type


def _period_meters(period: BillingPeriod) -> list[Meter]:
    in_place = Q(place_id=period.place_id) | Q(
        parent_meter__place_id=period.place_id, parent_meter__billing_type="COLLECTIVE"
    )
    return list(
        Meter.objects.filter(in_place, account_id=period.account_id)
        .select_related("tariff")
        .prefetch_related("registers", "shares")
        .order_by("serial_number", "pk")
    )


def _load_readings(
    registers: Sequence[Register], lower: dt.datetime, upper: dt.datetime
) -> dict[int, list[domain.CumulativeReading]]:
    """Each register's readings in ``[lower, upper]`` with the one just before and the one just
    after, cumulated from the first one's value × multiplier × transformer ratio. Three
    queries."""
    ids = [register.pk for register in registers]
    around = Reading.objects.filter(register_id=OuterRef("pk")).order_by()
    neighbours = Register.objects.filter(pk__in=ids).annotate(
        before=Subquery(
            around.filter(reading_date__lt=lower).order_by("-reading_date").values("pk")[:1]
        ),
        after=Subquery(
            around.filter(reading_date__gt=upper).order_by("reading_date").values("pk")[:1]
        ),
    )
    neighbour_ids = [
        pk for row in neighbours.values_list("before", "after") for pk in row if pk is not None
    ]
    rows = Reading.objects.filter(
        Q(register_id__in=ids, reading_date__gte=lower, reading_date__lte=upper)
        | Q(pk__in=neighbour_ids)
    ).values_list(
        "register_id",
        "reading_date",
        "value",
        "consumption",
        "is_billing_reading",
        "is_estimated",
    )
    by_register: dict[int, list[tuple]] = defaultdict(list)
    for row in rows.order_by("register_id", "reading_date"):
        by_register[row[0]].append(row)
    factors = {register.pk: register.transformer_ratio for register in registers}
    multipliers = {register.pk: register.meter.multiplier for register in registers}
    series = {}
    for register_id, register_rows in by_register.items():
        with decimal.localcontext(_EXACT):
            origin = register_rows[0][2] * multipliers[register_id] * factors[register_id]
        series[register_id] = domain.cumulate(
            (
                domain.StoredReading(date, consumption, billing, estimated)
                for _, date, _, consumption, billing, estimated in register_rows
            ),
            origin=origin,
        )
    return series


def _load(period: BillingPeriod) -> _Inputs:
    zone = zoneinfo.ZoneInfo(period.account.timezone)
    start = local_midnight(period.start_date, zone)
    end = local_midnight(period.end_date + dt.timedelta(days=1), zone)
    meters = _period_meters(period)
    registers = []
    for meter in meters:
        for register in meter.registers.all():
            register.meter = meter
            registers.append(register)
    window = domain.BILLING_READING_WINDOW
    readings = _load_readings(registers, start - window, end + window)
    bills: dict[int, list[PeriodReading]] = defaultdict(list)
    for bill in PeriodReading.objects.filter(
        meter_id__in=[meter.pk for meter in meters],
        start_date__lte=period.end_date,
        end_date__gte=period.start_date,
    ).order_by("meter_id", "start_date"):
        bills[bill.meter_id].append(bill)
    tariffs: dict[str, list[Tariff]] = defaultdict(list)
    for tariff in Tariff.objects.filter(
        account_id=period.account_id, meter_type__in={meter.meter_type for meter in meters}
    ).order_by("pk"):
        tariffs[tariff.meter_type].append(tariff)
    estates = list(Estate.objects.filter(place_id=period.place_id).order_by("code", "pk"))
    leases_by_estate: dict[int, list[Lease]] = defaultdict(list)
    for lease in (
        Lease.objects.filter(estate__place_id=period.place_id)
        .during(period.start_date, period.end_date)
        .select_related("tenant")
        .order_by("start_date", "pk")
    ):
        leases_by_estate[lease.estate_id].append(lease)
    rules = {
        rule.meter_id: rule
        for rule in AllocationRule.objects.filter(meter_id__in=[meter.pk for meter in meters])
    }
    for meter in meters:
        meter.rule = rules.get(meter.pk)
    return _Inputs(period, zone, meters, estates, leases_by_estate, readings, bills, tariffs)


# --- the calculation ------------------------------------------------------------------------


def _term(tariff: Tariff) -> domain.TariffTerm:
    return domain.TariffTerm(
        tariff_id=tariff.pk,
        unit_price=tariff.unit_price,
        valid_from=tariff.valid_from,
        valid_to=tariff.valid_to,
        standing_charge_per_day=tariff.standing_charge_per_day,
        vat_rate=tariff.vat_rate,
        tariff_slot=tariff.tariff_slot,
    )


def _lease_term(lease: Lease) -> domain.LeaseTerm:
    return domain.LeaseTerm(lease.pk, lease.start_date, lease.end_date)


@dataclass(frozen=True)
class _Measure:
    """A register's consumption over some days (in the billed unit) and where it came from."""

    consumption: Decimal
    index_start: Decimal | None
    index_end: Decimal | None
    is_estimated: bool


@dataclass
class _Line:
    """A charge before rounding: exact net and VAT."""

    meter: Meter
    register: Register | None
    tariff: domain.TariffTerm | None
    lease: Lease | None
    estate_id: int | None
    start_date: dt.date
    end_date: dt.date
    measure: _Measure | None
    consumption: Decimal | None
    unit: str
    net: Fraction
    vat: Fraction
    basis: str
    share: Fraction | None = None  # None: computed from the amounts
    is_included: bool = False


@dataclass
class Calculation:
    """A period's charges (unsaved), issues, and what they used: readings to lock per register
    (the latest instant) and utility bills."""

    charges: list[Charge] = field(default_factory=list)
    issues: list[dict] = field(default_factory=list)
    used_readings: dict[int, dt.datetime] = field(default_factory=dict)
    used_bills: set[int] = field(default_factory=set)


class _Calculation:
    def __init__(self, inputs: _Inputs):
        self.inputs = inputs
        self.period = inputs.period
        self.result = Calculation()
        self.leases = {
            estate: [_lease_term(lease) for lease in leases]
            for estate, leases in inputs.leases_by_estate.items()
        }
        self.lease_by_id = {
            lease.pk: lease for leases in inputs.leases_by_estate.values() for lease in leases
        }
        by_id = {meter.pk: meter for meter in inputs.meters}
        devices = {}
        for meter in inputs.meters:
            parent = by_id.get(meter.parent_meter_id)
            rule = getattr(parent, "rule", None)
            if (
                parent is not None
                and parent.billing_type == "COLLECTIVE"
                and rule is not None
                and rule.consumption_part_percent > 0
            ):
                devices[meter.pk] = parent.pk
        self.devices = devices  # allocation device → its collective meter

    # --- issues and measures --------------------------------------------------------------

    def issue(self, code: str, meter: Meter, message: str, register: Register | None = None):
        entry = {
            "code": code,
            "meter_id": meter.pk,
            "serial_number": meter.serial_number,
            "register_id": register.pk if register is not None else None,
            "message": message,
        }
        if entry not in self.result.issues:
            self.result.issues.append(entry)

    def in_use(self, meter: Meter, *, all_directions: bool = False) -> list[Register]:
        """The meter's registers with index readings (consumption ones unless asked)."""
        return [
            register
            for register in sorted(meter.registers.all(), key=lambda r: (not r.is_default, r.code))
            if register.pk in self.inputs.readings
            and (all_directions or register.direction == "CONSUMPTION")
        ]

    def unit(self, meter: Meter, register: Register | None) -> str:
        if register is not None and register.conversion_factor != 1:
            return _ENERGY_UNIT
        return (register.unit if register is not None else "") or meter.unit

    def measure(
        self, meter: Meter, register: Register, start: dt.date, end: dt.date, *, report=True
    ) -> _Measure | None:
        """``I(b) − I(a)`` over the days ``start``..``end`` (× conversion factor); None, with
        an issue, when a side has no reading."""
        readings = self.inputs.readings[register.pk]
        zone = self.inputs.zone
        first = domain.index_at(readings, local_midnight(start, zone))
        last = domain.index_at(readings, local_midnight(end + dt.timedelta(days=1), zone))
        if first is None or last is None:
            if report:
                side = start if first is None else end + dt.timedelta(days=1)
                where = (
                    "before" if readings[0].reading_date > local_midnight(side, zone) else "after"
                )
                self.issue(
                    "missing_readings",
                    meter,
                    f"Register {register.code}: no reading {where} {side:%Y-%m-%d} 00:00 to "
                    f"measure {start:%Y-%m-%d}..{end:%Y-%m-%d}.",
                    register,
                )
            return None
        for index in (first, last):
            latest = max(index.reading_dates)
            used = self.result.used_readings.get(register.pk)
            if used is None or latest > used:
                self.result.used_readings[register.pk] = latest
        with decimal.localcontext(_EXACT):
            consumption = (last.index - first.index) * register.conversion_factor
        return _Measure(
            consumption, first.index, last.index, first.is_estimated or last.is_estimated
        )

    def billed(
        self, meter: Meter, start: dt.date, end: dt.date, *, report=True
    ) -> tuple[Fraction, Fraction | None, bool] | None:
        """The meter's bills over ``start``..``end``, each spread evenly over its days:
        (consumption, cost — None when a bill has none, estimated). None with an issue when
        some day has no bill."""
        bills = self.inputs.bills.get(meter.pk, [])
        consumption, cost, covered, estimated = Fraction(0), Fraction(0), 0, False
        for bill in bills:
            first = max(bill.start_date, start)
            last = min(bill.end_date, end)
            if first > last:
                continue
            part = Fraction(_days(first, last), _days(bill.start_date, bill.end_date))
            covered += _days(first, last)
            consumption += Fraction(bill.consumption) * part
            cost = None if cost is None or bill.cost is None else cost + Fraction(bill.cost) * part
            estimated = estimated or bill.is_estimated
            self.result.used_bills.add(bill.pk)
        if covered < _days(start, end):
            if report:
                self.issue(
                    "missing_bills",
                    meter,
                    f"Utility bills cover {covered} of the {_days(start, end)} days "
                    f"{start:%Y-%m-%d}..{end:%Y-%m-%d}.",
                )
            return None
        return consumption, cost, estimated

    def tariffs(self, meter: Meter, register: Register | None) -> list[domain.TariffTerm]:
        return domain.tariffs_by_priority(
            meter_tariff=_term(meter.tariff) if meter.tariff_id else None,
            account_tariffs=[_term(t) for t in self.inputs.tariffs.get(meter.meter_type, [])],
            tariff_slot=register.tariff_slot if register is not None else None,
        )

    def price(
        self, meter: Meter, register: Register | None, part: domain.PeriodPart, consumption: Decimal
    ) -> domain.PartPrice:
        if part.tariff is None:
            code = register.code if register is not None else "default"
            self.issue(
                "no_tariff",
                meter,
                f"Register {code}: no {meter.meter_type} tariff is valid on "
                f"{part.start_date:%Y-%m-%d}..{part.end_date:%Y-%m-%d}; priced at 0.",
                register,
            )
            zero = domain.TariffTerm(0, Decimal(0), part.start_date)
            return domain.price_part(consumption=consumption, days=part.days, tariff=zero)
        return domain.price_part(consumption=consumption, days=part.days, tariff=part.tariff)

    # --- meters -------------------------------------------------------------------------------

    def run(self) -> Calculation:
        for meter in self.inputs.meters:
            if meter.pk in self.devices or not self.billable(meter):
                continue
            lines = self.meter_lines(meter)
            self.write(meter, lines)
        return self.result

    def billable(self, meter: Meter) -> bool:
        if meter.place_id != self.period.place_id:
            return False  # a sub-meter elsewhere: only an allocation device is of use
        if meter.status != "DECOMMISSIONED":
            return True
        start = local_midnight(self.period.start_date, self.inputs.zone)
        return any(
            readings[-1].reading_date >= start
            for register in meter.registers.all()
            if (readings := self.inputs.readings.get(register.pk))
        ) or bool(self.inputs.bills.get(meter.pk))

    def meter_lines(self, meter: Meter) -> list[_Line]:
        if meter.billing_type == "INCLUDED":
            return self.included_lines(meter)
        if meter.billing_type == "INDIVIDUAL" and meter.estate_id is None:
            return []  # nothing to bill it to: a building's meter left INDIVIDUAL
        if meter.billing_direction == "ACCPAY":
            return self.recovered_lines(meter)
        registers = self.in_use(meter)
        if not registers:
            if self.inputs.bills.get(meter.pk):
                return self.metered_lines(meter, [None])
            self.issue("missing_readings", meter, "The meter has no readings nor bills.")
            return []
        return self.metered_lines(meter, registers)

    def estate_shares(self, meter: Meter) -> tuple[dict[int, Fraction], dict[int, str]] | None:
        """A ``SHARED`` or ``COLLECTIVE`` meter's split over estates and each one's basis text;
        None (with an issue) when it cannot be split."""
        try:
            if meter.billing_type == "SHARED":
                ratios = {share.estate_id: share.ratio for share in meter.shares.all()}
                shares = domain.shares_by_ratio(ratios)
                total = sum(ratios.values(), Decimal(0))
                texts = {
                    estate: f"ratio {_ratio_text(ratio)}/{_ratio_text(total)}"
                    for estate, ratio in ratios.items()
                }
                return shares, texts
            return self.collective_shares(meter)
        except domain.AllocationError as exc:
            self.issue("allocation_error", meter, f"The meter's cost cannot be allocated: {exc}")
            return None

    def collective_shares(self, meter: Meter) -> tuple[dict[int, Fraction], dict[int, str]]:
        rule: AllocationRule | None = meter.rule
        if rule is None:
            self.issue(
                "no_allocation_rule",
                meter,
                "The collective meter has no allocation rule: split by shares.",
            )
        basis = rule.basis if rule else domain.SHARES
        part = rule.consumption_part_percent if rule else Decimal(0)
        estates = [estate for estate in self.inputs.estates if estate.usage != "COMMON"]
        used = self.device_consumption(meter, estates) if part > 0 else {}
        bases = [
            domain.EstateBasis(
                estate.pk,
                shares=estate.shares,
                surface_m2=estate.surface_m2,
                sub_meter_consumption=used.get(estate.pk, Decimal(0)),
            )
            for estate in estates
        ]
        shares = domain.collective_shares(bases, basis=basis, consumption_part_percent=part)

        def weight(estate: Estate) -> str:
            if basis == domain.SHARES:
                total = sum(e.shares for e in estates)
                return f"shares {estate.shares}/{total}"
            if basis == domain.SURFACE:
                total = sum((e.surface_m2 or Decimal(0) for e in estates), Decimal(0))
                return f"surface {_ratio_text(estate.surface_m2)}/{_ratio_text(total)} m²"
            return f"equal 1/{len(estates)}"

        texts = {}
        total_used = sum(used.values(), Decimal(0))
        for estate in estates:
            text = weight(estate)
            if part > 0:
                unit = self.unit(meter, None)
                mine = _ratio_text(_decimal(used.get(estate.pk, Decimal(0)), _MILLI))
                total = _ratio_text(_decimal(total_used, _MILLI))
                by_consumption = f"by consumption {mine}/{total} {unit}"
                if part == 100:
                    text = by_consumption
                else:
                    rest = _ratio_text(100 - part)
                    text = f"{_ratio_text(part)} % {by_consumption} + {rest} % by {text}"
            texts[estate.pk] = text
        return shares, texts

    def device_consumption(self, meter: Meter, estates: Sequence[Estate]) -> dict[int, Decimal]:
        """Each estate's consumption measured by its allocation devices (direct sub-meters of
        ``meter``) over the period: a device's estate, or a ``SHARED`` device's estates by
        their ratios. A device of no estate (a common part's) counts for no one."""
        start, end = self.period.start_date, self.period.end_date
        used: dict[int, Decimal] = defaultdict(Decimal)
        for device in self.inputs.meters:
            if self.devices.get(device.pk) != meter.pk:
                continue
            if device.billing_type == "SHARED" and device.shares.all():
                ratios = {share.estate_id: share.ratio for share in device.shares.all()}
                split = domain.shares_by_ratio(ratios)
            elif device.estate_id is not None:
                split = {device.estate_id: Fraction(1)}
            else:
                continue  # measures no estate's use (a common part's sub-meter)
            registers = self.in_use(device)
            if not registers:
                self.issue(
                    "missing_readings",
                    device,
                    f"Allocation device of {meter.serial_number} without readings: counted 0.",
                )
            for register in registers:
                measure = self.measure(device, register, start, end)
                if measure is None:
                    continue
                for estate, share in split.items():
                    with decimal.localcontext(_EXACT):
                        used[estate] += _decimal(Fraction(measure.consumption) * share)
        return used

    def metered_lines(self, meter: Meter, registers: Sequence[Register | None]) -> list[_Line]:
        """``ACCREC`` lines: consumption × tariff, per register and part (``None``: the
        meter's bills stand for its default register)."""
        allocated = meter.billing_type in ("SHARED", "COLLECTIVE")
        split = self.estate_shares(meter) if allocated else None
        if allocated and split is None:
            return []
        lines = []
        start, end = self.period.start_date, self.period.end_date
        for register in registers:
            tariffs = self.tariffs(meter, register)
            leases = () if allocated else self.leases.get(meter.estate_id, ())
            for part in domain.split_period(start, end, leases=leases, tariffs=tariffs):
                measure = self.part_measure(meter, register, part.start_date, part.end_date)
                if measure is None:
                    continue
                price = self.price(meter, register, part, measure.consumption)
                if not allocated:
                    lease = self.lease_by_id[part.lease.lease_id] if part.lease else None
                    lines.append(
                        _Line(
                            meter,
                            register,
                            part.tariff,
                            lease,
                            meter.estate_id,
                            part.start_date,
                            part.end_date,
                            measure,
                            measure.consumption,
                            self.unit(meter, register),
                            Fraction(price.net),
                            Fraction(price.vat),
                            ("individual" if lease else "vacancy") + converted(register),
                        )
                    )
                    continue
                lines += self.allocated(
                    meter, register, part, measure, Fraction(price.net), Fraction(price.vat), *split
                )
        return lines

    def part_measure(
        self, meter: Meter, register: Register | None, start: dt.date, end: dt.date
    ) -> _Measure | None:
        if register is not None:
            return self.measure(meter, register, start, end)
        billed = self.billed(meter, start, end)
        if billed is None:
            return None
        consumption, _, estimated = billed
        return _Measure(_decimal(consumption), None, None, estimated)

    def allocated(
        self,
        meter: Meter,
        register: Register | None,
        part: domain.PeriodPart,
        measure: _Measure,
        net: Fraction,
        vat: Fraction,
        shares: dict[int, Fraction],
        texts: dict[int, str],
    ) -> list[_Line]:
        """A part's cost (exact ``net`` and ``vat``) split over estates, then by lease days
        within the part."""
        lines = []
        allocations = domain.allocate_by_lease_days(
            part.start_date, part.end_date, estate_shares=shares, leases=self.leases
        )
        for allocation in allocations:
            lease = self.lease_by_id[allocation.lease.lease_id] if allocation.lease else None
            basis = texts[allocation.estate_id]
            if allocation.days != allocation.period_days:
                basis += f" × {allocation.days}/{allocation.period_days} days"
            basis += converted(register)
            lines.append(
                _Line(
                    meter,
                    register,
                    part.tariff,
                    lease,
                    allocation.estate_id,
                    allocation.start_date,
                    allocation.end_date,
                    measure,
                    _decimal(Fraction(measure.consumption) * allocation.share),
                    self.unit(meter, register),
                    net * allocation.share,
                    vat * allocation.share,
                    basis,
                )
            )
        return lines

    def recovered_lines(self, meter: Meter) -> list[_Line]:
        """``ACCPAY``: the utility bills' cost, spread over days, recovered from the leases."""
        start, end = self.period.start_date, self.period.end_date
        allocated = meter.billing_type in ("SHARED", "COLLECTIVE")
        split = self.estate_shares(meter) if allocated else None
        if allocated and split is None:
            return []
        billed = self.billed(meter, start, end)
        if billed is None:
            return []
        consumption, cost, estimated = billed
        if cost is None:
            self.issue("missing_cost", meter, "A utility bill of the period has no cost.")
            return []
        register = next((r for r in meter.registers.all() if r.is_default), None)
        measure = _Measure(_decimal(consumption), None, None, estimated)
        unit = self.unit(meter, register)
        if allocated:
            part = domain.PeriodPart(start, end, None, None)
            lines = self.allocated(meter, register, part, measure, cost, Fraction(0), *split)
            for line in lines:
                line.basis = f"utility bills, {line.basis}"
            return lines
        lines = []
        for part in domain.split_period(start, end, leases=self.leases.get(meter.estate_id, ())):
            part_billed = self.billed(meter, part.start_date, part.end_date, report=False)
            part_consumption, part_cost, part_estimated = part_billed
            lease = self.lease_by_id[part.lease.lease_id] if part.lease else None
            lines.append(
                _Line(
                    meter,
                    register,
                    None,
                    lease,
                    meter.estate_id,
                    part.start_date,
                    part.end_date,
                    _Measure(_decimal(part_consumption), None, None, part_estimated),
                    _decimal(part_consumption),
                    unit,
                    part_cost,
                    Fraction(0),
                    "utility bills" if lease else "utility bills, vacancy",
                )
            )
        return lines

    def included_lines(self, meter: Meter) -> list[_Line]:
        """Informational lines (amount 0) of an ``INCLUDED`` meter, per lease part."""
        start, end = self.period.start_date, self.period.end_date
        if meter.estate_id is not None:
            estates = [meter.estate_id]
        else:
            estates = [e.pk for e in self.inputs.estates if e.usage != "COMMON"]
        lines = []
        for register in self.in_use(meter, all_directions=True):
            for estate in estates:
                for part in domain.split_period(start, end, leases=self.leases.get(estate, ())):
                    if part.lease is None:
                        continue
                    measure = self.measure(
                        meter, register, part.start_date, part.end_date, report=False
                    )
                    if measure is None:
                        continue
                    lines.append(
                        _Line(
                            meter,
                            register,
                            None,
                            self.lease_by_id[part.lease.lease_id],
                            estate,
                            part.start_date,
                            part.end_date,
                            measure,
                            measure.consumption,
                            self.unit(meter, register),
                            Fraction(0),
                            Fraction(0),
                            "included" if meter.estate_id else "included (building)",
                            share=Fraction(0) if meter.estate_id is None else Fraction(1),
                            is_included=True,
                        )
                    )
        return lines

    # --- rounding and rows ------------------------------------------------------------------

    def write(self, meter: Meter, lines: list[_Line]) -> None:
        """The meter's lines rounded to the cent (largest remainder) so that they add up to
        its cost, as unsaved charges."""
        if not lines:
            return
        amounts = domain.largest_remainder([line.net for line in lines])
        vats = domain.largest_remainder([line.vat for line in lines])
        cost = sum((line.net for line in lines), Fraction(0))
        for line, amount, vat in zip(lines, amounts, vats, strict=True):
            if line.share is not None:
                share = line.share
            elif cost:
                share = line.net / cost
            else:
                share = Fraction(0)
            measure = line.measure
            self.result.charges.append(
                Charge(
                    account_id=self.period.account_id,
                    billing_period=self.period,
                    lease=line.lease,
                    estate_id=line.estate_id,
                    is_vacancy=line.lease is None,
                    meter=meter,
                    register=line.register,
                    tariff_id=line.tariff.tariff_id
                    if line.tariff and line.tariff.tariff_id
                    else None,
                    start_date=line.start_date,
                    end_date=line.end_date,
                    index_start=_decimal(measure.index_start)
                    if measure and measure.index_start is not None
                    else None,
                    index_end=_decimal(measure.index_end)
                    if measure and measure.index_end is not None
                    else None,
                    consumption=line.consumption,
                    unit=line.unit,
                    unit_price=line.tariff.unit_price if line.tariff else None,
                    share=_decimal(share, _SHARE_QUANTUM),
                    basis=line.basis[:200],
                    amount=amount,
                    vat_amount=vat,
                    total_amount=amount + vat,
                    is_estimated=bool(measure and measure.is_estimated),
                    is_included=line.is_included,
                )
            )


def calculate(period: BillingPeriod) -> Calculation:
    """The charges and issues of ``period`` as computing it now would give; writes nothing.

    A period outside the product's calendar (``metering.domain``; the API refuses to store
    one, an older row or another path may hold one) is a ``ValidationError``: its days' next
    day and the readings' windows around it overflow at the calendar's ends.
    """
    errors = {
        name: messages
        for name in ("start_date", "end_date")
        if (messages := metering_domain.date_range_errors(getattr(period, name)))
    }
    if errors:
        raise ValidationError(errors)
    return _Calculation(_load(period)).run()


# --- the services -----------------------------------------------------------------------------


def _locked(period: BillingPeriod) -> BillingPeriod:
    period = (
        BillingPeriod.objects.select_for_update(of=("self",))
        .select_related("account")
        .get(pk=period.pk)
    )
    if period.is_closed:
        raise Conflict("This billing period is closed: its charges are frozen.")
    return period


def _store(period: BillingPeriod, calculation: Calculation) -> None:
    period.charges.all().delete()
    Charge.objects.bulk_create(calculation.charges)
    period.issues = calculation.issues
    period.total_amount = sum(
        (charge.total_amount for charge in calculation.charges), Decimal("0.00")
    )
    period.computed_at = timezone.now()


@transaction.atomic
def compute_period(*, period: BillingPeriod) -> BillingPeriod:
    """(Re)compute the charges and issues of a draft period (CONTRACT §5 Rules).

    Replaces its charges; ``total_amount`` is the sum of their totals (VAT included). A closed
    period is a 409 ``conflict``.
    """
    period = _locked(period)
    _store(period, calculate(period))
    period.save(update_fields=["issues", "total_amount", "computed_at", "updated_at"])
    return period


@transaction.atomic
def close_period(
    *, period: BillingPeriod, force: bool = False, closed_by: str = ""
) -> BillingPeriod:
    """Compute a draft again, then freeze its charges and lock the readings they used.

    Locks each register up to the latest reading an index was taken from and each billed meter
    up to its latest bill used (``readings.services.lock_readings``,
    ``readings.periods.lock_period_readings``). With unresolved issues and no ``force``, on a
    closed period, or overlapping another closed period of the place: 409 ``conflict``.
    """
    period = _locked(period)
    calculation = calculate(period)
    if calculation.issues and not force:
        raise Conflict(
            f"The period has {len(calculation.issues)} unresolved issue(s): resolve them or "
            'close with {"force": true}.',
            details={"issues": calculation.issues},
        )
    clash = (
        BillingPeriod.objects.filter(
            place_id=period.place_id,
            status=BillingPeriod.CLOSED,
            start_date__lte=period.end_date,
            end_date__gte=period.start_date,
        )
        .exclude(pk=period.pk)
        .first()
    )
    if clash is not None:
        raise Conflict(
            f"The closed period {clash.name!r} ({clash.start_date}..{clash.end_date}) overlaps "
            "this one."
        )
    _store(period, calculation)
    if calculation.used_readings:
        used = Q()
        for register_id, latest in calculation.used_readings.items():
            used |= Q(register_id=register_id, reading_date=latest)
        readings_services.lock_readings(readings=Reading.objects.filter(used))
    if calculation.used_bills:
        readings_periods.lock_period_readings(
            periods=PeriodReading.objects.filter(pk__in=calculation.used_bills)
        )
    period.status = BillingPeriod.CLOSED
    period.closed_at = timezone.now()
    period.closed_by = closed_by[:150]
    period.save()
    return period
