"""The set-based import of index readings on PostgreSQL (CONTRACT §7, §4.1–§4.3, §4.7).

``readings.imports.import_readings`` calls :func:`import_rows` on PostgreSQL; it gives exactly
what the readings engine (``readings.services.create_readings``, the API's path, which the
importer uses on SQLite) gives for the same file, row by row, in a constant number of
statements whatever the file's size:

1. **COPY**: the file's cells are streamed, untouched, into a temporary table (one text column
   per header column, plus the line number); a row with more cells than the header is marked
   ``malformed_row`` there. Python holds one row at a time.
2. **Typing in SQL**: cells are stripped (the characters Python's ``str.strip`` strips), the
   decimal comma of a ``;`` file becomes a dot, meters are found by serial number. A row in
   the common shape (``YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH:MM]``, a plain decimal value,
   known choices and booleans, no ``photo_url``) is typed in SQL. Any other row (and a row
   without offset within 3 hours of a DST change, where PostgreSQL and Python could read a
   repeated or skipped wall-clock time differently) is validated by the API's serializer in
   Python, so every accepted value and every error message is the API's.
3. **Checks in SQL**, in the engine's order: unknown register, identical to a stored reading
   (skipped), decommissioned meter (``conflict``), value and date limits (``validation_error``),
   locks (``reading_locked``), the same register and date earlier in the file or stored
   (``duplicate_reading``).
4. **The chain in SQL**: for each register that gets readings, the stored series from
   ``baseline_days`` before its earliest new reading (and the reading just before, for its
   interval) is merged with the new readings; ``lag`` gives each reading its previous one,
   a device replacement (``metering_meterdevice``) restarts the count, ``max_value`` rolls
   it over, and the baseline of the anomaly flags is a ``RANGE`` window of ``baseline_days``
   over the earlier non-negative intervals. The comparisons are ``readings.domain``'s, in exact
   ``numeric`` arithmetic.
5. **Writes**: one ``INSERT ... SELECT`` of the new readings, one ``UPDATE ... FROM`` of the
   stored ones whose derived fields change, one ``UPDATE`` of the meters' last readings. The
   audit history's statement-level triggers record them with the import's actor.

The caller's transaction holds it all: the meters of the file are locked (``FOR NO KEY
UPDATE``, in id order) before any stored reading is read, as the engine does, and nothing is
stored unless the whole file is.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from rest_framework import exceptions
from rest_framework.fields import BooleanField

from metering import domain as metering_domain
from metering.csv_files import CsvColumns, CsvImport
from metering.errors import DuplicateReading, ReadingLocked
from metering.models import Account
from readings import domain, services
from readings.management.commands.export_readings import COMPUTED_COLUMNS

# What ``str.strip`` strips: btrim() strips the same characters.
WHITESPACE = "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())
CHOICES = ("MANUAL", "AUTOMATIC", "PHOTO", "ESTIMATED")
TRUE_TEXTS = sorted(value for value in BooleanField.TRUE_VALUES if isinstance(value, str))
FALSE_TEXTS = sorted(value for value in BooleanField.FALSE_VALUES if isinstance(value, str))
SERIAL_REQUIRED = "serial_number: This field is required."
# The temporary tables of an import, in the order they are made.
TABLES = (
    "import_raw",
    "import_text",
    "import_dates",
    "import_typed",
    "import_python",
    "import_checked",
    "import_new",
    "import_start",
    "import_series",
)
# The file's columns: the API's field names (the computed ones of ``export_readings`` are read
# back and ignored).
READING_COLUMNS = CsvColumns(
    required=("serial_number", "reading_date", "value"),
    optional=(
        "register",
        "reading_type",
        "is_estimated",
        "is_billing_reading",
        "reader_name",
        "notes",
        "photo_url",
    ),
    decimals=("value",),
    ignored=COMPUTED_COLUMNS,
)
COLUMNS = (*READING_COLUMNS.required, *READING_COLUMNS.optional)
# What the API's serializer reads of a row: all but the serial number (reading_date, value...).
PYTHON_FIELDS = COLUMNS[1:]
# Validated in Python: rows read at a time (only these rows are held, a batch at a time).
PYTHON_BATCH = 2000


def api_data(row: dict[str, str]) -> dict[str, Any]:
    """A row as the API's serializer takes it: empty cells left out (the API's defaults)."""
    return {name: text for name, text in row.items() if text != "" and name != "serial_number"}


def messages(detail: Any) -> str:
    """``"value: Ensure ...; reading_date: ..."`` from a DRF or engine error's details."""
    if isinstance(detail, dict):
        return "; ".join(f"{name}: {messages(texts)}" for name, texts in detail.items())
    if isinstance(detail, list):
        return " ".join(messages(text) for text in detail)
    return str(detail)


def unknown_meter(serial: str) -> str:
    return f"No meter with serial number {serial!r} in this account."


def unknown_register(code: str | None) -> str:
    return f"No register {code!r} on this meter."


@dataclass
class Outcome:
    created: int
    skipped: int


def _column(header: list[str], name: str) -> str:
    """The staging column of ``name`` or an empty text when the file does not have it."""
    return f"c{header.index(name)}" if name in header else "''::text"


def copy_rows(csv_import: CsvImport) -> None:
    """Step 1: the file's rows into ``import_raw`` (line, problem, c0 … cN)."""
    cells_iter = csv_import.cells()
    first = next(cells_iter, None)  # reads the header too
    width = len(csv_import.header)
    columns = ", ".join(f"c{index} text" for index in range(width))
    with connection.cursor() as cursor:
        # Dropped at commit; an earlier import in the same transaction (a test) left them.
        cursor.execute(f"DROP TABLE IF EXISTS {', '.join(f'pg_temp.{t}' for t in TABLES)}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE import_raw (line integer, problem text, {columns})"
            " ON COMMIT DROP"
        )
        padding = [""] * width
        with cursor.copy("COPY import_raw FROM STDIN") as copy:
            write = copy.write_row
            for line, cells in itertools.chain([first] if first else [], cells_iter):
                count = len(cells)
                if count == width:
                    write((line, None, *cells))
                elif count < width:
                    write((line, None, *cells, *padding[count:]))
                else:
                    write((line, csv_import.malformed(count), *padding))
        cursor.execute("ANALYZE import_raw")


def import_rows(*, account: Account, csv_import: CsvImport, actor: services.Actor) -> Outcome:
    """Steps 2 to 5: the rows copied by :func:`copy_rows`, in the same transaction, inside
    ``services.writing(actor)``. Then :func:`rejected_rows` lists the rows not stored."""
    header = csv_import.header
    decimal_comma = csv_import.delimiter == ";"
    settings = services.thresholds(account)
    with connection.cursor() as cursor:
        # For this transaction only: sorts and hashes of the file's rows in memory, and no
        # JIT compilation (it cost more than it saved: 0.7 s of a 1.1 s statement).
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL jit = off")
        _type_rows(cursor, account, header, decimal_comma)
        _validate_in_python(cursor, account)
        _check_rows(cursor, account)
        created = _write_chain(cursor, account, settings, actor)
        cursor.execute("SELECT count(*) FROM import_checked WHERE code = 'skipped'")
        skipped = cursor.fetchone()[0]
    return Outcome(created=created, skipped=skipped)


def _strip(expression: str) -> str:
    return f"btrim({expression}, %(ws)s)"


def _type_rows(cursor: Any, account: Account, header: list[str], decimal_comma: bool) -> None:
    """Step 2: ``import_typed``: each row stripped, its meter, its typed values when simple."""
    cells = {name: _strip(_column(header, name)) for name in COLUMNS}
    if decimal_comma:
        value = cells["value"]
        cells["value"] = (
            f"CASE WHEN {value} ~ '^[^,.]*,[^,.]*$' THEN replace({value}, ',', '.') "
            f"ELSE {value} END"
        )
    columns = ", ".join(f"{expression} AS {name}" for name, expression in cells.items())
    every_cell = " AND ".join(f"{_strip(f'c{index}')} = ''" for index in range(len(header)))
    cursor.execute(
        f"""
        CREATE TEMPORARY TABLE import_text ON COMMIT DROP AS
        SELECT line, problem, {columns} FROM import_raw
        WHERE problem IS NOT NULL OR NOT ({every_cell})
        """,  # noqa: S608 (only column names and constant SQL are formatted in)
        {"ws": WHITESPACE},
    )
    # A date, a time with seconds and fraction, an offset: each part checked in range below.
    date_pattern = (
        r"^(\d{4})-(\d{2})-(\d{2})"
        r"([T ](\d{2}):(\d{2})(:(\d{2})(\.\d{1,6})?)?(Z|[+-](\d{2}):\d{2})?)?$"
    )
    # Each distinct date text is read once (a file repeats its dates across its meters): the
    # instant, or NULL when the text is not in the simple shape, has an impossible part, or
    # has no offset and falls within 3 hours of a change of the account's UTC offset.
    valid = """
        parts IS NOT NULL
        AND (parts[1] || '-' || parts[2] || '-' || parts[3]) COLLATE "C"
            BETWEEN %(first_date)s AND %(last_date)s
        AND parts[2]::int BETWEEN 1 AND 12
        AND parts[3]::int BETWEEN 1 AND 28 + CASE
            WHEN parts[2]::int = 2 THEN
                CASE WHEN parts[1]::int %% 4 = 0
                      AND (parts[1]::int %% 100 <> 0 OR parts[1]::int %% 400 = 0)
                     THEN 1 ELSE 0 END
            WHEN parts[2]::int IN (4, 6, 9, 11) THEN 2 ELSE 3 END
        AND (parts[4] IS NULL OR (
            parts[5]::int <= 23 AND parts[6]::int <= 59
            AND coalesce(parts[8]::int, 0) <= 59 AND coalesce(parts[11]::int, 0) <= 14))
    """
    cursor.execute(
        f"""
        CREATE TEMPORARY TABLE import_dates ON COMMIT DROP AS
        SELECT date_text, CASE
            WHEN parts[10] IS NOT NULL THEN instant
            WHEN (instant - interval '3 hours') AT TIME ZONE %(zone)s
                 - ((instant - interval '3 hours') AT TIME ZONE 'UTC')
               = (instant + interval '3 hours') AT TIME ZONE %(zone)s
                 - ((instant + interval '3 hours') AT TIME ZONE 'UTC') THEN instant
        END AS instant
        FROM (
            SELECT date_text, parts, CASE WHEN {valid} THEN
                CASE WHEN parts[10] IS NOT NULL THEN date_text::timestamptz
                     ELSE date_text::timestamp AT TIME ZONE %(zone)s END
            END AS instant
            FROM (
                SELECT date_text, regexp_match(date_text, %(date)s) AS parts
                FROM (SELECT DISTINCT reading_date AS date_text FROM import_text) texts
                OFFSET 0
            ) matched
            OFFSET 0
        ) parsed
        """,  # noqa: S608 (only constant SQL is formatted in)
        {
            "date": date_pattern,
            "zone": account.timezone,
            # The product's calendar: a row outside it goes to the serializer, which says so.
            "first_date": metering_domain.FIRST_DATE.isoformat(),
            "last_date": metering_domain.LAST_DATE.isoformat(),
        },
    )
    simple = """
        t.problem IS NULL AND m.id IS NOT NULL AND d.instant IS NOT NULL
        AND t.value ~ '^[0-9]{1,14}([.][0-9]{1,6})?$'
        AND (t.reading_type = '' OR t.reading_type = ANY(%(choices)s))
        AND (t.is_estimated = '' OR lower(t.is_estimated) = ANY(%(booleans)s))
        AND (t.is_billing_reading = '' OR lower(t.is_billing_reading) = ANY(%(booleans)s))
        AND char_length(t.register) <= 50 AND char_length(t.reader_name) <= 100
        AND t.photo_url = ''
    """
    cursor.execute(
        f"""
        CREATE TEMPORARY TABLE import_typed ON COMMIT DROP AS
        SELECT line, problem, serial_number, meter_id, register, date_text,
               reader_name, notes, photo_url, value_text, is_simple,
               CASE WHEN is_simple THEN instant END AS reading_date,
               CASE WHEN is_simple THEN value_text::numeric END AS value,
               CASE WHEN NOT is_simple THEN NULL
                    WHEN reading_type = '' THEN 'MANUAL' ELSE reading_type END AS typed_type,
               CASE WHEN NOT is_simple OR is_estimated = '' THEN NULL
                    ELSE lower(is_estimated) = ANY(%(true)s) END AS typed_estimated,
               CASE WHEN is_simple THEN lower(is_billing_reading) = ANY(%(true)s)
                    END AS typed_billing,
               reading_type, is_estimated, is_billing_reading, NULL::text AS python_error
        FROM (
            SELECT t.line, t.problem, t.serial_number, m.id AS meter_id, t.register,
                   t.reading_date AS date_text, t.reader_name, t.notes, t.photo_url,
                   t.value AS value_text, t.reading_type, t.is_estimated,
                   t.is_billing_reading, d.instant, coalesce({simple}, false) AS is_simple
            FROM import_text t
            JOIN import_dates d ON d.date_text = t.reading_date
            LEFT JOIN metering_meter m
                ON m.account_id = %(account)s AND m.serial_number = t.serial_number
            OFFSET 0  -- computed once per row, not once per use above
        ) q
        """,  # noqa: S608 (only constant SQL is formatted in)
        {
            "account": account.pk,
            "choices": list(CHOICES),
            "booleans": TRUE_TEXTS + FALSE_TEXTS,
            "true": TRUE_TEXTS,
        },
    )


def _validate_in_python(cursor: Any, account: Account) -> None:
    """Rows of a known meter not typed in SQL: the API's serializer types or rejects them.

    Read and written back a batch at a time: a file of such rows keeps memory flat too.
    """
    from readings.api.serializers import ReadingSerializer
    from readings.api.views import reading_input

    validator = ReadingSerializer(context={"account": account})
    cursor.execute(
        """
        CREATE TEMPORARY TABLE import_python (
            line integer, error text, reading_date timestamptz, value numeric,
            register text, reading_type text, is_estimated boolean, is_billing_reading boolean,
            reader_name text, notes text, photo_url text
        ) ON COMMIT DROP
        """
    )
    with connection.chunked_cursor() as rows:
        rows.execute(
            f"""
            SELECT line, date_text, value_text, {", ".join(PYTHON_FIELDS[2:])}
            FROM import_typed
            WHERE problem IS NULL AND meter_id IS NOT NULL AND NOT is_simple
            """  # noqa: S608 (only column names are formatted in)
        )
        while batch := rows.fetchmany(PYTHON_BATCH):
            with cursor.copy("COPY import_python FROM STDIN") as copy:
                for line, *texts in batch:
                    row = api_data(dict(zip(PYTHON_FIELDS, texts, strict=True)))
                    try:
                        item = reading_input(validator.run_validation(row))
                    except exceptions.ValidationError as exc:
                        copy.write_row((line, messages(exc.detail), *[None] * 9))
                        continue
                    copy.write_row(
                        (
                            line,
                            None,
                            item.reading_date,
                            item.value,
                            item.register_code or "",
                            item.reading_type,
                            item.is_estimated,
                            item.is_billing_reading,
                            item.reader_name,
                            item.notes,
                            item.photo_url,
                        )
                    )
    cursor.execute(
        """
        UPDATE import_typed t SET
            python_error = p.error, reading_date = p.reading_date, value = p.value,
            register = p.register, typed_type = p.reading_type,
            typed_estimated = p.is_estimated, typed_billing = p.is_billing_reading,
            reader_name = p.reader_name, notes = p.notes, photo_url = p.photo_url
        FROM import_python p WHERE p.line = t.line
        """
    )


def _message_sql(name: str, column: str) -> str:
    """The SQL of a ``services`` message template (``{}``: ``column``'s value), its texts as
    the parameters ``name_0`` and ``name_1`` (:func:`_message_parameters`)."""
    return f"%({name}_0)s || {column} || %({name}_1)s"


def _message_parameters(**templates: str) -> dict[str, str]:
    """``name_0`` and ``name_1``: each template's text before and after its ``{}``."""
    parameters = {}
    for name, template in templates.items():
        parameters[f"{name}_0"], parameters[f"{name}_1"] = template.split("{}")
    return parameters


# Step 3, from the inside out. Each row with its meter, register and a stored reading at its
# register and date:
_REFERENCED = """
    SELECT t.line, t.problem, t.serial_number, t.meter_id, t.register AS register_code,
           t.python_error, r.id AS register_id, t.reading_date, t.value,
           t.typed_type AS reading_type,
           coalesce(t.typed_estimated, t.typed_type = 'ESTIMATED') AS is_estimated,
           t.typed_billing AS is_billing_reading, t.reader_name, t.notes, t.photo_url,
           m.status, m.max_value, m.precision_digits, r.locked_until,
           stored.value AS stored_value
    FROM import_typed t
    LEFT JOIN metering_meter m ON m.id = t.meter_id
    LEFT JOIN metering_register r ON r.meter_id = t.meter_id
        AND CASE WHEN t.register = '' THEN r.is_default ELSE r.code = t.register END
    LEFT JOIN readings_reading stored
        ON stored.register_id = r.id AND stored.reading_date = t.reading_date
"""
# ... what the engine's value checks would say (``services.value_errors``) ...
_VALUE_CHECKED = f"""
    SELECT i.*, concat_ws(' ',
        CASE WHEN value > max_value THEN {_message_sql("above_max", "max_value")} END,
        CASE WHEN min_scale(value) > precision_digits
             THEN {_message_sql("decimals", "precision_digits")} END) AS value_message
    FROM ({_REFERENCED}) i
    OFFSET 0  -- computed once per row, not once per use in _CODED
"""  # noqa: S608 (constant SQL)
# ... the first check each row fails, in the engine's order (NULL: none so far) ...
_CODED = f"""
    SELECT f.*, CASE
        WHEN problem IS NOT NULL THEN 'malformed_row'
        WHEN serial_number = '' THEN 'validation_error'
        WHEN meter_id IS NULL THEN 'unknown_meter'
        WHEN python_error IS NOT NULL THEN 'validation_error'
        WHEN register_id IS NULL THEN 'unknown_register'
        WHEN stored_value = value THEN 'skipped'
        WHEN status = 'DECOMMISSIONED' THEN 'conflict'
        WHEN value_message <> '' OR reading_date > now() + interval '5 minutes'
            THEN 'validation_error'
        WHEN reading_date <= locked_until THEN 'reading_locked'
    END AS code, CASE
        WHEN problem IS NOT NULL THEN problem
        WHEN serial_number = '' THEN %(serial_required)s
        WHEN meter_id IS NULL THEN serial_number
        WHEN python_error IS NOT NULL THEN python_error
        WHEN register_id IS NULL THEN register_code
        WHEN stored_value = value THEN NULL
        WHEN status = 'DECOMMISSIONED' THEN %(decommissioned)s
        ELSE concat_ws('; ',
            CASE WHEN value_message <> '' THEN 'value: ' || value_message END,
            CASE WHEN reading_date > now() + interval '5 minutes'
                 THEN 'reading_date: ' || %(future)s END)
    END AS message
    FROM ({_VALUE_CHECKED}) f
    OFFSET 0
"""  # noqa: S608 (constant SQL)
# ... then, among the rows that passed, the first of a register and date is the one taken.
_CHECKED = f"""
    SELECT c.line, c.meter_id, c.register_id, c.reading_date, c.value, c.reading_type,
           c.is_estimated, c.is_billing_reading, c.reader_name, c.notes, c.photo_url,
           CASE
               WHEN c.code IS NOT NULL THEN c.code
               WHEN c.rank > 1 OR c.stored_value IS NOT NULL THEN 'duplicate_reading'
               ELSE 'created'
           END AS code,
           CASE
               WHEN c.code = 'reading_locked' THEN %(locked)s
               WHEN c.code IS NOT NULL THEN c.message
               WHEN c.rank > 1 THEN %(batch)s
               WHEN c.stored_value IS NOT NULL THEN %(stored)s
           END AS message
    FROM (
        SELECT coded.*, CASE WHEN code IS NULL THEN row_number() OVER (
            PARTITION BY register_id, reading_date, code IS NULL ORDER BY line) END AS rank
        FROM ({_CODED}) coded
    ) c
"""  # noqa: S608 (constant SQL)


def _check_rows(cursor: Any, account: Account) -> None:
    """Step 3: ``import_checked``: each row's outcome (``code``) in the engine's order."""
    # The file's meters, locked as the engine locks them, before any reading is read.
    cursor.execute(
        """
        SELECT id FROM metering_meter
        WHERE id IN (SELECT DISTINCT meter_id FROM import_typed WHERE meter_id IS NOT NULL)
        ORDER BY id FOR NO KEY UPDATE
        """
    )
    cursor.execute("ANALYZE import_typed")
    cursor.execute(
        f"CREATE TEMPORARY TABLE import_checked ON COMMIT DROP AS {_CHECKED}",
        {
            "locked": ReadingLocked.default_detail,
            "batch": services.BATCH_DUPLICATE,
            "stored": DuplicateReading.default_detail,
            "decommissioned": services.DECOMMISSIONED,
            "future": services.IN_THE_FUTURE,
            "serial_required": SERIAL_REQUIRED,
            **_message_parameters(
                above_max=services.ABOVE_MAX_VALUE, decimals=services.TOO_MANY_DECIMALS
            ),
        },
    )


def _write_chain(
    cursor: Any, account: Account, settings: domain.Thresholds, actor: services.Actor
) -> int:
    """Steps 4 and 5: the chain of every register that gets readings, then the writes."""
    cursor.execute(
        """
        CREATE TEMPORARY TABLE import_new ON COMMIT DROP AS
        SELECT * FROM import_checked WHERE code = 'created'
        """
    )
    cursor.execute("ANALYZE import_new")
    span = f"{settings.baseline_days * 24} hours"
    cursor.execute(
        """
        CREATE TEMPORARY TABLE import_start ON COMMIT DROP AS
        SELECT n.register_id, n.since, r.is_default, r.code,
               m.multiplier * r.transformer_ratio AS factor, m.max_value, m.id AS meter_id,
               EXISTS (
                   SELECT FROM metering_meterdevice d
                   WHERE d.meter_id = m.id AND d.installed_at IS NOT NULL
                     AND d.initial_value IS NOT NULL
               ) AS has_restarts,
               coalesce((
                   SELECT max(b.reading_date) FROM readings_reading b
                   WHERE b.register_id = n.register_id
                     AND b.reading_date < n.since - %(span)s::interval
               ), n.since - %(span)s::interval) AS lower
        FROM (
            SELECT register_id, min(reading_date) AS since FROM import_new GROUP BY register_id
        ) n
        JOIN metering_register r ON r.id = n.register_id
        JOIN metering_meter m ON m.id = r.meter_id
        """,
        {"span": span},
    )
    cursor.execute("ANALYZE import_start")
    cursor.execute(
        f"""
        CREATE TEMPORARY TABLE import_series ON COMMIT DROP AS
        WITH series AS (
            SELECT r.id, r.register_id, r.reading_date, r.value, NULL::integer AS line,
                   r.previous_value AS old_previous, r.consumption AS old_consumption,
                   r.is_rollover AS old_rollover, r.flag_deviation AS old_deviation,
                   r.flag_spike AS old_spike, r.flag_drop AS old_drop,
                   r.flag_negative AS old_negative
            FROM import_start s
            JOIN readings_reading r
                ON r.register_id = s.register_id AND r.reading_date >= s.lower
            UNION ALL
            SELECT NULL, register_id, reading_date, value, line,
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL
            FROM import_new
        ), ordered AS (
            SELECT series.*, s.since, s.factor, s.max_value, s.meter_id, s.has_restarts,
                   s.is_default, s.code,
                   lag(series.reading_date) OVER w AS previous_date,
                   lag(series.value) OVER w AS previous_value
            FROM series JOIN import_start s USING (register_id)
            WINDOW w AS (PARTITION BY series.register_id ORDER BY series.reading_date)
        ), based AS (
            SELECT ordered.*, CASE
                WHEN previous_date IS NULL THEN NULL
                WHEN NOT has_restarts THEN previous_value
                ELSE coalesce((
                    SELECT CASE WHEN ordered.is_default THEN d.initial_value
                        ELSE coalesce((d.register_values -> ordered.code ->> 'initial_value')
                                      ::numeric, 0) END
                    FROM metering_meterdevice d
                    WHERE d.meter_id = ordered.meter_id AND d.initial_value IS NOT NULL
                      AND d.installed_at >= ordered.previous_date
                      AND d.installed_at < ordered.reading_date
                    ORDER BY d.installed_at DESC, d.initial_value DESC LIMIT 1
                ), previous_value)
            END AS base
            FROM ordered
            OFFSET 0  -- the base once per row, not once per use below
        ), consumed AS (
            SELECT register_id, reading_date, id, line, since, old_previous, old_consumption,
                old_rollover, old_deviation, old_spike, old_drop, old_negative, base,
                CASE WHEN base IS NULL THEN NULL
                     WHEN value >= base THEN (value - base) * factor
                     WHEN max_value IS NOT NULL THEN (max_value - base + value) * factor
                     ELSE (value - base) * factor END AS consumption,
                base IS NOT NULL AND value < base AND max_value IS NOT NULL AS is_rollover,
                extract(epoch FROM reading_date - previous_date) * 1000000 AS micros
            FROM based
            OFFSET 0  -- computed once per row; still in the order of the window above
        ), counted AS (
            SELECT consumed.*, CASE WHEN consumption >= 0 THEN consumption END AS kept,
                   CASE WHEN consumption >= 0 THEN micros END AS kept_micros
            FROM consumed
        ), baselined AS (
            -- The frame includes the reading itself (a moving sum, linear): it is taken off.
            SELECT counted.*,
                sum(kept) OVER v - coalesce(kept, 0) AS window_sum,
                sum(kept_micros) OVER v - coalesce(kept_micros, 0) AS window_micros,
                count(kept) OVER v - (kept IS NOT NULL)::int AS window_count
            FROM counted
            WINDOW v AS (
                PARTITION BY register_id ORDER BY reading_date
                RANGE BETWEEN %(span)s::interval PRECEDING AND CURRENT ROW
            )
        )
        SELECT id, register_id, reading_date, line, base AS previous_value, consumption,
               is_rollover, old_previous, old_consumption, old_rollover, old_deviation,
               old_spike, old_drop, old_negative,
               coalesce(consumption < 0, false) AS flag_negative,
               {_rate_flag("abs(rate - baseline) > %(deviation)s * baseline", "true")}
                   AS flag_deviation,
               {_rate_flag("rate >= %(spike)s * baseline", "true")} AS flag_spike,
               {_rate_flag("rate < %(drop)s * baseline", "false")} AS flag_drop
        FROM (
            SELECT baselined.*, consumption * window_micros AS rate,
                   window_sum * micros AS baseline
            FROM baselined
            OFFSET 0  -- computed once per row, not once per use above
        ) flagged
        WHERE reading_date >= since
        """,  # noqa: S608 (only column names and constant SQL are formatted in)
        {
            "span": span,
            "deviation": settings.deviation,
            "spike": settings.spike,
            "drop": settings.drop,
            "min_intervals": settings.min_intervals,
        },
    )
    cursor.execute("ANALYZE import_series")
    cursor.execute(
        """
        UPDATE readings_reading r SET
            previous_value = s.previous_value, consumption = s.consumption,
            is_rollover = s.is_rollover, flag_deviation = s.flag_deviation,
            flag_spike = s.flag_spike, flag_drop = s.flag_drop,
            flag_negative = s.flag_negative, updated_at = now()
        FROM import_series s
        WHERE s.id IS NOT NULL AND s.id = r.id AND (
            s.previous_value IS DISTINCT FROM s.old_previous
            OR s.consumption IS DISTINCT FROM s.old_consumption
            OR s.is_rollover IS DISTINCT FROM s.old_rollover
            OR s.flag_deviation IS DISTINCT FROM s.old_deviation
            OR s.flag_spike IS DISTINCT FROM s.old_spike
            OR s.flag_drop IS DISTINCT FROM s.old_drop
            OR s.flag_negative IS DISTINCT FROM s.old_negative)
        """
    )
    cursor.execute(
        """
        INSERT INTO readings_reading (
            created_at, updated_at, account_id, meter_id, register_id, reading_date, value,
            reading_type, is_estimated, is_billing_reading, lease_id, photo_url, reader_name,
            notes, source, created_by, previous_value, consumption, is_rollover,
            flag_deviation, flag_spike, flag_drop, flag_negative
        )
        SELECT now(), now(), %(account)s, n.meter_id, n.register_id, n.reading_date, n.value,
               n.reading_type, n.is_estimated, n.is_billing_reading, NULL, n.photo_url,
               n.reader_name, n.notes, %(source)s, %(label)s, s.previous_value,
               s.consumption, s.is_rollover, s.flag_deviation, s.flag_spike, s.flag_drop,
               s.flag_negative
        FROM import_new n JOIN import_series s ON s.line = n.line
        ORDER BY n.register_id, n.reading_date
        """,
        {"account": account.pk, "source": actor.source, "label": actor.label},
    )
    created = cursor.rowcount
    if created:
        from metering.models import Meter

        cursor.execute("SELECT DISTINCT meter_id FROM import_start")
        meters = [meter_id for (meter_id,) in cursor.fetchall()]
        Meter.objects.filter(pk__in=meters).refresh_last_readings()
    return created


def _rate_flag(comparison: str, when_zero: str) -> str:
    """A rate flag of ``readings.domain.rate_flags`` as an SQL expression."""
    return f"""coalesce(CASE
        WHEN consumption IS NULL OR consumption < 0 OR window_count < %(min_intervals)s
            THEN false
        WHEN coalesce(window_sum, 0) = 0 THEN consumption > 0 AND {when_zero}
        ELSE {comparison}
    END, false)"""


def rejected_rows() -> Iterator[tuple[int, str, str]]:
    """The rejected rows ``(line, code, message)`` in line order, read in batches."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT line, code, message FROM import_checked
            WHERE code NOT IN ('created', 'skipped') ORDER BY line
            """
        )
        while batch := cursor.fetchmany(PYTHON_BATCH):
            for line, code, message in batch:
                if code == "unknown_meter":
                    message = unknown_meter(message)
                elif code == "unknown_register":
                    message = unknown_register(message)
                yield line, code, message
