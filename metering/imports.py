"""Imports of CSV files (CONTRACT §7): the logic the ``import_*`` commands and the admin's
import page share; the file format and its checks are ``metering.csv_files``'.

Every import has the same shape::

    result = import_meters(account=account, path=path, dry_run=True)
    result.created, result.skipped, result.rejected      # counts
    result.rejected_rows                                 # [RejectedRow(line, code, message)]

An import function takes the account, the path of a CSV file and ``dry_run`` (every row is
validated and written in a transaction that is rolled back at the end), plus what a command
passes through: ``errors_out`` (the ``--errors-out`` file), ``stdout`` and ``stderr``. It
returns an :class:`ImportResult` and never raises because rows are rejected; a file that cannot
be read at all (missing, not UTF-8, a wrong header) is a ``CommandError`` whose message is meant
for a person, and nothing of the file is stored. A command raises
``CommandError(result.failure, returncode=1)`` when ``result.failure`` is set (rows rejected).

For another kind of rows (``readings.imports``), read the file through
:class:`RecordingCsvImport` and return ``ImportResult.of(csv_import, label=..., dry_run=...)``
before the file is closed.

Meters (``import_meters``): the columns are the API's meter fields (CONTRACT §3), references by
code instead of id:

- required: ``name``, ``serial_number``, ``meter_type``;
- optional: ``unit billing_type billing_direction communication_type status multiplier
  precision_digits max_value is_main_meter manufacturer model_reference description location
  notes installation_date last_inspection_date next_inspection_date reading_interval
  properties`` (a JSON object), and ``place_code``, ``estate_code`` (inside ``place_code``, or
  alone when that code is unique in the account), ``gateway_identifier``,
  ``parent_serial_number``. ``service_place_id`` and ``tariff_id`` are not imported.

An empty cell takes the API's default. Booleans: ``true``/``false`` (also ``1``/``0``,
``yes``/``no``); dates ISO ``YYYY-MM-DD``; decimals with a dot, or a comma in a ``;`` file.

A meter whose ``serial_number`` is already in the account is skipped, not changed, so importing
the same file twice creates nothing the second time. Every other row goes through
``metering.services.create_meter``, the API's own validation, in a savepoint of its own: a
refused row is rejected (``validation_error`` with the field messages) and the others go on.
Reference codes that name nothing are rejected as ``unknown_place``, ``unknown_estate``,
``ambiguous_estate``, ``unknown_gateway``, ``unknown_parent``.

A parent may come after its sub-meters in the file: a row whose parent is not created yet is
set aside (only those rows are kept in memory) and retried once the file is read, until no
more can be placed; what is left is rejected as ``unknown_parent``.

The whole file is one transaction: the accepted rows are stored together, or none if the
import stops on an error (a non-UTF-8 byte, a crash). ``dry_run`` rolls it back at the end.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from metering import domain, services
from metering.csv_files import CsvColumns, CsvImport, parse_bool
from metering.models import Account, Estate, Gateway, Meter, Place

# Rejected rows an ImportResult keeps (the counts stay exact): what a page can show. The
# errors file has them all.
REJECTED_ROWS_KEPT = 1000


class RejectedRow(NamedTuple):
    """A row not stored: its line (the header is line 1), its error code and message."""

    line: int
    code: str
    message: str


class RecordingCsvImport(CsvImport):
    """A :class:`CsvImport` that holds its rejected rows until :meth:`report_rejected`: they are
    then reported (stderr, the errors file, the count) in line order, whatever order the import
    found them in (meters whose parent comes later, readings written meter by meter). An import
    that finds them in line order already reports each with :meth:`report`, holding none."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: list[RejectedRow] = []
        self.reported: list[RejectedRow] = []

    def reject(self, line: int, code: str, message: str) -> None:
        self.pending.append(RejectedRow(line, code, message))

    def report(self, line: int, code: str, message: str) -> None:
        """Report a rejected row now; the first :data:`REJECTED_ROWS_KEPT` are kept."""
        super().reject(line, code, message)
        if len(self.reported) < REJECTED_ROWS_KEPT:
            self.reported.append(RejectedRow(line, code, message))

    def report_rejected(self) -> list[RejectedRow]:
        """Report the held rows in line order; the first :data:`REJECTED_ROWS_KEPT` rows."""
        rows, self.pending = sorted(self.pending, key=lambda row: row.line), []
        for row in rows:
            self.report(*row)
        return self.reported


@dataclass
class ImportResult:
    """What an import did: counts of rows ``created``, ``skipped`` (already there) and
    ``rejected``, the first rejected rows (:class:`RejectedRow`: ``line``, ``code``,
    ``message``) in line order, at most :data:`REJECTED_ROWS_KEPT` of them, the ``summary``
    line, and ``failure``: the command's error when rows were rejected (exit status 1), else
    "". With ``dry_run`` nothing was stored: the counts say what the import would do."""

    created: int
    skipped: int
    rejected: int
    rejected_rows: list[RejectedRow]
    dry_run: bool
    summary: str
    failure: str = ""

    @classmethod
    def of(cls, csv_import: RecordingCsvImport, *, label: str, dry_run: bool) -> ImportResult:
        """The result of an import read through ``csv_import``, still open: its rejected rows
        are reported, and the summary printed on the command's stdout (when it has one)."""
        kept = csv_import.report_rejected()
        try:
            csv_import.finish(label=label, dry_run=dry_run)
            failure = ""
        except CommandError as exc:
            failure = str(exc)
        counts = csv_import.counts
        return cls(
            created=counts["created"],
            skipped=counts["skipped"],
            rejected=counts["rejected"],
            rejected_rows=kept,
            dry_run=dry_run,
            summary=csv_import.summary(label=label, dry_run=dry_run),
            failure=failure,
        )


# --- meters --------------------------------------------------------------------------------

TEXT_FIELDS = (
    "unit",
    "billing_type",
    "billing_direction",
    "communication_type",
    "status",
    "manufacturer",
    "model_reference",
    "description",
    "location",
    "notes",
)
# Converted and validated by the model's fields (Meter.full_clean), as the API's are.
TYPED_FIELDS = (
    "multiplier",
    "precision_digits",
    "max_value",
    "installation_date",
    "last_inspection_date",
    "next_inspection_date",
    "reading_interval",
)
REFERENCES = ("place_code", "estate_code", "gateway_identifier", "parent_serial_number")
METER_COLUMNS = CsvColumns(
    required=("name", "serial_number", "meter_type"),
    optional=(*TEXT_FIELDS, *TYPED_FIELDS, "is_main_meter", "properties", *REFERENCES),
    decimals=("multiplier", "max_value"),
)


class RowRejected(Exception):
    """A row refused with a contract error code (``unknown_place``...) and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class ParentNotYet(Exception):
    """The row's parent is neither stored nor created yet: retry after the file."""


def validation_messages(exc: ValidationError) -> str:
    """``field: message; other: message`` — a model validation error on one line."""
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


class AccountReferences:
    """The account's places, estates, gateways and meters by code, loaded once (O(1) queries)."""

    def __init__(self, account: Account) -> None:
        self.places = dict(
            Place.objects.filter(account=account).values_list("code", "id").iterator()
        )
        self.estates: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for code, place_code, pk in (
            Estate.objects.filter(account=account)
            .values_list("code", "place__code", "id")
            .iterator()
        ):
            self.estates[code].append((place_code, pk))
        self.gateways = dict(
            Gateway.objects.filter(account=account).values_list("identifier", "id").iterator()
        )
        self.meters = dict(
            Meter.objects.filter(account=account).values_list("serial_number", "id").iterator()
        )

    def resolve(self, row: dict[str, str]) -> dict[str, Any]:
        """The ids of the row's references; :class:`RowRejected` or :class:`ParentNotYet`."""
        values: dict[str, Any] = {}
        place_code, estate_code = row.get("place_code", ""), row.get("estate_code", "")
        if place_code:
            if place_code not in self.places:
                raise RowRejected("unknown_place", f"No place with code {place_code!r}.")
            values["place_id"] = self.places[place_code]
        if estate_code:
            candidates = [
                pk
                for estate_place, pk in self.estates.get(estate_code, [])
                if not place_code or estate_place == place_code
            ]
            if not candidates:
                where = f" in place {place_code!r}" if place_code else ""
                raise RowRejected("unknown_estate", f"No estate with code {estate_code!r}{where}.")
            if len(candidates) > 1:
                raise RowRejected(
                    "ambiguous_estate",
                    f"Several places have an estate {estate_code!r}: give its place_code.",
                )
            values["estate_id"] = candidates[0]
        identifier = row.get("gateway_identifier", "")
        if identifier:
            if identifier not in self.gateways:
                raise RowRejected("unknown_gateway", f"No gateway with identifier {identifier!r}.")
            values["gateway_id"] = self.gateways[identifier]
        parent = row.get("parent_serial_number", "")
        if parent:
            if parent not in self.meters:
                raise ParentNotYet(parent)
            values["parent_meter_id"] = self.meters[parent]
        return values


def meter_values(row: dict[str, str]) -> dict[str, Any]:
    """The row's own fields for ``create_meter``; empty cells are left to the defaults."""
    values: dict[str, Any] = {
        "name": row["name"],
        "serial_number": row["serial_number"],
        "meter_type": row["meter_type"],
    }
    for name in (*TEXT_FIELDS, *TYPED_FIELDS):
        if row.get(name):
            values[name] = row[name]
    if row.get("is_main_meter"):
        try:
            values["is_main_meter"] = parse_bool(row["is_main_meter"])
        except ValueError as exc:
            raise RowRejected("validation_error", f"is_main_meter: {exc}") from None
    if row.get("properties"):
        try:
            properties = json.loads(row["properties"])
        except ValueError:
            properties = None
        if not isinstance(properties, dict):
            raise RowRejected("validation_error", "properties: must be a JSON object.")
        if (problem := domain.json_problem(properties)) is not None:
            raise RowRejected("validation_error", f"properties: {problem}")
        values["properties"] = properties
    return values


def import_meters(
    *,
    account: Account,
    path: str,
    dry_run: bool = False,
    errors_out: str | None = None,
    stdout: Any = None,
    stderr: Any = None,
) -> ImportResult:
    """Import the meters of the CSV file at ``path`` into ``account`` (see the module's doc)."""
    with RecordingCsvImport(
        path, columns=METER_COLUMNS, errors_out=errors_out, stdout=stdout, stderr=stderr
    ) as csv_import:
        import_meter_rows(csv_import, account=account, dry_run=dry_run)
        return ImportResult.of(csv_import, label="Meters", dry_run=dry_run)


def import_meter_rows(csv_import: CsvImport, *, account: Account, dry_run: bool = False) -> None:
    """Import the rows of an open meters file, counted on ``csv_import``, in one transaction.

    :func:`import_meters` opens the file; ``manage.py import_meters`` opens it itself so that an
    unreadable file is reported before the account is looked up.
    """
    with transaction.atomic():
        references = AccountReferences(account)
        waiting: list[tuple[int, dict[str, str]]] = []
        for line, row in csv_import.rows():
            if not import_meter_row(account, references, csv_import, line, row):
                waiting.append((line, row))
        # Parents defined later in the file: retry until a round places none.
        while waiting:
            still = [
                (line, row)
                for line, row in waiting
                if not import_meter_row(account, references, csv_import, line, row)
            ]
            if len(still) == len(waiting):
                break
            waiting = still
        for line, row in waiting:
            csv_import.reject(
                line,
                "unknown_parent",
                f"No meter with serial number {row['parent_serial_number']!r} "
                "(neither in the account nor accepted from this file).",
            )
        if dry_run:
            transaction.set_rollback(True)


def import_meter_row(
    account: Account,
    references: AccountReferences,
    csv_import: CsvImport,
    line: int,
    row: dict[str, str],
) -> bool:
    """Create, skip or reject one row; ``False`` when its parent is not there yet."""
    serial = row["serial_number"]
    if serial and serial in references.meters:
        csv_import.skipped()
        return True
    try:
        values = {**meter_values(row), **references.resolve(row)}
        meter = services.create_meter(account=account, values=values)
    except ParentNotYet:
        return False
    except RowRejected as exc:
        csv_import.reject(line, exc.code, exc.message)
    except ValidationError as exc:
        csv_import.reject(line, "validation_error", validation_messages(exc))
    except IntegrityError as exc:
        # create_meter's own savepoint is rolled back; the file's transaction goes on.
        csv_import.reject(line, "conflict", str(exc).splitlines()[0])
    else:
        references.meters[meter.serial_number] = meter.pk
        csv_import.created()
    return True
