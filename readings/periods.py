"""Period readings: consumption known per period, such as utility bills (CONTRACT §4.4, §4.7).

Every write of a period reading, by any path (the API and its batch endpoint, the admin, the
importer, the demo), calls these services. Each write runs inside ``readings.services.writing``
(one transaction, whose changes the audit history attributes to the actor and its path) and:

1. locks the meter's row (``readings.services._lock_meter``): the writes to one meter, period
   and index readings alike, are applied one after the other, so two concurrent writes never
   both pass the overlap check nor derive flags from a stale series;
2. checks the values (400 ``validation_error``), the lock (403 ``reading_locked``) and overlaps
   with the meter's other period readings and with earlier items of the batch (409
   ``overlap``); a ``DECOMMISSIONED`` meter takes no new period reading (409 ``conflict``), but
   its stored ones may still be corrected or deleted, as with index readings;
3. loads, in one query whatever the history length, the meter's periods the write can concern:
   those ending on or after the earliest written start and ``baseline_days`` before the
   earliest touched end (the baselines of the periods whose flags may change);
4. derives their anomaly flags again with ``readings.domain.derive_period_flags`` and writes
   only the rows that differ: one DELETE, one UPDATE (``readings.services.write_rows``, linear
   in the rows it writes), one bulk INSERT.

A batch of any size therefore costs the same number of queries as a single period.

The rules:

- **Flags** (§4.2): each period is an interval of ``days = end_date − start_date + 1`` standing
  at its ``end_date``; its baseline is made of the meter's earlier periods ending within the
  account's ``anomaly_baseline_days`` before it. The thresholds are the account's, as for index
  readings; a change of them derives every period series of the account again. Consumption may
  be negative (a correction on a bill): it is flagged ``NEGATIVE`` and kept out of baselines.
  The stored flags are always what ``derive_period_flags`` gives for the whole series.
- **Overlap**: two period readings of one meter never share a day (both ends included). Under
  the meter's row lock the services refuse it on every database; on PostgreSQL an exclusion
  constraint (migration 0003) holds it in the database too, and its violation is a 409
  ``overlap`` as well.
- **Locks** (§4.7): a meter's lock instant is its default register's ``locked_until``, the one
  index readings use; closing a billing period moves it forward (``lock_period_readings`` for
  the period readings it used, ``readings.services.lock_readings`` for index readings). A period
  covers ``[start_date 00:00, end_date + 1 day 00:00)`` in the account's time zone; it is locked
  when it starts before the lock instant, that is when part of its consumption counts in a
  closed billing period. A locked period cannot be changed or deleted, no period may be
  created or moved so that it starts before the lock instant (403 ``reading_locked``), on every
  path. ``PeriodReading.is_locked`` says it on output.
- **Values**: ``end_date ≥ start_date``; a period cannot end after today in the account's time
  zone (its consumption is known); ``cost_currency`` is an ISO 4217 code, the account's currency
  when not given; ``demand_kw ≥ 0``; decimals fit their columns.
"""

from __future__ import annotations

import bisect
import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import DecimalValidator
from django.db.models import Case, DateTimeField, F, Max, QuerySet, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from rest_framework.exceptions import NotFound

from metering import domain as metering_domain
from metering.errors import Overlap, ReadingLocked
from metering.models import Account, Meter, Register
from readings import domain
from readings.models import PeriodReading
from readings.services import (
    RECOMPUTE_WRITE_ROWS,
    Actor,
    ItemError,
    _check_writable,
    _lock_meter,
    thresholds,
    write_objects,
    writing,
)

EDITABLE_FIELDS = [
    "start_date",
    "end_date",
    "consumption",
    "cost",
    "cost_currency",
    "demand_kw",
    "is_estimated",
    "notes",
]
FLAG_FIELDS = list(domain.FLAG_FIELDS.values())
INVALID_MESSAGE = "The period reading is invalid."
BATCH_OVERLAP_MESSAGE = "This period overlaps an earlier item of this batch."

# The columns' sizes: a value that does not fit is refused, never rounded by the database.
_DECIMALS = {
    "consumption": DecimalValidator(24, 6),
    "cost": DecimalValidator(14, 2),
    "demand_kw": DecimalValidator(14, 3),
}
_WINDOW_FIELDS = ["id", "meter_id", "start_date", "end_date", "consumption", *FLAG_FIELDS]


@dataclass
class PeriodInput:
    """One period reading to create, as the API, the admin or the importer received it."""

    start_date: dt.date
    end_date: dt.date
    consumption: Decimal
    cost: Decimal | None = None
    cost_currency: str | None = None  # None or empty: the account's currency
    demand_kw: Decimal | None = None
    is_estimated: bool = False
    notes: str = ""


@dataclass
class PeriodBatchResult:
    accepted: list[PeriodReading]
    errors: list[ItemError]


# --- checks shared by every path -------------------------------------------------------------


def value_errors(values: dict[str, Any], *, today: dt.date | None) -> dict[str, list[str]]:
    """Why ``values`` (the period's fields) cannot be stored; empty when they can.

    ``today`` is the account's day; None skips the rule that a period cannot end after it (an
    update that leaves the dates alone).
    """
    errors: dict[str, list[str]] = defaultdict(list)
    start, end = values["start_date"], values["end_date"]
    for name in ("start_date", "end_date"):
        if messages := metering_domain.date_range_errors(values[name]):
            errors[name].extend(messages)
    if errors:
        return dict(errors)  # the other rules compute with the dates
    if end < start:
        errors["end_date"].append("A period cannot end before it starts.")
    elif today is not None and end > today:
        errors["end_date"].append(
            "A period reading cannot end after today (in the account's time zone)."
        )
    for name, validator in _DECIMALS.items():
        value = values.get(name)
        if value is None:
            continue
        if not value.is_finite():
            errors[name].append("Enter a number.")
            continue
        try:
            validator(value)
        except ValidationError as error:
            errors[name].extend(error.messages)
    if values.get("demand_kw") is not None and values["demand_kw"] < 0:
        errors["demand_kw"].append("The demand cannot be negative.")
    if values["cost_currency"] not in metering_domain.CURRENCIES:
        errors["cost_currency"].append(
            f"{values['cost_currency']!r} is not an ISO 4217 currency code."
        )
    return dict(errors)


def meter_locked_until(meter: Meter) -> dt.datetime | None:
    """The meter's lock instant: its default register's ``locked_until``."""
    return (
        Register.objects.filter(meter=meter, is_default=True)
        .values_list("locked_until", flat=True)
        .first()
    )


def _days_before(day: dt.date, days: int) -> dt.date:
    return dt.date.fromordinal(max(1, day.toordinal() - days))


def _period(row: PeriodReading | PeriodInput) -> domain.Period:
    return domain.Period(row.start_date, row.end_date, row.consumption)


class _Taken:
    """The days taken by a meter's periods, for overlap checks: disjoint, sorted by start."""

    def __init__(self, rows: Sequence[PeriodReading]) -> None:
        self.starts = [row.start_date for row in rows]
        self.spans: list[tuple[dt.date, dt.date, bool]] = [
            (row.start_date, row.end_date, True) for row in rows
        ]

    def clash(self, start: dt.date, end: dt.date) -> bool | None:
        """None when ``start..end`` is free; else whether the period in the way is stored."""
        position = bisect.bisect_right(self.starts, start)
        if position > 0 and self.spans[position - 1][1] >= start:
            return self.spans[position - 1][2]
        if position < len(self.spans) and self.spans[position][0] <= end:
            return self.spans[position][2]
        return None

    def take(self, start: dt.date, end: dt.date) -> None:
        position = bisect.bisect_right(self.starts, start)
        self.starts.insert(position, start)
        self.spans.insert(position, (start, end, False))


# --- create ----------------------------------------------------------------------------------


def create_period_readings(
    *, meter: Meter, items: Sequence[PeriodInput], actor: Actor
) -> PeriodBatchResult:
    """Create the valid period readings of ``items`` in one transaction; report the others.

    Each item is checked on its own: values, lock, overlap with stored periods and with
    earlier items (the earlier one is kept). A constant number of queries whatever
    ``len(items)``.
    """
    with writing(actor):
        meter = _lock_meter(meter.pk)
        _check_writable(meter)
        account = meter.account
        locked_until = meter_locked_until(meter)
        today = account.today()

        errors: list[ItemError] = []
        candidates: list[tuple[int, PeriodInput, str]] = []
        for index, item in enumerate(items):
            currency = item.cost_currency or account.currency
            values = {**vars(item), "cost_currency": currency}
            if details := value_errors(values, today=today):
                errors.append(ItemError(index, "validation_error", INVALID_MESSAGE, details))
            elif domain.period_is_locked(item.start_date, locked_until, account.zone):
                errors.append(ItemError(index, "reading_locked", ReadingLocked.default_detail))
            else:
                candidates.append((index, item, currency))

        created: list[PeriodReading] = []
        if candidates:
            settings = thresholds(account)
            lower = min(
                min(item.start_date for _, item, _ in candidates),
                _days_before(
                    min(item.end_date for _, item, _ in candidates), settings.baseline_days
                ),
            )
            stored = _window(meter, lower)
            taken = _Taken(stored)
            for index, item, currency in candidates:
                clash = taken.clash(item.start_date, item.end_date)
                if clash is not None:
                    message = Overlap.default_detail if clash else BATCH_OVERLAP_MESSAGE
                    errors.append(ItemError(index, "overlap", message))
                    continue
                taken.take(item.start_date, item.end_date)
                created.append(
                    PeriodReading(
                        account=account,
                        meter=meter,
                        start_date=item.start_date,
                        end_date=item.end_date,
                        consumption=item.consumption,
                        cost=item.cost,
                        cost_currency=currency,
                        demand_kw=item.demand_kw,
                        is_estimated=item.is_estimated,
                        notes=item.notes,
                        source=actor.source,
                        created_by=actor.label,
                    )
                )
            if created:
                _rebuild(
                    settings,
                    stored=stored,
                    inserted=created,
                    touched={period.end_date for period in created},
                )
        for period in created:
            period.meter_locked_until = locked_until
        errors.sort(key=lambda error: error.index)
        return PeriodBatchResult(accepted=created, errors=errors)


# --- update and delete -----------------------------------------------------------------------


def update_period_reading(
    *, period: PeriodReading, values: dict[str, Any], actor: Actor
) -> PeriodReading:
    """Change a period reading's editable fields; the flags of the series follow.

    Refused when the period is locked or would become so (403), overlaps another period of
    the meter (409) or has invalid values (400, a ``ValidationError`` keyed by field).
    """
    with writing(actor):
        meter = _lock_meter(period.meter_id)
        account = meter.account
        period = _stored(period.pk)
        locked_until = meter_locked_until(meter)
        old_start, old_end = period.start_date, period.end_date
        for name in EDITABLE_FIELDS:
            if name in values:
                setattr(period, name, values[name])
        period.cost_currency = period.cost_currency or account.currency
        if domain.period_is_locked(
            old_start, locked_until, account.zone
        ) or domain.period_is_locked(period.start_date, locked_until, account.zone):
            raise ReadingLocked()
        dates_changed = (period.start_date, period.end_date) != (old_start, old_end)
        fields = {name: getattr(period, name) for name in EDITABLE_FIELDS}
        if details := value_errors(fields, today=account.today() if dates_changed else None):
            raise ValidationError(details)

        settings = thresholds(account)
        lower = min(
            period.start_date, _days_before(min(old_end, period.end_date), settings.baseline_days)
        )
        stored = _window(meter, lower)
        if any(
            row.pk != period.pk and domain.periods_overlap(_period(row), _period(period))
            for row in stored
        ):
            raise Overlap()
        _rebuild(settings, stored=stored, updated=period, touched={old_end, period.end_date})
        period.meter, period.account, period.meter_locked_until = meter, account, locked_until
        return period


def delete_period_reading(*, period: PeriodReading, actor: Actor) -> None:
    """Delete a period reading; the later periods' flags follow. A locked one is a 403."""
    with writing(actor):
        meter = _lock_meter(period.meter_id)
        account = meter.account
        period = _stored(period.pk)
        if domain.period_is_locked(period.start_date, meter_locked_until(meter), account.zone):
            raise ReadingLocked()
        settings = thresholds(account)
        stored = _window(meter, _days_before(period.end_date, settings.baseline_days))
        _rebuild(settings, stored=stored, deleted=period.pk, touched={period.end_date})


def _stored(pk: int) -> PeriodReading:
    """The stored row, read again under the meter's lock (another request may have gone first)."""
    try:
        return PeriodReading.objects.get(pk=pk)
    except PeriodReading.DoesNotExist:
        raise NotFound("No period reading with this id in this account.") from None


# --- locks -----------------------------------------------------------------------------------


def lock_period_readings(*, periods: QuerySet[PeriodReading]) -> int:
    """Lock each meter of ``periods`` up to the end of the latest of them (CONTRACT §4.7).

    The meter's default register's ``locked_until`` moves to the end of its latest selected
    period (``end_date + 1 day`` at 00:00 in the account's time zone), if that is later: the
    selected periods and every earlier one are locked, and so are the default register's index
    readings up to that instant. Locks only ever move forward. Two queries.
    """
    ends = {
        row["meter_id"]: dt.datetime.combine(
            row["end"] + dt.timedelta(days=1),
            dt.time.min,
            tzinfo=zoneinfo.ZoneInfo(row["account__timezone"]),
        )
        for row in periods.order_by()
        .values("meter_id", "account__timezone")
        .annotate(end=Max("end_date"))
    }
    if not ends:
        return 0
    until = Case(
        *[When(meter_id=meter_id, then=Value(end)) for meter_id, end in ends.items()],
        output_field=DateTimeField(),
    )
    return Register.objects.filter(meter_id__in=ends, is_default=True).update(
        locked_until=Greatest(Coalesce(F("locked_until"), until), until)
    )


# --- the series ------------------------------------------------------------------------------


def _window(meter: Meter, lower: dt.date) -> list[PeriodReading]:
    """The meter's periods ending on or after ``lower``, in date order: one query."""
    return list(
        PeriodReading.objects.filter(meter=meter, end_date__gte=lower)
        .only(*_WINDOW_FIELDS)
        .order_by("start_date")
    )


def _rebuild(
    settings: domain.Thresholds,
    *,
    stored: list[PeriodReading],
    inserted: Sequence[PeriodReading] = (),
    updated: PeriodReading | None = None,
    deleted: int | None = None,
    touched: set[dt.date],
) -> None:
    """Apply the change to ``stored`` (see ``_window``) and bring every flag it affects up to date.

    Only the periods ending on or after the earliest touched end date can change; the earlier
    ones of the window feed their baselines.
    """
    rows = [
        updated if updated is not None and row.pk == updated.pk else row
        for row in stored
        if row.pk != deleted
    ]
    rows.extend(inserted)
    rows.sort(key=lambda row: row.start_date)
    flags = domain.derive_period_flags([_period(row) for row in rows], thresholds=settings)
    start = min(touched)
    dirty: list[PeriodReading] = []
    for row, result in zip(rows, flags, strict=True):
        if row.end_date < start:
            continue
        if _assign_flags(row, result) and row.pk is not None and row is not updated:
            dirty.append(row)

    if deleted is not None:
        PeriodReading.objects.filter(pk=deleted).delete()
    if updated is not None:
        updated.save(update_fields=[*EDITABLE_FIELDS, *FLAG_FIELDS, "updated_at"])
    _write_flags(dirty)
    if inserted:
        PeriodReading.objects.bulk_create(inserted)


def _write_flags(periods: Sequence[PeriodReading]) -> None:
    """Store the flags of ``periods`` (already assigned) with ``write_objects``: one UPDATE per
    ``RECOMPUTE_WRITE_ROWS`` periods, in time linear in their number."""
    now = timezone.now()
    for start in range(0, len(periods), RECOMPUTE_WRITE_ROWS):
        batch = periods[start : start + RECOMPUTE_WRITE_ROWS]
        write_objects(objects=batch, fields=FLAG_FIELDS, updated_at=now)


def _assign_flags(period: PeriodReading, flags: frozenset[str]) -> bool:
    """Store ``flags`` on ``period``; whether they changed."""
    changed = set(period.anomaly_flags) != flags
    period.set_flags(flags)
    return changed


def recompute_period_flags(*, meters: QuerySet[Meter]) -> int:
    """Derive the flags of every period series of ``meters`` again; the number of rows changed.

    For a change of an account's thresholds. Two queries and one UPDATE per
    ``RECOMPUTE_WRITE_ROWS`` changed rows (``write_rows``: linear in their number).
    """
    rows = list(
        PeriodReading.objects.filter(meter__in=meters)
        .only("account_id", *_WINDOW_FIELDS)
        .order_by("meter_id", "start_date")
    )
    accounts = Account.objects.in_bulk({row.account_id for row in rows})
    series: dict[int, list[PeriodReading]] = defaultdict(list)
    for row in rows:
        series[row.meter_id].append(row)
    dirty = []
    for periods in series.values():
        settings = thresholds(accounts[periods[0].account_id])
        flags = domain.derive_period_flags([_period(row) for row in periods], thresholds=settings)
        dirty += [
            row for row, result in zip(periods, flags, strict=True) if _assign_flags(row, result)
        ]
    _write_flags(dirty)
    return len(dirty)


def on_series_parameters_changed(sender, *, registers: QuerySet[Register], **kwargs) -> None:
    """An account's anomaly thresholds changed: derive its period flags again.

    A meter's multiplier or a register's ratio does not touch period readings: their
    consumption is given as it is.
    """
    if sender is Account:
        recompute_period_flags(meters=Meter.objects.filter(pk__in=registers.values("meter_id")))
