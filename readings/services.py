"""The readings engine: every write of an index reading, by any path (CONTRACT §4.1–§4.3, §4.7).

The API, the batch endpoint, the admin, the portal and the importer all call these services;
each write:

1. locks the meter's row (``SELECT ... FOR NO KEY UPDATE``), so that concurrent writes to one
   meter are applied one after the other and never compute a chain from a stale series;
2. checks locks (403 ``reading_locked``), duplicates and values;
3. loads, in one query whatever the history length, the part of each touched register's series
   that the write can change: from ``baseline_days`` before the earliest touched date (plus the
   reading just before, for its interval) to ``baseline_days`` after the reading that follows
   the latest touched date (the last interval the write changes; later readings' baselines
   do not reach it), so an edit in a long series costs what it can change, not the rest;
4. derives that part again with ``readings.domain.derive_series`` and writes only the rows whose
   stored fields differ, with one DELETE, one UPDATE (``write_rows``: linear in the rows it
   writes, whatever their number) and one bulk INSERT;
5. refreshes the meter's ``last_reading_value``/``last_reading_at``.

A batch of any size therefore costs the same number of queries as a single reading. Every
statement runs inside ``pghistory.context`` with who did it and through which path, so the
audit history (database triggers) records bulk writes too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pghistory
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    DateTimeField,
    DecimalField,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from metering import domain as metering_domain
from metering.errors import Conflict, DuplicateReading, ReadingLocked
from metering.models import Account, Meter, MeterDevice, Register
from readings import domain
from readings.models import Reading

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
COMPUTED_FIELDS = ["previous_value", "consumption", "is_rollover", *domain.FLAG_FIELDS.values()]
EDITABLE_FIELDS = [
    "reading_date",
    "value",
    "reading_type",
    "is_estimated",
    "is_billing_reading",
    "lease",
    "photo_url",
    "reader_name",
    "notes",
]


@dataclass(frozen=True)
class Actor:
    """Who writes, and through which path (``source`` of the contract)."""

    label: str
    source: str = "API"


@dataclass
class ReadingInput:
    """One reading to create, as the API, the admin or the importer received it."""

    reading_date: dt.datetime
    value: Decimal
    register_code: str | None = None
    register_id: int | None = None
    reading_type: str = "MANUAL"
    is_estimated: bool | None = None
    is_billing_reading: bool = False
    lease: Any = None
    photo_url: str = ""
    reader_name: str = ""
    notes: str = ""
    photo: str = ""  # a stored photo's name (``readings.photos.store_photo``)


@dataclass(frozen=True)
class ItemError:
    index: int
    code: str
    message: str
    details: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class BatchResult:
    accepted: list[Reading]
    errors: list[ItemError]


@contextlib.contextmanager
def writing(actor: Actor) -> Iterator[None]:
    """One transaction whose changes the audit history attributes to ``actor``.

    The history is kept by PostgreSQL triggers; on SQLite (the demo) there is none to feed.
    """
    with transaction.atomic():
        if connection.vendor != "postgresql":
            yield
            return
        with pghistory.context(actor=actor.label, source=actor.source):
            yield


def thresholds(account: Account) -> domain.Thresholds:
    return domain.Thresholds(
        deviation=account.anomaly_deviation_ratio,
        spike=account.anomaly_spike_ratio,
        drop=account.anomaly_drop_ratio,
        baseline_days=account.anomaly_baseline_days,
        min_intervals=account.anomaly_min_intervals,
    )


def is_locked(register: Register, reading_date: dt.datetime) -> bool:
    return register.locked_until is not None and reading_date <= register.locked_until


# --- checks shared by every path -------------------------------------------------------------

# Their messages, which the set-based import (``readings.bulk_import``) gives too.
ABOVE_MAX_VALUE = "This meter's counter goes up to {}."
TOO_MANY_DECIMALS = "This meter's readings have at most {} decimals."
IN_THE_FUTURE = "A reading cannot be more than 5 minutes in the future."
DECOMMISSIONED = "This meter is decommissioned: it takes no more readings."
BATCH_DUPLICATE = "An earlier item of this batch has the same register and date."


def value_errors(meter: Meter, value: Decimal) -> list[str]:
    """Why ``value`` cannot be a reading of ``meter`` (empty when it can)."""
    errors = []
    if value < 0:
        errors.append("A reading value cannot be negative.")
    if meter.max_value is not None and value > meter.max_value:
        errors.append(ABOVE_MAX_VALUE.format(meter.max_value))
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > meter.precision_digits:
        errors.append(TOO_MANY_DECIMALS.format(meter.precision_digits))
    return errors


def date_errors(reading_date: dt.datetime, now: dt.datetime) -> list[str]:
    """Why ``reading_date`` (aware) cannot be a reading's date: outside the product's calendar
    (``metering.domain``: near years 1 and 9999 the chain's date arithmetic overflows), or
    more than ``FUTURE_TOLERANCE`` ahead of ``now``."""
    if not metering_domain.instant_in_range(reading_date):
        return [metering_domain.DATE_RANGE_MESSAGE]
    if reading_date > now + FUTURE_TOLERANCE:
        return [IN_THE_FUTURE]
    return []


def _lock_meter(meter_id: int) -> Meter:
    """The meter's row, locked until the transaction ends: one meter's writes are serialized."""
    return (
        Meter.objects.select_for_update(of=("self",), no_key=True)
        .select_related("account")
        .get(pk=meter_id)
    )


def _check_writable(meter: Meter) -> None:
    if meter.status == "DECOMMISSIONED":
        raise Conflict(DECOMMISSIONED)


# --- create ----------------------------------------------------------------------------------


def create_readings(*, meter: Meter, items: Sequence[ReadingInput], actor: Actor) -> BatchResult:
    """Create the valid readings of ``items`` in one transaction; report the others by index.

    Each item is checked on its own: values, dates, register, locks, duplicates of stored
    readings and of earlier items. A constant number of queries whatever ``len(items)``.
    """
    with writing(actor):
        meter = _lock_meter(meter.pk)
        _check_writable(meter)
        registers = list(meter.registers.all())
        by_code = {register.code: register for register in registers}
        by_id = {register.pk: register for register in registers}
        default = next(register for register in registers if register.is_default)
        now = timezone.now()

        errors: list[ItemError] = []
        pending: list[tuple[int, Register, ReadingInput]] = []
        seen: set[tuple[int, dt.datetime]] = set()
        for index, item in enumerate(items):
            details: dict[str, list[str]] = {}
            register = default
            if item.register_id is not None:
                register = by_id.get(item.register_id)
                if register is None:
                    details["register_id"] = ["No register with this id on this meter."]
            elif item.register_code is not None:
                register = by_code.get(item.register_code)
                if register is None:
                    details["register"] = [f"No register {item.register_code!r} on this meter."]
            if messages := value_errors(meter, item.value):
                details["value"] = messages
            if messages := date_errors(item.reading_date, now):
                details["reading_date"] = messages
            if details:
                errors.append(
                    ItemError(index, "validation_error", "The reading is invalid.", details)
                )
                continue
            if is_locked(register, item.reading_date):
                errors.append(ItemError(index, "reading_locked", ReadingLocked.default_detail))
                continue
            key = (register.pk, item.reading_date)
            if key in seen:
                errors.append(ItemError(index, "duplicate_reading", BATCH_DUPLICATE))
                continue
            seen.add(key)
            pending.append((index, register, item))

        stored = (
            set(
                Reading.objects.filter(
                    register__in=[register for _, register, _ in pending],
                    reading_date__in=[item.reading_date for _, _, item in pending],
                ).values_list("register_id", "reading_date")
            )
            if pending
            else set()
        )

        created: list[Reading] = []
        changes: dict[int, _RegisterChange] = defaultdict(_RegisterChange)
        for index, register, item in pending:
            if (register.pk, item.reading_date) in stored:
                errors.append(
                    ItemError(index, "duplicate_reading", DuplicateReading.default_detail)
                )
                continue
            reading = Reading(
                account_id=meter.account_id,
                meter=meter,
                register=register,
                reading_date=item.reading_date,
                value=item.value,
                reading_type=item.reading_type,
                is_estimated=(
                    item.reading_type == "ESTIMATED"
                    if item.is_estimated is None
                    else item.is_estimated
                ),
                is_billing_reading=item.is_billing_reading,
                lease=item.lease,
                photo_url=item.photo_url,
                photo=item.photo,
                reader_name=item.reader_name,
                notes=item.notes,
                source=actor.source,
                created_by=actor.label,
            )
            created.append(reading)
            changes[register.pk].inserted.append(reading)
            changes[register.pk].touched.add(item.reading_date)

        if created:
            _rebuild(meter, {pk: (by_id[pk], change) for pk, change in changes.items()})
            Meter.objects.filter(pk=meter.pk).refresh_last_readings()
        errors.sort(key=lambda error: error.index)
        return BatchResult(accepted=created, errors=errors)


# --- update and delete -----------------------------------------------------------------------


def update_reading(*, reading: Reading, values: dict[str, Any], actor: Actor) -> Reading:
    """Change a reading's editable fields; the chain follows. The register cannot change."""
    with writing(actor):
        meter = _lock_meter(reading.meter_id)
        reading = Reading.objects.select_related("register").get(pk=reading.pk)
        register = reading.register
        old_date = reading.reading_date
        new_date = values.get("reading_date", old_date)
        if is_locked(register, old_date) or is_locked(register, new_date):
            raise ReadingLocked()
        details: dict[str, list[str]] = {}
        if "value" in values and (messages := value_errors(meter, values["value"])):
            details["value"] = messages
        if new_date != old_date and (messages := date_errors(new_date, timezone.now())):
            details["reading_date"] = messages
        if details:
            raise ValidationError(details)
        if (
            new_date != old_date
            and Reading.objects.filter(register=register, reading_date=new_date).exists()
        ):
            raise DuplicateReading()
        for name in EDITABLE_FIELDS:
            if name in values:
                setattr(reading, name, values[name])
        if "reading_type" in values and "is_estimated" not in values:
            reading.is_estimated = reading.reading_type == "ESTIMATED"
        change = _RegisterChange(updated=[reading], touched={old_date, new_date})
        _rebuild(meter, {register.pk: (register, change)})
        Meter.objects.filter(pk=meter.pk).refresh_last_readings()
        return reading


def delete_reading(*, reading: Reading, actor: Actor) -> None:
    """Delete a reading; the next reading of its register takes the previous one as base."""
    with writing(actor):
        meter = _lock_meter(reading.meter_id)
        reading = Reading.objects.select_related("register").get(pk=reading.pk)
        if is_locked(reading.register, reading.reading_date):
            raise ReadingLocked()
        change = _RegisterChange(deleted={reading.pk}, touched={reading.reading_date})
        _rebuild(meter, {reading.register_id: (reading.register, change)})
        Meter.objects.filter(pk=meter.pk).refresh_last_readings()


# --- device replacement ----------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterSwap:
    """Another register's indexes at a device replacement (the default one's are top-level)."""

    code: str
    final_value: Decimal | None = None
    initial_value: Decimal = Decimal(0)


def replace_device(
    *,
    meter: Meter,
    replaced_at: dt.datetime,
    final_value: Decimal,
    new_serial_number: str,
    initial_value: Decimal = Decimal(0),
    manufacturer: str = "",
    model_reference: str = "",
    registers: Sequence[RegisterSwap] = (),
    actor: Actor,
) -> MeterDevice:
    """Replace the meter's device at ``replaced_at`` (CONTRACT §4.6); returns the new device.

    Records the old device's final reading (``final_value`` on the default register at
    ``replaced_at``), closes the old device in the serial-number history and opens the new one,
    whose ``initial_value`` becomes the previous value of the default register's next reading.
    The other registers restart from their ``registers`` entry's ``initial_value`` (0 when not
    given), after a final reading when it gives a ``final_value``. The meter keeps its id,
    registers, readings and sub-meters; its serial number, manufacturer and model reference
    become the new device's. Consumption across the replacement is the old device's last
    interval plus the new device's first: nothing is lost or invented.
    """
    with writing(actor):
        meter = _lock_meter(meter.pk)
        _check_writable(meter)
        by_code = {register.code: register for register in meter.registers.all()}
        default = next(register for register in by_code.values() if register.is_default)
        current = meter.devices.filter(removed_at__isnull=True).first()
        new_serial_number = new_serial_number.strip()

        details: dict[str, list[str]] = {}
        if messages := value_errors(meter, final_value):
            details["final_value"] = messages
        if messages := value_errors(meter, initial_value):
            details["initial_value"] = messages
        if messages := date_errors(replaced_at, timezone.now()):
            details["replaced_at"] = messages
        installed_at = current.installed_at if current else _installed_at(meter)
        if installed_at is not None and replaced_at <= installed_at:
            details.setdefault("replaced_at", []).append(
                "The current device was installed at or after this date."
            )
        if not new_serial_number:
            details["new_serial_number"] = ["This field may not be blank."]
        elif new_serial_number == meter.serial_number:
            details["new_serial_number"] = ["This is the current device's serial number."]
        finals = {default: final_value}
        for swap in registers:
            register = by_code.get(swap.code)
            if register is None or register is default:
                problem = "is the default register" if register else "is not on this meter"
                details.setdefault("registers", []).append(f"Register {swap.code!r} {problem}.")
                continue
            for value in (swap.final_value, swap.initial_value):
                if value is not None and (messages := value_errors(meter, value)):
                    details.setdefault("registers", []).extend(
                        f"Register {swap.code!r}: {message}" for message in messages
                    )
            if swap.final_value is not None:
                finals[register] = swap.final_value
        if len({swap.code for swap in registers}) != len(registers):
            details.setdefault("registers", []).append("A register is given twice.")
        if details:
            raise ValidationError(details)
        if Meter.objects.filter(
            account_id=meter.account_id, serial_number=new_serial_number
        ).exists():
            raise Conflict("Another meter of this account has this serial number.")
        if any(is_locked(register, replaced_at) for register in by_code.values()):
            raise ReadingLocked()
        if Reading.objects.filter(register__in=finals, reading_date=replaced_at).exists():
            raise DuplicateReading("A register already has a reading at replaced_at.")

        if current is None:  # the first replacement: the original device enters the history
            current = MeterDevice(
                account_id=meter.account_id,
                meter=meter,
                serial_number=meter.serial_number,
                manufacturer=meter.manufacturer,
                model_reference=meter.model_reference,
                installed_at=installed_at,
            )
        current.removed_at = replaced_at
        current.final_value = final_value
        current.save()
        device = MeterDevice.objects.create(
            account_id=meter.account_id,
            meter=meter,
            serial_number=new_serial_number,
            manufacturer=manufacturer,
            model_reference=model_reference,
            installed_at=replaced_at,
            initial_value=initial_value,
            register_values={
                swap.code: {
                    "final_value": None if swap.final_value is None else str(swap.final_value),
                    "initial_value": str(swap.initial_value),
                }
                for swap in registers
            },
        )
        final_readings = {
            register.pk: Reading(
                account_id=meter.account_id,
                meter=meter,
                register=register,
                reading_date=replaced_at,
                value=value,
                notes=f"Final reading of device {current.serial_number}.",
                source=actor.source,
                created_by=actor.label,
            )
            for register, value in finals.items()
        }
        _rebuild(
            meter,
            {
                register.pk: (
                    register,
                    _RegisterChange(
                        inserted=[final_readings[register.pk]]
                        if register.pk in final_readings
                        else [],
                        touched={replaced_at},
                    ),
                )
                for register in by_code.values()
            },
        )
        meter.serial_number = new_serial_number
        meter.manufacturer = manufacturer
        meter.model_reference = model_reference
        meter.save(update_fields=["serial_number", "manufacturer", "model_reference", "updated_at"])
        Meter.objects.filter(pk=meter.pk).refresh_last_readings()
        return device


def _installed_at(meter: Meter) -> dt.datetime | None:
    """The original device's installation: 00:00 of the meter's installation date, local."""
    if meter.installation_date is None:
        return None
    return dt.datetime.combine(meter.installation_date, dt.time.min, tzinfo=meter.account.zone)


# --- locks -----------------------------------------------------------------------------------


def lock_readings(*, readings: QuerySet[Reading]) -> int:
    """Lock each register of ``readings`` up to the latest of them (CONTRACT §4.7).

    Readings dated at or before a register's ``locked_until`` cannot be changed, deleted or have
    a reading inserted among them, by any path. Locks only ever move forward. One UPDATE.
    """
    latest = (
        readings.filter(register=OuterRef("pk"))
        .order_by()
        .values("register")
        .annotate(latest=Max("reading_date"))
        .values("latest")
    )
    until = Subquery(latest, output_field=DateTimeField())
    return Register.objects.filter(pk__in=readings.values("register")).update(
        locked_until=Greatest(Coalesce(F("locked_until"), until), until)
    )


# --- the engine ------------------------------------------------------------------------------


@dataclass
class _RegisterChange:
    inserted: list[Reading] = field(default_factory=list)
    updated: list[Reading] = field(default_factory=list)
    deleted: set[int] = field(default_factory=set)
    touched: set[dt.datetime] = field(default_factory=set)


# A stored reading as the engine reads it: (id, register_id, reading_date, value, *computed),
# tuples rather than model instances, which only the rows that change become.
_WINDOW_FIELDS = ["id", "register_id", "reading_date", "value", *COMPUTED_FIELDS]
_COMPUTED_AT = 4  # where COMPUTED_FIELDS start in a window row


# The flag columns' values of each set of flags met so far (at most 16 sets).
_FLAG_VALUES: dict[frozenset[str], tuple[bool, ...]] = {}


def _computed(result: domain.Derived) -> tuple:
    """``result`` as the values of COMPUTED_FIELDS, in their order."""
    flags = _FLAG_VALUES.get(result.flags)
    if flags is None:
        flags = _FLAG_VALUES[result.flags] = tuple(
            flag in result.flags for flag in domain.FLAG_FIELDS
        )
    return (result.previous_value, result.consumption, result.is_rollover, *flags)


def _stale(row: tuple, result: domain.Derived) -> tuple | None:
    """The update a stored ``row`` needs to hold ``result`` (``(id, *COMPUTED_FIELDS)``, as
    ``write_rows`` takes it), or None when it already does."""
    computed = _computed(result)
    if row[_COMPUTED_AT:] == computed:
        return None
    return (row[0], *computed)


def _rebuild(meter: Meter, changes: dict[int, tuple[Register, _RegisterChange]]) -> None:
    """Apply ``changes`` and bring every reading they affect up to date (see module docstring)."""
    settings = thresholds(meter.account)
    span = settings.baseline_span
    starts = {pk: min(change.touched) for pk, (_, change) in changes.items()}

    window = Q()
    for register_pk, (_, change) in changes.items():
        lower = domain.earlier_by(starts[register_pk], span)
        before = (
            Reading.objects.filter(register_id=register_pk, reading_date__lt=lower)
            .order_by("-reading_date")
            .values("reading_date")[:1]
        )
        # The first stored reading after the latest touched date ends the last interval the
        # change alters (inserted and moved readings are all dated at touched dates); readings
        # more than a baseline span after it keep their chain and their flags.
        end = max(change.touched)
        after = (
            Reading.objects.filter(register_id=register_pk, reading_date__gt=end)
            .order_by("reading_date")
            .values("reading_date")[:1]
        )
        upper = ExpressionWrapper(
            Coalesce(Subquery(after), Value(end), output_field=DateTimeField())
            + Value(span, output_field=DurationField()),
            output_field=DateTimeField(),
        )
        window |= Q(
            register_id=register_pk,
            reading_date__gte=Coalesce(Subquery(before), lower, output_field=DateTimeField()),
            reading_date__lte=upper,
        )
    stored_rows: dict[int, list[tuple]] = defaultdict(list)
    for row in Reading.objects.filter(window).order_by("reading_date").values_list(*_WINDOW_FIELDS):
        stored_rows[row[1]].append(row)
    replacements = _replacements(meter)

    neighbours: list[tuple] = []  # stored readings whose computed fields change
    edited: list[Reading] = []  # readings updated by the caller: every editable field too
    to_delete: set[int] = set()
    for register_pk, (register, change) in changes.items():
        replaced = {reading.pk: reading for reading in change.updated}
        rows: list[tuple | Reading] = [
            replaced.get(row[0], row)
            for row in stored_rows[register_pk]
            if row[0] not in change.deleted
        ]
        rows.extend(change.inserted)
        rows.sort(key=_reading_date)
        derived = domain.derive_series(
            [
                domain.Point(row[2], row[3])
                if isinstance(row, tuple)
                else domain.Point(row.reading_date, row.value)
                for row in rows
            ],
            factor=meter.multiplier * register.transformer_ratio,
            max_value=meter.max_value,
            thresholds=settings,
            since=starts[register_pk],
            restarts=_restarts(replacements, register),
        )
        for row, result in zip(rows, derived, strict=True):
            if result is None:
                continue  # before the change: unchanged, only its interval feeds baselines
            if isinstance(row, tuple):
                if (stale := _stale(row, result)) is not None:
                    neighbours.append(stale)
            else:
                _assign(row, result)
        edited.extend(change.updated)
        to_delete |= change.deleted

    if to_delete:
        Reading.objects.filter(pk__in=to_delete).delete()
    now = timezone.now()
    write_rows(model=Reading, fields=COMPUTED_FIELDS, rows=neighbours, updated_at=now)
    write_objects(objects=edited, fields=[*EDITABLE_FIELDS, *COMPUTED_FIELDS], updated_at=now)
    inserted = [reading for _, change in changes.values() for reading in change.inserted]
    if inserted:
        Reading.objects.bulk_create(inserted)


def _replacements(meter: Meter) -> list[tuple[dt.datetime, Decimal, dict]]:
    """When the meter's device was replaced, with the new device's initial values."""
    return _replacements_of([meter.pk])[meter.pk]


def _replacements_of(
    meter_ids: Iterable[int],
) -> defaultdict[int, list[tuple[dt.datetime, Decimal, dict]]]:
    """``_replacements`` of each of ``meter_ids``, in one query (none replaced: ``[]``)."""
    replacements: defaultdict[int, list[tuple[dt.datetime, Decimal, dict]]] = defaultdict(list)
    for meter_id, *replacement in MeterDevice.objects.filter(
        meter__in=list(meter_ids), installed_at__isnull=False, initial_value__isnull=False
    ).values_list("meter_id", "installed_at", "initial_value", "register_values"):
        replacements[meter_id].append(tuple(replacement))
    return replacements


def restarts_of(*, meter: Meter, register: Register) -> list[domain.Restart]:
    """The device replacements of ``meter`` as restarts of ``register``'s counting (§4.6)."""
    return _restarts(_replacements(meter), register)


def _restarts(
    replacements: list[tuple[dt.datetime, Decimal, dict]], register: Register
) -> list[domain.Restart]:
    """A replacement restarts every register: the default one from the new device's
    ``initial_value`` (CONTRACT §4.6), the others from theirs, 0 when not given."""
    return [
        domain.Restart(
            at,
            initial
            if register.is_default
            else Decimal(others.get(register.code, {}).get("initial_value", "0")),
        )
        for at, initial, others in replacements
    ]


def _reading_date(row: tuple | Reading) -> dt.datetime:
    return row[2] if isinstance(row, tuple) else row.reading_date


def _assign(reading: Reading, result: domain.Derived) -> None:
    """Store ``result`` on ``reading``."""
    for name, value in zip(COMPUTED_FIELDS, _computed(result), strict=True):
        setattr(reading, name, value)


# Changed readings written per statement by ``recompute``: bounds the size of one statement
# (about 100 bytes a reading) and the memory an account-wide re-derive holds, not the time,
# which is linear either way.
RECOMPUTE_WRITE_ROWS = 50_000
# Rows fetched at a time from the server-side cursor that streams the series.
RECOMPUTE_FETCH_ROWS = 20_000


def recompute(*, registers: Iterable[Register]) -> int:
    """Derive whole series again (after a change of thresholds or of a meter's factors).

    The readings of every register are streamed by one query in register and date order; each
    series is derived when complete and the readings whose derived fields change are written by
    ``write_rows``, ``RECOMPUTE_WRITE_ROWS`` at a time. Queries and time grow linearly with
    the readings, whatever the number of registers. Returns the number of readings changed.
    """
    by_pk = {register.pk: register for register in registers}
    if not by_pk:
        return 0
    meters = {register.meter_id: register.meter for register in by_pk.values()}
    replacements = _replacements_of(meters)
    settings = {pk: thresholds(meter.account) for pk, meter in meters.items()}
    now = timezone.now()
    changed = 0
    pending: list[tuple] = []
    with transaction.atomic():  # the stream is a server-side cursor: it needs a transaction
        rows = (
            Reading.objects.filter(register_id__in=list(by_pk))
            .order_by("register_id", "reading_date")
            .values_list(*_WINDOW_FIELDS)
            .iterator(chunk_size=RECOMPUTE_FETCH_ROWS)
        )
        for register_pk, group in itertools.groupby(rows, key=lambda row: row[1]):
            register = by_pk[register_pk]
            meter = meters[register.meter_id]
            series = list(group)
            derived = domain.derive_series(
                [domain.Point(row[2], row[3]) for row in series],
                factor=meter.multiplier * register.transformer_ratio,
                max_value=meter.max_value,
                thresholds=settings[meter.pk],
                restarts=_restarts(replacements[meter.pk], register),
            )
            for row, result in zip(series, derived, strict=True):
                if (stale := _stale(row, result)) is not None:
                    pending.append(stale)
            while len(pending) >= RECOMPUTE_WRITE_ROWS:
                written, pending = pending[:RECOMPUTE_WRITE_ROWS], pending[RECOMPUTE_WRITE_ROWS:]
                changed += write_rows(
                    model=Reading, fields=COMPUTED_FIELDS, rows=written, updated_at=now
                )
        changed += write_rows(model=Reading, fields=COMPUTED_FIELDS, rows=pending, updated_at=now)
    return changed


def write_rows(
    *,
    model: type[Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    updated_at: dt.datetime,
) -> int:
    """Set ``fields`` and ``updated_at`` of many stored rows of ``model`` in one statement.

    For every bulk write of the readings engine: index readings (``Reading``) and period
    readings (``PeriodReading``). ``rows`` are ``(id, *values)``, the values in ``fields``
    order as the columns hold them (a foreign key's is its id). Each column travels as one
    array parameter of ``UPDATE ... FROM unnest(...)``, typed from the model's field, so the
    statement's text depends on ``model`` and ``fields`` only and PostgreSQL matches the rows
    by id in time linear in their number; Django's ``bulk_update`` writes a
    ``CASE WHEN id = ... THEN ...`` per row and field, whose cost grows with the square of the
    rows (10,000 readings took minutes). The audit triggers see one UPDATE statement. Returns
    the number of rows updated; no statement when ``rows`` is empty.
    """
    if not rows:
        return 0
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    quote = connection.ops.quote_name
    assignments = ", ".join(
        f"{quote(column.column)} = changed.{quote(column.column)}" for column in columns[1:]
    )
    arrays = [f"%s::{column.db_type(connection)}[]" for column in columns]
    names = ", ".join(quote(column.column) for column in columns)
    table, pk = quote(meta.db_table), quote(columns[0].column)
    updated = quote(meta.get_field("updated_at").column)
    # The ids again as `= ANY(...)`: without it PostgreSQL, which knows the number of rows,
    # hashes them and scans the whole table, every meter's rows, for each write.
    sql = f"""
        UPDATE {table} SET {assignments}, {updated} = %s
        FROM unnest({", ".join(arrays)}) AS changed ({names})
        WHERE {table}.{pk} = changed.{pk} AND {table}.{pk} = ANY({arrays[0]})
    """  # noqa: S608 (only column names and types are formatted in)
    values = [
        _array_parameter(column, list(column_values))
        for column, column_values in zip(columns, zip(*rows, strict=True), strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [updated_at, *values, values[0]])
        return cursor.rowcount


def write_objects(
    *, objects: Sequence[Model], fields: Sequence[str], updated_at: dt.datetime
) -> int:
    """``write_rows`` for model instances (all of one model): their ``fields`` as they hold
    them, and ``updated_at``, also set on each. Returns the number of rows updated."""
    if not objects:
        return 0
    model = type(objects[0])
    attnames = [model._meta.get_field(name).attname for name in fields]
    for instance in objects:
        instance.updated_at = updated_at
    rows = [(instance.pk, *(getattr(instance, name) for name in attnames)) for instance in objects]
    return write_rows(model=model, fields=fields, rows=rows, updated_at=updated_at)


def _array_parameter(column: Any, values: list) -> str | list:
    """``values`` as one array parameter for ``column``. Numbers and booleans go as the array's
    text form, built here in one pass: the driver's own adaptation of a list quotes each element
    (a regular expression per value), most of a large write's time in Python. Other types (the
    few text and date fields a caller edits) are left to the driver."""
    if isinstance(column, BooleanField):
        elements = ["NULL" if value is None else "t" if value else "f" for value in values]
    elif isinstance(column, (DecimalField, IntegerField)):  # str(Decimal) is a numeric literal
        elements = ["NULL" if value is None else str(value) for value in values]
    else:
        return values
    return "{" + ",".join(elements) + "}"


def on_series_parameters_changed(sender, *, registers: QuerySet[Register], **kwargs) -> None:
    """A meter's factors or an account's thresholds changed: derive the series again."""
    recompute(registers=registers.select_related("meter__account"))
