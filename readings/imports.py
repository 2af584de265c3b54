"""Imports of index and period readings from CSV files (CONTRACT §7, §4.1, §4.4, §4.7).

Used by ``manage.py import_readings`` and ``import_period_readings``, and meant for the admin's
import page too (an uploaded file saved to a temporary path)::

    result = import_readings(account=account, path=path, actor_label="user:alice")
    result.created, result.skipped, result.rejected        # counts
    result.rejected_rows                                   # [RejectedRow(line, code, message)]
    result.summary                                         # "Readings: 3 created, ..."

Both functions take ``account`` (an :class:`~metering.models.Account`), ``path``, and
keyword options ``dry_run``, ``errors_out`` (the ``--errors-out`` CSV), ``stdout``/``stderr``
(a command's output wrappers: the summary line, a progress bar on a terminal, the first
rejected rows; ``None`` for silence) and ``actor_label`` (``created_by`` and the audit
history's actor; the source is always ``IMPORT``). They return an :class:`ImportResult` and
raise :class:`~django.core.management.base.CommandError` (``returncode`` 1) when the file
cannot be imported at all: unreadable, not UTF-8, a bad header, or a database error. Nothing
of the file is stored then.

The columns are the API's field names (``metering.csv_files`` reads the file: ``,`` or ``;``,
BOM, decimal comma in ``;`` files, line numbers):

- index readings: ``serial_number``, ``reading_date``, ``value`` (required), ``register`` (a
  register code; empty: the default register), ``reading_type``, ``is_estimated``,
  ``is_billing_reading``, ``reader_name``, ``notes``, ``photo_url``; the computed columns of
  ``export_readings`` are accepted and ignored, so an export reads back;
- period readings: ``serial_number``, ``start_date``, ``end_date``, ``consumption``
  (required), ``cost``, ``cost_currency``, ``demand_kw``, ``is_estimated``, ``notes``.

An empty cell takes the API's default. Each row is validated by the API's own serializer
(``readings.api.serializers``), so ``reading_date`` is parsed as the API does: ISO 8601,
without offset in the account's time zone, a date alone is 00:00 there.

How rows are written, on PostgreSQL: set-based (``readings.bulk_import``). The file is copied
into a staging table (``COPY``), typed, checked and chained in SQL, with window functions for
the chain and the flags, then inserted with one ``INSERT ... SELECT``; rows in an unusual
shape (another date format, a ``photo_url``...) are validated by the API's serializer in
Python. Memory stays flat whatever the file's size (122 MiB resident at 100,000 rows as at
1,000,000: ``bench/import_readings.py``), and it gives exactly what the engine gives: the
tests compare both on the same files.

On SQLite (the demo), and as the reference of those tests (``set_based=False``): through the
engine services the API calls (``readings.services.create_readings``), one call per meter
with all that meter's rows, in the file's order (the engine derives the chain whatever the
order), so rules, flags, locks and the audit history are the API's by construction. The rows
of a meter may be spread over the file: the file is read once into
``{meter id: [(line, engine input), ...]}``, about 0.5 KB per row. Period readings (bills,
a few per meter and month) always take this path
(``readings.periods.create_period_readings``).

What a row becomes:

- created; or **skipped** when the meter already has a reading identical to it (same register,
  ``reading_date`` and value; for a period: same ``start_date``, ``end_date`` and
  consumption), so re-importing a file stores nothing twice, even after its readings were
  locked. The other fields are not compared: a skipped row changes nothing;
- or rejected, with its line and a code: ``unknown_meter`` (no meter with that serial number
  in the account), ``unknown_register`` (no register with that code on the meter),
  ``validation_error`` (the API's field messages), and the engine's codes:
  ``duplicate_reading`` (another value at a stored date, or an earlier row of the file at the
  same register and date), ``reading_locked``, ``overlap`` (periods), ``conflict`` (a
  decommissioned meter); ``malformed_row`` from the CSV reader.

The whole file is one transaction: the accepted rows are stored together, or none when the
import stops (a database error, a non-UTF-8 byte). ``dry_run`` runs everything, the writes
included, then rolls back. Rejected rows are reported in line order, after the file is read.
The meters' row locks (as ``readings.services._lock_meter`` takes them) are held until the
file's transaction ends: an API write to an imported meter waits for the import to finish.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from rest_framework import exceptions, serializers

from metering.csv_files import CsvColumns
from metering.errors import ApiError
from metering.imports import ImportResult, RecordingCsvImport, RejectedRow
from metering.models import Account, Meter, Register
from readings import bulk_import, periods, services
from readings.api import serializers as reading_serializers
from readings.api.views import period_input, reading_input
from readings.bulk_import import (
    READING_COLUMNS,
    SERIAL_REQUIRED,
    api_data,
    messages,
    unknown_meter,
    unknown_register,
)
from readings.models import PeriodReading, Reading

PERIOD_COLUMNS = CsvColumns(
    required=("serial_number", "start_date", "end_date", "consumption"),
    optional=("cost", "cost_currency", "demand_kw", "is_estimated", "notes"),
    decimals=("consumption", "cost", "demand_kw"),
)


def _item_message(error: services.ItemError) -> str:
    return messages(error.details) if error.details else error.message


@dataclass
class _Kind:
    """What differs between index and period readings."""

    label: str
    columns: CsvColumns
    serializer: type[serializers.Serializer]
    to_input: Callable[[dict[str, Any]], Any]
    create: Callable[..., Any]
    # Given the account, the function that sorts one meter's rows out before the engine:
    # (meter id, [(line, input)]) -> (rows to create, skipped count, rejected rows).
    sorter: Callable[[Account], Callable[[int, list], tuple[list, int, list[RejectedRow]]]]


# --- index readings --------------------------------------------------------------------------


class _Registers:
    """The account's registers: ``(meter id, code) -> id`` and each meter's default."""

    def __init__(self, account: Account) -> None:
        self.by_code: dict[tuple[int, str], int] = {}
        self.default: dict[int, int] = {}
        for meter_id, code, pk, is_default in (
            Register.objects.filter(meter__account=account)
            .values_list("meter_id", "code", "id", "is_default")
            .iterator()
        ):
            self.by_code[meter_id, code] = pk
            if is_default:
                self.default[meter_id] = pk


def _sort_out_readings(
    registers: _Registers, meter_id: int, rows: list[tuple[int, services.ReadingInput]]
) -> tuple[list[tuple[int, services.ReadingInput]], int, list[RejectedRow]]:
    """Rows to create, rows identical to stored readings (skipped), unknown registers."""
    keyed, rejected = [], []
    for line, item in rows:
        if item.register_code is None:
            register_id = registers.default.get(meter_id)
        else:
            register_id = registers.by_code.get((meter_id, item.register_code))
        if register_id is None:
            rejected.append(
                RejectedRow(line, "unknown_register", unknown_register(item.register_code))
            )
            continue
        keyed.append((register_id, line, item))
    stored = {
        (register_id, reading_date): value
        for register_id, reading_date, value in Reading.objects.filter(
            meter_id=meter_id, reading_date__in={item.reading_date for _, _, item in keyed}
        ).values_list("register_id", "reading_date", "value")
    }
    to_create, skipped = [], 0
    for register_id, line, item in keyed:
        if stored.get((register_id, item.reading_date)) == item.value:
            skipped += 1
        else:
            to_create.append((line, item))
    return to_create, skipped, rejected


# --- period readings -------------------------------------------------------------------------


def _sort_out_periods(
    meter_id: int, rows: list[tuple[int, periods.PeriodInput]]
) -> tuple[list[tuple[int, periods.PeriodInput]], int, list[RejectedRow]]:
    """Rows to create and rows identical to stored period readings (skipped)."""
    stored = {
        (start, end): consumption
        for start, end, consumption in PeriodReading.objects.filter(
            meter_id=meter_id, start_date__in={item.start_date for _, item in rows}
        ).values_list("start_date", "end_date", "consumption")
    }
    to_create, skipped = [], 0
    for line, item in rows:
        if stored.get((item.start_date, item.end_date)) == item.consumption:
            skipped += 1
        else:
            to_create.append((line, item))
    return to_create, skipped, []


# --- the import ------------------------------------------------------------------------------


def import_readings(
    *,
    account: Account,
    path: str,
    dry_run: bool = False,
    errors_out: str | None = None,
    stdout: Any = None,
    stderr: Any = None,
    actor_label: str = "system:import_readings",
    set_based: bool | None = None,
) -> ImportResult:
    """Import a CSV of index readings into ``account`` (see the module's doc).

    ``set_based``: through ``readings.bulk_import`` (the default on PostgreSQL) or, when
    False, through the engine meter by meter (the path on SQLite, and the tests' reference).
    """
    kind = _Kind(
        label="Readings",
        columns=READING_COLUMNS,
        serializer=reading_serializers.ReadingSerializer,
        to_input=reading_input,
        # Looked up at each call, as every caller of the engine does.
        create=lambda **kwargs: services.create_readings(**kwargs),
        sorter=lambda account: functools.partial(_sort_out_readings, _Registers(account)),
    )
    if set_based is None:
        set_based = connection.vendor == "postgresql"
    return _import(kind, account, path, dry_run, errors_out, stdout, stderr, actor_label, set_based)


def import_period_readings(
    *,
    account: Account,
    path: str,
    dry_run: bool = False,
    errors_out: str | None = None,
    stdout: Any = None,
    stderr: Any = None,
    actor_label: str = "system:import_period_readings",
) -> ImportResult:
    """Import a CSV of period readings into ``account`` (see the module's doc)."""
    kind = _Kind(
        label="Period readings",
        columns=PERIOD_COLUMNS,
        serializer=reading_serializers.PeriodReadingSerializer,
        to_input=period_input,
        create=lambda **kwargs: periods.create_period_readings(**kwargs),
        sorter=lambda account: _sort_out_periods,
    )
    return _import(kind, account, path, dry_run, errors_out, stdout, stderr, actor_label)


def _import(
    kind: _Kind,
    account: Account,
    path: str,
    dry_run: bool,
    errors_out: str | None,
    stdout: Any,
    stderr: Any,
    actor_label: str,
    set_based: bool = False,
) -> ImportResult:
    actor = services.Actor(actor_label, "IMPORT")
    with RecordingCsvImport(
        path, columns=kind.columns, errors_out=errors_out, stdout=stdout, stderr=stderr
    ) as csv_import:
        try:
            with services.writing(actor):
                if set_based:
                    bulk_import.copy_rows(csv_import)
                    csv_import.status("Checking the rows, computing the chain and the flags...")
                    outcome = bulk_import.import_rows(
                        account=account, csv_import=csv_import, actor=actor
                    )
                    csv_import.created(outcome.created)
                    csv_import.skipped(outcome.skipped)
                    for line, code, message in bulk_import.rejected_rows():
                        csv_import.report(line, code, message)
                else:
                    batches = _read(kind, account, csv_import)
                    sort_out = kind.sorter(account)
                    for meter_id in sorted(batches):
                        rows = batches.pop(meter_id)
                        _write(kind, meter_id, sort_out(meter_id, rows), actor, csv_import)
                if dry_run:
                    transaction.set_rollback(True)
        except DatabaseError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(
                f"{path}: the import stopped on a database error, nothing was stored: {reason}",
                returncode=1,
            ) from None
        return ImportResult.of(csv_import, label=kind.label, dry_run=dry_run)


def _read(kind: _Kind, account: Account, csv_import: RecordingCsvImport) -> dict[int, list]:
    """The file's valid rows by meter id: ``{meter id: [(line, engine input), ...]}``."""
    meters = dict(
        Meter.objects.filter(account=account).values_list("serial_number", "id").iterator()
    )
    # One serializer validates every row, as the batch endpoint's does.
    validator = kind.serializer(context={"account": account})
    batches: dict[int, list] = defaultdict(list)
    for line, row in csv_import.rows():
        serial = row.get("serial_number", "")
        if not serial:
            csv_import.reject(line, "validation_error", SERIAL_REQUIRED)
            continue
        meter_id = meters.get(serial)
        if meter_id is None:
            csv_import.reject(line, "unknown_meter", unknown_meter(serial))
            continue
        try:
            values = validator.run_validation(api_data(row))
        except exceptions.ValidationError as exc:
            csv_import.reject(line, "validation_error", messages(exc.detail))
            continue
        batches[meter_id].append((line, kind.to_input(values)))
    return batches


def _write(
    kind: _Kind,
    meter_id: int,
    sorted_out: tuple[list[tuple[int, Any]], int, list[RejectedRow]],
    actor: services.Actor,
    csv_import: RecordingCsvImport,
) -> None:
    """One meter's rows through the engine, in one call; its item errors become rejected rows."""
    to_create, skipped, rejected = sorted_out
    for _ in range(skipped):
        csv_import.skipped()
    for row in rejected:
        csv_import.reject(row.line, row.code, row.message)
    if not to_create:
        return
    lines: Sequence[int] = [line for line, _ in to_create]
    try:
        result = kind.create(
            meter=Meter(pk=meter_id), items=[item for _, item in to_create], actor=actor
        )
    except ApiError as exc:  # the whole meter: a decommissioned one (409 conflict)
        for line in lines:
            csv_import.reject(line, exc.error_code, str(exc.detail))
        return
    for _ in result.accepted:
        csv_import.created()
    for error in result.errors:
        csv_import.reject(lines[error.index], error.code, _item_message(error))
