"""export_readings (CONTRACT §7): columns, order, filters, clear errors."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from readings.management.commands.export_readings import COLUMNS
from tests.factories import MeterFactory, RegisterFactory
from tests.readings.conftest import add

pytestmark = pytest.mark.django_db


def export(*args) -> list[dict[str, str]]:
    out = io.StringIO()
    call_command("export_readings", *args, stdout=out)
    text = out.getvalue()
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == COLUMNS
    return list(reader)


@pytest.fixture
def meters(account, other_account):
    b = MeterFactory(account=account, serial_number="B-2", max_value=Decimal(1000))
    a = MeterFactory(account=account, serial_number="A-1")
    peak = RegisterFactory(meter=a, code="1.8.1")
    add(b, (0, 100), (1, 150), (2, 20))  # 20 < 150 with max_value: a rollover
    add(a, (1, 10), (0, 5))
    add(a, (0, 7), register=peak)
    add(MeterFactory(account=other_account, serial_number="A-1"), (0, 1))
    return a, b


def test_columns_order_and_computed_fields(meters):
    rows = export("--account", "acme")
    assert [(r["serial_number"], r["register"], r["reading_date"]) for r in rows] == [
        ("A-1", "1.8.1", "2024-01-01T00:00:00Z"),
        ("A-1", "default", "2024-01-01T00:00:00Z"),
        ("A-1", "default", "2024-01-02T00:00:00Z"),
        ("B-2", "default", "2024-01-01T00:00:00Z"),
        ("B-2", "default", "2024-01-02T00:00:00Z"),
        ("B-2", "default", "2024-01-03T00:00:00Z"),
    ]
    first, rollover = rows[3], rows[5]
    assert (first["previous_value"], first["consumption"], first["is_rollover"]) == (
        "",
        "",
        "false",
    )
    assert Decimal(rollover["value"]) == 20
    assert Decimal(rollover["previous_value"]) == 150
    assert Decimal(rollover["consumption"]) == Decimal(870)
    assert rollover["is_rollover"] == "true"
    assert rows[4]["anomaly_flags"] == ""
    assert {r["reading_type"] for r in rows} == {"MANUAL"}
    assert {
        (r["is_estimated"], r["is_billing_reading"], r["is_locked"], r["source"]) for r in rows
    } == {("false", "false", "false", "API")}
    assert {r["created_by"] for r in rows} == {"test:fixture"}


def test_negative_consumption_is_flagged(account):
    meter = MeterFactory(account=account, serial_number="N-1")
    add(meter, (0, 100), (1, 50))
    rows = export("--account", "acme")
    assert "NEGATIVE" in rows[-1]["anomaly_flags"].split(" ")


def test_filters(meters):
    assert {r["serial_number"] for r in export("--account", "acme", "--meter", "B-2")} == {"B-2"}
    # Days in the account's time zone (Europe/Paris): 2024-01-02 is 2024-01-01T23:00Z onwards.
    days = export("--account", "acme", "--start", "2024-01-02", "--end", "2024-01-02")
    assert {r["reading_date"] for r in days} == {"2024-01-02T00:00:00Z"}
    assert len(days) == 2


def test_output_file(meters, tmp_path):
    target = tmp_path / "readings.csv"
    out = io.StringIO()
    call_command("export_readings", "--account", "acme", "-o", str(target), stdout=out)
    assert out.getvalue().strip() == f"Exported 6 readings to {target}."
    text = target.read_text(encoding="utf-8")
    assert text.startswith(",".join(COLUMNS) + "\n")
    assert len(text.strip().splitlines()) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "nope"], "Unknown account 'nope'"),
        (["--account", "acme", "--meter", "ZZZ"], "No meter with serial number 'ZZZ'"),
        (["--account", "acme", "--start", "31/01/2024"], "Invalid --start '31/01/2024'"),
        (["--account", "acme", "--start", "2024-02-01", "--end", "2024-01-01"], "is after"),
    ],
)
def test_clear_errors(account, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("export_readings", *args, stdout=io.StringIO())
