"""``manage.py export_readings --account SLUG [--meter SERIAL] [--start D] [--end D] [-o FILE]``.

A CSV (UTF-8 without BOM, ``,`` delimiter, ``\\n`` line ends) of the account's index readings,
ordered by meter serial number, register code and reading date, on stdout or in ``-o FILE``.
It is the format ``import_readings`` reads back (CONTRACT §7), which ignores the computed
columns. The columns:

Input columns (the API's fields, CONTRACT §4.1):

- ``serial_number`` — the meter's;
- ``register`` — the register's code (``default`` for single-register meters);
- ``reading_date`` — ISO 8601 in UTC with ``Z``, e.g. ``2024-01-31T23:00:00Z``;
- ``value`` — decimal with a dot, as stored (6 decimals);
- ``reading_type`` — ``MANUAL AUTOMATIC PHOTO ESTIMATED``;
- ``is_estimated``, ``is_billing_reading`` — ``true`` / ``false``;
- ``reader_name``, ``notes`` — text.

Computed columns (read-only in the API):

- ``previous_value``, ``consumption`` — decimals, empty when null (the register's first);
- ``is_rollover`` — ``true`` / ``false``;
- ``anomaly_flags`` — the flags separated by spaces (``SPIKE NEGATIVE``), empty when none;
- ``is_locked`` — ``true`` when a closed billing period reaches the reading;
- ``source`` — ``API IMPORT PORTAL ADMIN``; ``created_by`` — text.

``--start`` and ``--end`` are days ``YYYY-MM-DD`` in the account's time zone, both included
(as the API's ``start_date`` and ``end_date`` filters). The readings are streamed from a
server-side cursor (``values_list(...).iterator(chunk_size=...)``): memory stays flat.
An unknown account or meter, or a bad date, is a one-line error and exit status 1.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet

from metering import domain as metering_domain
from metering.csv_files import write_csv
from metering.models import Account, Meter
from readings import domain
from readings.models import Reading

INPUT_COLUMNS = (
    "serial_number",
    "register",
    "reading_date",
    "value",
    "reading_type",
    "is_estimated",
    "is_billing_reading",
    "reader_name",
    "notes",
)
COMPUTED_COLUMNS = (
    "previous_value",
    "consumption",
    "is_rollover",
    "anomaly_flags",
    "is_locked",
    "source",
    "created_by",
)
COLUMNS = (*INPUT_COLUMNS, *COMPUTED_COLUMNS)
CHUNK_SIZE = 2000

FIELDS = (
    "meter__serial_number",
    "register__code",
    "reading_date",
    "value",
    "reading_type",
    "is_estimated",
    "is_billing_reading",
    "reader_name",
    "notes",
    "previous_value",
    "consumption",
    "is_rollover",
    *domain.FLAG_FIELDS.values(),
    "register__locked_until",
    "source",
    "created_by",
)


def utc_iso(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with ``Z``."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def flag(value: bool) -> str:
    return "true" if value else "false"


def csv_rows(readings: Any) -> Iterator[tuple[Any, ...]]:
    """One CSV row per ``values_list(*FIELDS)`` tuple."""
    flag_names = tuple(domain.FLAG_FIELDS)
    for row in readings:
        (
            serial,
            register,
            reading_date,
            value,
            reading_type,
            is_estimated,
            is_billing_reading,
            reader_name,
            notes,
            previous_value,
            consumption,
            is_rollover,
            *flags,
            locked_until,
            source,
            created_by,
        ) = row
        yield (
            serial,
            register,
            utc_iso(reading_date),
            value,
            reading_type,
            flag(is_estimated),
            flag(is_billing_reading),
            reader_name,
            notes,
            previous_value,
            consumption,
            flag(is_rollover),
            " ".join(name for name, on in zip(flag_names, flags, strict=True) if on),
            flag(locked_until is not None and reading_date <= locked_until),
            source,
            created_by,
        )


def export_rows(readings: QuerySet[Reading]) -> Iterator[tuple[Any, ...]]:
    """The CSV rows of ``readings`` (under :data:`COLUMNS`), ordered by meter serial number,
    register code and reading date, read from a server-side cursor.

    The command and the admin's "Export to CSV" both write these rows.
    """
    rows = (
        readings.order_by("meter__serial_number", "register__code", "reading_date")
        .values_list(*FIELDS)
        .iterator(chunk_size=CHUNK_SIZE)
    )
    return csv_rows(rows)


def parse_day(option: str, text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"Invalid {option} {text!r}: expected a day YYYY-MM-DD.") from None
    if not metering_domain.date_in_range(day):
        raise CommandError(f"Invalid {option} {text!r}: {metering_domain.DATE_RANGE_MESSAGE}")
    return day


class Command(BaseCommand):
    help = "Export index readings as CSV (the format import_readings reads back)."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="The account's slug.")
        parser.add_argument("--meter", metavar="SERIAL", help="Only this meter's readings.")
        parser.add_argument("--start", metavar="D", help="From this day (YYYY-MM-DD), included.")
        parser.add_argument("--end", metavar="D", help="To this day (YYYY-MM-DD), included.")
        parser.add_argument("-o", "--output", metavar="FILE", help="Write here, not to stdout.")

    def handle(self, *args, account, meter, start, end, output, **options):
        slug = account
        account = Account.objects.filter(slug=slug).first()
        if account is None:
            raise CommandError(f"Unknown account {slug!r}.")
        start_day, end_day = parse_day("--start", start), parse_day("--end", end)
        if start_day and end_day and start_day > end_day:
            raise CommandError(f"--start {start_day} is after --end {end_day}.")

        readings = Reading.objects.filter(account=account)
        if meter is not None:
            meter_id = (
                Meter.objects.filter(account=account, serial_number=meter)
                .values_list("id", flat=True)
                .first()
            )
            if meter_id is None:
                raise CommandError(f"No meter with serial number {meter!r} in {slug!r}.")
            readings = readings.filter(meter_id=meter_id)
        zone = account.zone
        if start_day:
            readings = readings.filter(
                reading_date__gte=dt.datetime.combine(start_day, dt.time.min, tzinfo=zone)
            )
        if end_day:
            after = end_day + dt.timedelta(days=1)
            readings = readings.filter(
                reading_date__lt=dt.datetime.combine(after, dt.time.min, tzinfo=zone)
            )
        rows = export_rows(readings)

        if output is None:
            write_csv(self.stdout, COLUMNS, rows)
            return
        try:
            handle = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}.") from None
        with handle:
            count = write_csv(handle, COLUMNS, rows)
        self.stdout.write(f"Exported {count} readings to {output}.")
