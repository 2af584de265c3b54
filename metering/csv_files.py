"""CSV files of the staff import commands (CONTRACT §7), shared by every ``import_*`` command.

An import command declares its columns with :class:`CsvColumns` and reads its file through
:class:`CsvImport`::

    columns = CsvColumns(required=("serial_number",), optional=("notes", "value"),
                         decimals=("value",))
    with CsvImport(path, columns=columns, errors_out=options["errors_out"],
                   stdout=self.stdout, stderr=self.stderr) as csv_import:
        for line, values in csv_import.rows():
            ...                       # values: {column: text}, empty cells included as ""
            csv_import.created()      # or .skipped() / .reject(line, code, message)
        csv_import.finish(label="Meters", dry_run=dry_run)

What the file may be:

- UTF-8 with or without a byte order mark; other bytes are a :class:`CommandError`
  ``"<path> is not UTF-8: line N ..."`` (the rows before it were read; the command's
  transaction rolls them back).
- delimiter ``,`` or ``;``, detected from the header line (the one that occurs more there);
- with ``;`` a decimal comma is accepted in the decimal columns only: ``"12,5"`` becomes
  ``"12.5"`` before validation (:func:`normalise_decimal_comma`); text columns are left alone;
- line 1 is the header: the API's field names, no duplicates. A missing required column or
  an unknown column is a :class:`CommandError` naming them. Columns declared ``ignored`` are
  accepted and dropped (e.g. the computed columns of ``export_readings``);
- a cell that the product's CSV writers quoted against formula injection (``'=SUM(A1)``, see
  below) is read without that one quote (:func:`unquote_cell`), so an export reads back as it
  was;
- blank lines (and rows whose every cell is empty) are skipped; a row with more cells than the
  header is rejected with the code ``malformed_row``. Line numbers are the file's physical line
  numbers (header = 1); a quoted cell spanning lines counts from the line where its row starts.

Rows are read lazily, one line at a time, so memory stays flat whatever the file's size.

The result (:meth:`CsvImport.finish`): the summary line on stdout::

    Meters: 3 created, 1 skipped (already there), 2 rejected.
    Meters (dry run, nothing stored): 3 created, 1 skipped (already there), 2 rejected.

then, when any row was rejected, a :class:`CommandError` with ``returncode=1``: from the shell
``manage.py`` prints ``CommandError: 2 rows rejected ...`` on stderr and exits with status 1
(status 0 otherwise); ``call_command`` raises that ``CommandError``. Each rejected row is also
written on stderr (``line 4: validation_error: multiplier: ...``, the first 50) and, with
``--errors-out FILE``, to a CSV with the columns ``line``, ``code``, ``message``.

Every CSV the product writes (exports, statements, errors files) writes its rows through
:func:`csv_row` (or :func:`csv_lines`, :func:`write_csv`): a text cell that a spreadsheet would
run as a formula, starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, gets a
leading ``'`` (:func:`spreadsheet_safe`, CONTRACT §7); numbers, negative ones included, stay
numbers.

A progress bar (share of the file's bytes read) is drawn on the command's stdout only when it
is a terminal. tqdm is not among our dependencies, so it is a few lines of our own.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from django.core.management.base import CommandError

DELIMITERS = (",", ";")
ERROR_COLUMNS = ("line", "code", "message")
# Rejected rows written on stderr; the rest only in the --errors-out file.
SHOWN_ERRORS = 50

# --- formula injection (CONTRACT §7) ---------------------------------------------------------
# A text cell starting with one of these is run as a formula by a spreadsheet: ``=``, ``+``,
# ``-``, ``@``, a tab, a carriage return. A text that has quotes before one (``'=x``) gets one
# more quote too, so that taking one off on import gives back exactly the text written.
FORMULA_START = re.compile("'*[=+\\-@\t\r]")
FORMULA_FIRST = frozenset("'=+-@\t\r")
QUOTED_FORMULA_START = re.compile("'+[=+\\-@\t\r]")
# A signed number (``-3.5``, ``+12``, ``-1e5``, ``-12,5``): a spreadsheet reads it as a number,
# runs nothing, and a quote would turn it into text.
SIGNED_NUMBER = re.compile(r"[+-](\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(cell: Any) -> Any:
    """``cell`` as a CSV writer should write it: a text that a spreadsheet would run as a
    formula gets one leading ``'`` (``=HYPERLINK(...)`` → ``'=HYPERLINK(...)``).

    Values that are not text (numbers, dates, None) and texts that are a plain signed number
    (``-3.5``) are returned unchanged. :func:`unquote_cell` undoes it for any text.
    """
    if (
        type(cell) is str
        and cell[:1] in FORMULA_FIRST
        and FORMULA_START.match(cell)
        and not SIGNED_NUMBER.fullmatch(cell)
    ):
        return "'" + cell
    return cell


def unquote_cell(text: str) -> str:
    """A cell of a file as the product wrote it, without :func:`spreadsheet_safe`'s quote:
    one leading ``'`` is taken off a text that, without it, starts a formula (``'=x`` → ``=x``,
    ``''=x`` → ``'=x``, ``'-3.5`` → ``-3.5``); any other text is returned unchanged."""
    if text[:1] == "'" and QUOTED_FORMULA_START.match(text):
        return text[1:]
    return text


def csv_row(cells: Iterable[Any]) -> list[Any]:
    """One row as every product CSV writes it: ``None`` as an empty cell, text made safe."""
    # The first-character test inline: most cells are numbers or start with a letter.
    return [
        ""
        if cell is None
        else spreadsheet_safe(cell)
        if type(cell) is str and cell[:1] in FORMULA_FIRST
        else cell
        for cell in cells
    ]


def normalise_decimal_comma(text: str) -> str:
    """``"12,5"`` → ``"12.5"``: a single comma and no dot is a decimal comma.

    Anything else (``"1.234,5"``, ``"abc"``) is returned unchanged for validation to judge.
    """
    if text.count(",") == 1 and "." not in text:
        return text.replace(",", ".")
    return text


def parse_bool(text: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``t/f`` (any case); else :class:`ValueError`."""
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes", "t", "y"}:
        return True
    if lowered in {"false", "0", "no", "f", "n"}:
        return False
    raise ValueError(f"{text!r} is not a boolean: use true or false.")


@dataclass(frozen=True)
class CsvColumns:
    """The columns an import accepts: the API's field names."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # Decimal columns: a decimal comma is accepted there in ``;`` files.
    decimals: tuple[str, ...] = ()
    # Accepted in the header and dropped from the rows.
    ignored: tuple[str, ...] = ()

    @property
    def allowed(self) -> tuple[str, ...]:
        return (*self.required, *self.optional, *self.ignored)

    def check_header(self, header: list[str], path: str) -> None:
        """A :class:`CommandError` naming duplicate, missing or unknown columns."""
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise CommandError(f"{path}: duplicate column(s) {', '.join(duplicates)}.")
        missing = [name for name in self.required if name not in header]
        if missing:
            raise CommandError(f"{path}: missing required column(s) {', '.join(missing)}.")
        unknown = [name for name in header if name not in self.allowed]
        if unknown:
            raise CommandError(
                f"{path}: unknown column(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(self.allowed)}."
            )


class ProgressBar:
    """A one-line progress bar, redrawn at most five times a second."""

    def __init__(self, stream: Any, total: int, label: str) -> None:
        self.stream, self.total, self.label = stream, max(total, 1), label
        self.shown_at = 0.0

    def update(self, done: int, rows: int) -> None:
        now = time.monotonic()
        if now - self.shown_at < 0.2:
            return
        self.shown_at = now
        share = min(done / self.total, 1.0)
        bar = "#" * int(share * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {share:4.0%} {rows} rows", ending="")
        self.stream.flush()

    def close(self) -> None:
        if self.shown_at:
            self.stream.write("\r" + " " * 70 + "\r", ending="")
            self.stream.flush()


@dataclass
class ErrorsFile:
    """``--errors-out FILE``: one CSV row (``line``, ``code``, ``message``) per rejected row."""

    path: str
    handle: IO[str] | None = field(default=None, init=False)
    writer: Any = field(default=None, init=False)

    def open(self) -> None:
        try:
            self.handle = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"Cannot write {self.path}: {exc.strerror}.") from None
        self.writer = csv.writer(self.handle)
        self.writer.writerow(ERROR_COLUMNS)

    def write(self, line: int, code: str, message: str) -> None:
        self.writer.writerow(csv_row((line, code, message)))

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


class CsvImport:
    """One import file: its rows, the counts and the rejected rows (see the module's doc)."""

    def __init__(
        self,
        path: str,
        *,
        columns: CsvColumns,
        errors_out: str | None = None,
        stdout: Any = None,
        stderr: Any = None,
    ) -> None:
        self.path = path
        self.columns = columns
        self.stdout, self.stderr = stdout, stderr
        self.errors_file = ErrorsFile(errors_out) if errors_out else None
        self.counts = {"created": 0, "skipped": 0, "rejected": 0}
        self.delimiter = ","
        self.header: list[str] = []
        self._binary: IO[bytes] | None = None
        self._bytes_read = 0
        self._line = 0
        # Whether the lines read since the last row hold a ``'`` (see ``cells``).
        self._apostrophe = False

    # --- context ----------------------------------------------------------------------------

    def __enter__(self) -> CsvImport:
        try:
            self._binary = open(self.path, "rb")
        except OSError as exc:
            raise CommandError(f"Cannot read {self.path}: {exc.strerror}.") from None
        if self.errors_file:
            try:
                self.errors_file.open()
            except CommandError:
                self._binary.close()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._binary is not None:
            self._binary.close()
        if self.errors_file:
            self.errors_file.close()

    # --- reading ----------------------------------------------------------------------------

    def _lines(self) -> Iterator[str]:
        """The file's lines decoded one by one, so a bad byte is reported with its line."""
        assert self._binary is not None
        for raw in self._binary:
            self._line += 1
            self._bytes_read += len(raw)
            if self._line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CommandError(
                    f"{self.path} is not UTF-8: line {self._line}, byte {exc.start + 1} "
                    f"(0x{raw[exc.start]:02x}). Save the file as UTF-8."
                ) from None
            if "\x00" in text:  # a UTF-16 or binary file: no text cell holds it
                raise CommandError(
                    f"{self.path} is not a text CSV file: line {self._line} holds a NUL "
                    "character (0x00). Save the file as UTF-8."
                )
            if "'" in text:
                self._apostrophe = True
            yield text

    def cells(self) -> Iterator[tuple[int, list[str]]]:
        """``(line number, [cell, ...])`` for each data row as the file has it: cells neither
        stripped nor counted, blank lines left out. Reads the header first (checked, as
        :attr:`header`) and draws the progress bar.

        The one change: the quote that the product's CSV writers put before a formula
        (:func:`spreadsheet_safe`) is taken off (:func:`unquote_cell`), so that every import
        (these rows, :meth:`rows`, the set-based import's ``COPY``) reads an export back as
        the text it was. Only the rows whose lines hold a ``'`` are looked at."""
        lines = self._lines()
        first = next(lines, None)
        if first is None or not first.strip():
            raise CommandError(f"{self.path} is empty: line 1 must be the header.")
        self.delimiter = ";" if first.count(";") > first.count(",") else ","
        reader = csv.reader(itertools.chain([first], lines), delimiter=self.delimiter)
        self.header = [name.strip() for name in next(reader)]
        self.columns.check_header(self.header, self.path)

        progress = self._progress_bar()
        row_start = self._line + 1
        self._apostrophe = False
        # The reader reads a row's lines only as it gives the row: the flag is that row's.
        for rows, cells in enumerate(reader, 1):
            line, row_start = row_start, self._line + 1
            if progress:
                progress.update(self._bytes_read, rows)
            if self._apostrophe:
                self._apostrophe = False
                cells = [unquote_cell(cell) for cell in cells]
            if cells:
                yield line, cells
        if progress:
            progress.close()

    def malformed(self, count: int) -> str:
        """The message of a row of ``count`` cells, more than the header's columns."""
        return f"{count} cells for {len(self.header)} columns (delimiter {self.delimiter!r})."

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """``(line number, {column: text})`` for each data row; the header is line 1.

        Cells are stripped; decimal columns of a ``;`` file have their decimal comma turned
        into a dot; ignored columns are dropped; rows of empty cells are left out.
        """
        ignored = set(self.columns.ignored)
        decimals: set[str] | None = None
        for line, cells in self.cells():
            if decimals is None:  # the delimiter is known once the header is read
                decimals = set(self.columns.decimals) if self.delimiter == ";" else set()
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(self.header):
                self.reject(line, "malformed_row", self.malformed(len(cells)))
                continue
            values: dict[str, str] = {}
            for name, cell in itertools.zip_longest(self.header, cells, fillvalue=""):
                if name in ignored:
                    continue
                text = cell.strip()
                values[name] = normalise_decimal_comma(text) if name in decimals else text
            yield line, values

    def _on_terminal(self) -> bool:
        isatty = getattr(self.stdout, "isatty", None)
        return bool(isatty and isatty())

    def _progress_bar(self) -> ProgressBar | None:
        if not self._on_terminal():
            return None
        return ProgressBar(self.stdout, os.path.getsize(self.path), os.path.basename(self.path))

    def status(self, text: str) -> None:
        """A line of what the import is doing, on a terminal only (as the progress bar)."""
        if self._on_terminal():
            self.stdout.write(text)
            self.stdout.flush()

    # --- result -----------------------------------------------------------------------------

    def created(self, count: int = 1) -> None:
        self.counts["created"] += count

    def skipped(self, count: int = 1) -> None:
        self.counts["skipped"] += count

    def reject(self, line: int, code: str, message: str) -> None:
        """Count a rejected row, show it on stderr and write it to the errors file."""
        self.counts["rejected"] += 1
        if self.stderr is not None and self.counts["rejected"] <= SHOWN_ERRORS:
            self.stderr.write(f"line {line}: {code}: {message}")
        if self.errors_file:
            self.errors_file.write(line, code, message)

    def summary(self, *, label: str, dry_run: bool = False) -> str:
        prefix = f"{label} (dry run, nothing stored)" if dry_run else label
        counts = self.counts
        return (
            f"{prefix}: {counts['created']} created, {counts['skipped']} skipped "
            f"(already there), {counts['rejected']} rejected."
        )

    def finish(self, *, label: str, dry_run: bool = False) -> None:
        """Print the summary; a :class:`CommandError` (exit status 1) if any row was rejected."""
        if self.stdout is not None:
            self.stdout.write(self.summary(label=label, dry_run=dry_run))
        rejected = self.counts["rejected"]
        if rejected:
            hidden = rejected - SHOWN_ERRORS
            more = f"; {hidden} not shown above" if hidden > 0 else ""
            where = f", listed in {self.errors_file.path}" if self.errors_file else ""
            raise CommandError(
                f"{rejected} row{'s' if rejected > 1 else ''} rejected{where}{more}.",
                returncode=1,
            )


class _Line:
    """A file-like object whose ``write`` returns its text: ``csv.writer`` then gives lines."""

    def write(self, text: str) -> str:
        return text


def csv_lines(
    header: Iterable[str], rows: Iterable[Iterable[Any]], *, line_end: str = "\n"
) -> Iterator[str]:
    """``header`` and ``rows`` as ``,`` CSV lines ending with ``line_end``, one at a time:
    ``None`` as an empty cell, text made safe (:func:`csv_row`).

    A cell holding a line feed *or a carriage return* is quoted whatever ``line_end``: the
    writer quotes the characters of its line terminator, so it is given both and its ``\r\n``
    replaced. (With ``lineterminator="\n"`` alone, a bare ``\r`` in a tenant's notes would be
    written unquoted: a spreadsheet starts a new row there, whose first cell could be a formula.)
    """
    writer = csv.writer(_Line(), lineterminator="\r\n")
    yield writer.writerow(csv_row(header))[:-2] + line_end
    for row in rows:
        yield writer.writerow(csv_row(row))[:-2] + line_end


def write_csv(handle: IO[str], header: Iterable[str], rows: Iterable[Iterable[Any]]) -> int:
    """Write ``header`` and ``rows`` as :func:`csv_lines` gives them; the row count."""
    lines = csv_lines(header, rows)
    handle.write(next(lines))
    count = 0
    for line in lines:
        handle.write(line)
        count += 1
    return count
