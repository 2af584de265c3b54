"""import_readings (CONTRACT §7, issue 7): the API's rows, skipped and rejected rows, one
transaction, dry run, and the same stored rows as the API's batch endpoint and as an export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, ManagementUtility, call_command
from django.db import OperationalError, connections

from metering.models import Account, Meter
from readings import bulk_import, domain, imports, services
from readings.models import Reading
from readings.selectors import ReadingEvent, reading_history
from tests.factories import AccountFactory, MeterFactory, RegisterFactory
from tests.readings.conftest import add, day, fresh_series, stored_series

pytestmark = pytest.mark.django_db

HEADER = "serial_number,register,reading_date,value"
PARIS = dt.timezone(dt.timedelta(hours=1))  # Europe/Paris in winter


def write(tmp_path: Path, text: str, *, name: str = "readings.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def run(*args) -> tuple[list[str], str]:
    """stdout lines and stderr text of ``import_readings``."""
    out, err = io.StringIO(), io.StringIO()
    call_command("import_readings", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines(), err.getvalue()


def run_rejected(*args) -> tuple[list[str], str, CommandError]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_readings", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines(), err.getvalue(), caught.value


def values_of(meter, register_code="default") -> list[tuple[dt.datetime, Decimal]]:
    return list(
        Reading.objects.filter(meter=meter, register__code=register_code)
        .order_by("reading_date")
        .values_list("reading_date", "value")
    )


@pytest.fixture
def water(account):
    return MeterFactory(account=account, serial_number="W-1", meter_type="WATER")


# --- rows and columns ------------------------------------------------------------------------


def test_rows_are_stored_through_the_engine_in_any_order(account, water, tmp_path):
    peak = RegisterFactory(meter=water, code="1.8.1")
    path = write(
        tmp_path,
        "serial_number,register,reading_date,value,reading_type,is_billing_reading,"
        "reader_name,notes,photo_url\n"
        "W-1,,2024-01-03T00:00:00Z,30,,,,,\n"
        "W-1,,2024-01-01T00:00:00Z,10,ESTIMATED,,Ann,first,https://example.com/1.jpg\n"
        "W-1,1.8.1,2024-01-01T00:00:00Z,5,,true,,,\n"
        "W-1,default,2024-01-02T00:00:00Z,12.5,,,,,\n",
    )
    lines, err = run(path, "--account", "acme")
    assert lines[-1] == "Readings: 4 created, 0 skipped (already there), 0 rejected."
    assert err == ""
    assert values_of(water) == [(day(0), 10), (day(1), Decimal("12.5")), (day(2), 30)]
    # The chain is the one inserting in date order gives.
    register = water.registers.get(is_default=True)
    assert stored_series(register) == fresh_series(register)
    first = Reading.objects.get(register=register, reading_date=day(0))
    assert (first.reading_type, first.is_estimated, first.reader_name, first.notes) == (
        "ESTIMATED",
        True,  # the API's default: reading_type == ESTIMATED
        "Ann",
        "first",
    )
    assert first.photo_url == "https://example.com/1.jpg"
    assert (first.source, first.created_by) == ("IMPORT", "system:import_readings")
    assert Reading.objects.get(register=peak).is_billing_reading
    water.refresh_from_db()
    assert (water.last_reading_value, water.last_reading_at) == (30, day(2))


def test_dates_are_parsed_as_the_api_does(account, water, tmp_path):
    path = write(
        tmp_path,
        f"{HEADER}\n"
        "W-1,,2024-01-05,1\n"  # a date alone: 00:00 in the account's zone (Paris)
        "W-1,,2024-01-06T12:00:00,2\n"  # no offset: the account's zone
        "W-1,,2024-01-07T12:00:00+03:00,3\n",
    )
    run(path, "--account", "acme")
    assert [date for date, _ in values_of(water)] == [
        dt.datetime(2024, 1, 5, tzinfo=PARIS),
        dt.datetime(2024, 1, 6, 12, tzinfo=PARIS),
        dt.datetime(2024, 1, 7, 9, tzinfo=dt.UTC),
    ]


def test_semicolon_file_with_bom_and_decimal_comma(account, water, tmp_path):
    path = write(
        tmp_path,
        "\ufeffserial_number;reading_date;value;notes\n"
        "W-1;2024-01-01T00:00:00Z;12,5;kept, as text\n",
    )
    run(path, "--account", "acme")
    stored = Reading.objects.get(meter=water)
    assert (stored.value, stored.notes) == (Decimal("12.5"), "kept, as text")


def test_the_export_columns_are_read_back_and_computed_ones_ignored(account, water, tmp_path):
    path = write(
        tmp_path,
        "serial_number,register,reading_date,value,reading_type,is_estimated,"
        "is_billing_reading,reader_name,notes,previous_value,consumption,is_rollover,"
        "anomaly_flags,is_locked,source,created_by\n"
        "W-1,default,2024-01-01T00:00:00Z,10.000000,MANUAL,false,false,,,999,999,true,"
        "SPIKE,true,API,key:abc\n",
    )
    run(path, "--account", "acme")
    stored = Reading.objects.get(meter=water)
    assert (stored.previous_value, stored.consumption, stored.is_rollover) == (None, None, False)
    assert (stored.anomaly_flags, stored.source) == ([], "IMPORT")


# --- skipped and rejected rows ---------------------------------------------------------------


def test_reimporting_a_file_stores_nothing_twice(account, water, tmp_path):
    path = write(tmp_path, f"{HEADER}\nW-1,,2024-01-01T00:00:00Z,10\nW-1,,2024-01-02,11.5\n")
    run(path, "--account", "acme")
    events = ReadingEvent.objects.count()
    lines, _ = run(path, "--account", "acme")
    assert lines[-1] == "Readings: 0 created, 2 skipped (already there), 0 rejected."
    assert Reading.objects.filter(meter=water).count() == 2
    assert ReadingEvent.objects.count() == events  # nothing written, not even an update


def test_an_overlapping_file_stores_only_the_new_readings(account, water, tmp_path):
    add(water, (0, 10), (2, 30))
    path = write(
        tmp_path,
        f"{HEADER}\n"
        "W-1,,2024-01-03T00:00:00Z,30\n"  # stored: skipped
        "W-1,,2024-01-02T00:00:00Z,20\n"  # new, between two stored readings
        "W-1,,2024-01-04T00:00:00Z,45\n",  # new, after
    )
    lines, _ = run(path, "--account", "acme")
    assert lines[-1] == "Readings: 2 created, 1 skipped (already there), 0 rejected."
    register = water.registers.get(is_default=True)
    assert stored_series(register) == fresh_series(register)
    after = Reading.objects.get(register=register, reading_date=day(2))
    assert (after.previous_value, after.consumption) == (20, 10)


def test_rejected_rows_have_their_line_and_code(account, water, other_account, tmp_path):
    MeterFactory(account=other_account, serial_number="THEIRS")
    add(water, (0, 10))
    errors = tmp_path / "errors.csv"
    path = write(
        tmp_path,
        f"{HEADER}\n"
        "W-1,,2024-01-02T00:00:00Z,20\n"  # 2: created
        "NOPE,,2024-01-02T00:00:00Z,20\n"  # 3: unknown meter
        "THEIRS,,2024-01-02T00:00:00Z,20\n"  # 4: another account's meter
        "W-1,9.9.9,2024-01-02T00:00:00Z,20\n"  # 5: unknown register
        "W-1,,yesterday,20\n"  # 6: bad date
        "W-1,,2024-01-03T00:00:00Z,-1\n"  # 7: negative
        "W-1,,2024-01-01T00:00:00Z,11\n"  # 8: another value at a stored date
        "W-1,,2024-01-02T00:00:00Z,21\n"  # 9: same date as line 2
        "\n"  # 10: blank
        "W-1,,2999-01-01T00:00:00Z,30\n"  # 11: in the future
        ",,2024-01-05T00:00:00Z,30\n"  # 12: no serial number
        "W-1,,2024-01-05T00:00:00Z,30,extra\n",  # 13: malformed
    )
    lines, err, error = run_rejected(path, "--account", "acme", "--errors-out", str(errors))
    assert lines[-1] == "Readings: 1 created, 0 skipped (already there), 10 rejected."
    assert error.returncode == 1
    assert str(error) == f"10 rows rejected, listed in {errors}."
    with errors.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(row["line"]), row["code"]) for row in rows] == [
        (3, "unknown_meter"),
        (4, "unknown_meter"),
        (5, "unknown_register"),
        (6, "validation_error"),
        (7, "validation_error"),
        (8, "duplicate_reading"),
        (9, "duplicate_reading"),
        (11, "validation_error"),
        (12, "validation_error"),
        (13, "malformed_row"),
    ]
    messages = {int(row["line"]): row["message"] for row in rows}
    assert messages[3] == "No meter with serial number 'NOPE' in this account."
    assert messages[5] == "No register '9.9.9' on this meter."
    assert messages[6].startswith("reading_date: Datetime has wrong format.")
    assert messages[7].startswith("value: ")
    assert "future" in messages[11]
    # stderr lists them in line order too.
    assert err.splitlines()[0] == f"line 3: unknown_meter: {messages[3]}"
    assert values_of(water) == [(day(0), 10), (day(1), 20)]


def test_a_locked_reading_is_skipped_and_a_row_among_locked_ones_rejected(account, water, tmp_path):
    add(water, (0, 10), (2, 30))
    services.lock_readings(readings=Reading.objects.filter(meter=water))
    path = write(
        tmp_path,
        f"{HEADER}\nW-1,,2024-01-01T00:00:00Z,10\nW-1,,2024-01-02T00:00:00Z,20\n"
        "W-1,,2024-01-05T00:00:00Z,50\n",
    )
    lines, err, _ = run_rejected(path, "--account", "acme")
    assert lines[-1] == "Readings: 1 created, 1 skipped (already there), 1 rejected."
    assert err.startswith("line 3: reading_locked: ")


def test_a_decommissioned_meter_rejects_its_rows_as_conflicts(account, tmp_path):
    MeterFactory(account=account, serial_number="OLD", status="DECOMMISSIONED")
    path = write(tmp_path, f"{HEADER}\nOLD,,2024-01-01T00:00:00Z,1\nOLD,,2024-01-02,2\n")
    lines, err, _ = run_rejected(path, "--account", "acme")
    assert lines[-1] == "Readings: 0 created, 0 skipped (already there), 2 rejected."
    assert [line.split(": ")[1] for line in err.splitlines()] == ["conflict", "conflict"]


def test_dry_run_validates_through_the_engine_and_stores_nothing(account, water, tmp_path):
    add(water, (0, 10))
    path = write(
        tmp_path,
        f"{HEADER}\nW-1,,2024-01-01T00:00:00Z,10\nW-1,,2024-01-02T00:00:00Z,20\n"
        "W-1,,2024-01-02T00:00:00Z,21\n",
    )
    lines, _, error = run_rejected(path, "--account", "acme", "--dry-run")
    assert lines[-1] == (
        "Readings (dry run, nothing stored): 1 created, 1 skipped (already there), 1 rejected."
    )
    assert error.returncode == 1
    assert values_of(water) == [(day(0), 10)]


def test_bad_header_and_unknown_account_are_one_clear_error(account, tmp_path):
    with pytest.raises(CommandError, match="missing required column"):
        run(write(tmp_path, "serial_number,value\nW-1,1\n"), "--account", "acme")
    with pytest.raises(CommandError, match="unknown column"):
        run(write(tmp_path, f"{HEADER},lease\nW-1,,2024-01-01,1,\n"), "--account", "acme")
    with pytest.raises(CommandError, match="Unknown account 'nope'"):
        run(write(tmp_path, f"{HEADER}\n"), "--account", "nope")


def test_a_non_utf8_byte_stores_nothing(account, water, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(f"{HEADER},notes\nW-1,,2024-01-01,1,\nW-1,,2024-01-02,2,é\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8: line 3"):
        run(str(path), "--account", "acme")
    assert not Reading.objects.exists()


# --- one transaction -------------------------------------------------------------------------


def test_a_database_error_in_the_middle_stores_nothing(account, tmp_path, monkeypatch, capsys):
    meters = [MeterFactory(account=account, serial_number=f"M-{n}") for n in range(3)]
    path = write(
        tmp_path,
        HEADER
        + "\n"
        + "".join(f"M-{n},,2024-01-0{d}T00:00:00Z,{d}\n" for d in (1, 2) for n in range(3)),
    )
    write_chain = bulk_import._write_chain

    def written_then_failing(*args, **kwargs):
        created = write_chain(*args, **kwargs)  # the readings are in the table now
        assert Reading.objects.filter(meter__in=meters).count() == created == 6
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(bulk_import, "_write_chain", written_then_failing)
    # As from the shell: manage.py's CommandError handling (the test's connection stays open).
    monkeypatch.setattr(connections, "close_all", lambda: None)
    utility = ManagementUtility(
        ["manage.py", "import_readings", path, "--account", "acme", "--skip-checks"]
    )
    with pytest.raises(SystemExit) as exit_status:
        utility.execute()
    assert exit_status.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"CommandError: {path}: the import stopped on a database error, nothing was stored: "
        "server closed the connection unexpectedly"
    ]
    assert not Reading.objects.exists()


def test_the_engine_path_stops_whole_on_a_database_error_too(account, tmp_path, monkeypatch):
    """The path of SQLite: meter by meter through the engine, still one transaction."""
    meters = [MeterFactory(account=account, serial_number=f"M-{n}") for n in range(3)]
    path = write(
        tmp_path,
        HEADER
        + "\n"
        + "".join(f"M-{n},,2024-01-0{d}T00:00:00Z,{d}\n" for d in (1, 2) for n in range(3)),
    )
    engine = services.create_readings
    failing = meters[1].pk  # the second meter's batch, after the first one is written

    def create_readings(*, meter, items, actor):
        if meter.pk == failing:
            assert Reading.objects.filter(meter=meters[0]).count() == 2
            raise OperationalError("server closed the connection unexpectedly")
        return engine(meter=meter, items=items, actor=actor)

    monkeypatch.setattr(services, "create_readings", create_readings)
    with pytest.raises(CommandError, match="nothing was stored: server closed the connection"):
        imports.import_readings(account=account, path=path, set_based=False)
    assert not Reading.objects.exists()


# --- the function the admin calls ------------------------------------------------------------


def test_import_readings_returns_counts_and_rejected_rows(account, water, tmp_path):
    path = write(tmp_path, f"{HEADER}\nW-1,,2024-01-01T00:00:00Z,1\nNOPE,,2024-01-01T00:00:00Z,1\n")
    result = imports.import_readings(account=account, path=path, actor_label="user:ann")
    assert (result.created, result.skipped, result.rejected) == (1, 0, 1)
    assert result.rejected_rows == [
        imports.RejectedRow(
            3, "unknown_meter", "No meter with serial number 'NOPE' in this account."
        )
    ]
    assert result.summary == "Readings: 1 created, 0 skipped (already there), 1 rejected."
    assert result.failure == "1 row rejected."
    history = reading_history(meter_id=water.pk)
    assert [(entry.action, entry.actor, entry.source) for entry in history] == [
        ("insert", "user:ann", "IMPORT")
    ]


# --- the same rows as the API ----------------------------------------------------------------

COLUMNS = (
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
COMPARED = (
    "register__code",
    "reading_date",
    "value",
    "previous_value",
    "consumption",
    "is_rollover",
    *domain.FLAG_FIELDS.values(),
    "reading_type",
    "is_estimated",
    "is_billing_reading",
    "reader_name",
    "notes",
    "photo_url",
)


def make_meters(account: Account) -> None:
    """The same meters in each account: a rollover counter, a multiplier and two registers."""
    MeterFactory(account=account, serial_number="ROLL", max_value=Decimal(1000))
    multiplied = MeterFactory(account=account, serial_number="MULT", multiplier=Decimal("2.5"))
    RegisterFactory(meter=multiplied, code="1.8.2", transformer_ratio=Decimal(40))
    MeterFactory(account=account, serial_number="PLAIN", meter_type="WATER")


def file_rows() -> list[dict[str, str]]:
    """Readings of the three meters, interleaved and out of date order, raising flags."""
    rows = []

    def reading(serial, register, date, value, **extra):
        rows.append(
            {"serial_number": serial, "register": register, "reading_date": date, "value": value}
            | extra
        )

    # PLAIN: weekly readings, steady 70/week, then a spike, a drop and a negative one.
    plain = [0, 70, 140, 210, 280, 1000, 1010, 1080, 900, 970]
    for week in (5, 3, 0, 1, 4, 2, 9, 7, 8, 6):
        date = (dt.date(2024, 1, 1) + dt.timedelta(weeks=week)).isoformat()
        reading("PLAIN", "", date, str(plain[week]))
    # ROLL: counts up to 1000 and rolls over; estimated and billing readings among them.
    roll = [("2024-01-01T08:00:00Z", "900"), ("2024-01-08T08:00:00Z", "950")]
    roll += [("2024-01-15T08:00:00Z", "990"), ("2024-01-22T08:00:00Z", "30")]
    roll += [("2024-01-29T08:00:00+01:00", "70"), ("2024-02-05T09:00:00", "110.5")]
    for index in (3, 0, 5, 1, 4, 2):
        date, value = roll[index]
        extra = {"reading_type": "ESTIMATED"} if index == 2 else {}
        if index == 4:
            extra = {"is_billing_reading": "true", "reader_name": "Ann", "notes": "move-out"}
        reading("ROLL", "", date, value, **extra)
    # MULT: the default register and 1.8.2 (transformer ratio 40), interleaved.
    for week, value in ((2, "30.12"), (0, "10"), (1, "20"), (4, "50.5"), (3, "40")):
        date = (dt.date(2024, 3, 1) + dt.timedelta(weeks=week)).isoformat() + "T12:00:00"
        reading("MULT", "default", date, value)
        reading("MULT", "1.8.2", date, str(Decimal(value) / 10), reading_type="AUTOMATIC")
    # Interleave the meters: the file is not grouped by meter.
    return rows[::2] + rows[1::2]


def csv_text(rows: list[dict[str, str]]) -> str:
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return handle.getvalue()


def stored_rows(account: Account) -> dict[tuple[str, str, dt.datetime], tuple]:
    """Every reading of the account, keyed by meter serial, register and date."""
    readings = Reading.objects.filter(account=account).values_list(
        "meter__serial_number", "id", *COMPARED
    )
    return {(serial, row[0], row[1]): row for serial, _, *row in readings}


def history_counts(account: Account) -> dict[tuple[str, str, dt.datetime], int]:
    """The number of audit events of each reading of the account."""
    keys = {
        pk: (serial, code, date)
        for pk, serial, code, date in Reading.objects.filter(account=account).values_list(
            "id", "meter__serial_number", "register__code", "reading_date"
        )
    }
    counts = dict.fromkeys(keys.values(), 0)
    for pk in ReadingEvent.objects.filter(pgh_obj_id__in=keys).values_list("pgh_obj_id", flat=True):
        counts[keys[pk]] += 1
    return counts


def post_batches(client, account: Account, rows: list[dict[str, str]]) -> None:
    """The file's rows through the batch endpoint, one batch per meter, in the file's order."""
    meters = dict(Meter.objects.filter(account=account).values_list("serial_number", "id"))
    by_meter: dict[str, list[dict]] = {}
    for row in rows:
        body = {name: text for name, text in row.items() if text and name != "serial_number"}
        by_meter.setdefault(row["serial_number"], []).append(body)
    for serial, items in by_meter.items():
        response = client.post(
            f"/api/v1/meters/{meters[serial]}/readings/batch/", {"readings": items}, format="json"
        )
        assert response.status_code == 201, response.json()
        assert response.json()["data"]["rejected"] == 0


def test_an_import_stores_exactly_what_the_api_stores(account, make_client, tmp_path):
    rows = file_rows()
    make_meters(account)
    path = write(tmp_path, csv_text(rows))
    lines, _ = run(path, "--account", "acme")
    assert lines[-1] == f"Readings: {len(rows)} created, 0 skipped (already there), 0 rejected."

    through_batches = AccountFactory(slug="batches")
    make_meters(through_batches)
    post_batches(make_client(through_batches), through_batches, rows)

    one_by_one = AccountFactory(slug="one-by-one")
    make_meters(one_by_one)
    client = make_client(one_by_one)
    meters = dict(Meter.objects.filter(account=one_by_one).values_list("serial_number", "id"))
    for row in rows:
        body = {name: text for name, text in row.items() if text and name != "serial_number"}
        response = client.post(
            f"/api/v1/meters/{meters[row['serial_number']]}/readings/", body, format="json"
        )
        assert response.status_code == 201, response.json()

    imported = stored_rows(account)
    assert len(imported) == len(rows)
    assert imported == stored_rows(through_batches)
    assert imported == stored_rows(one_by_one)
    # The file raises what it is meant to: a rollover, flags, a multiplied consumption.
    flags = {flag for row in Reading.objects.filter(account=account) for flag in row.anomaly_flags}
    assert flags >= {"SPIKE", "DEVIATION", "DROP", "NEGATIVE"}
    assert Reading.objects.filter(account=account, is_rollover=True).count() == 1
    ratio = Reading.objects.filter(
        account=account, register__code="1.8.2", previous_value__isnull=False
    ).first()
    assert ratio.consumption == (ratio.value - ratio.previous_value) * Decimal(100)
    # The same audit history: one insert event per reading, as with the batch endpoint.
    counts = history_counts(account)
    assert counts == history_counts(through_batches)
    assert set(counts.values()) == {1}


def test_export_then_import_into_another_account_gives_the_same_rows(account, tmp_path):
    make_meters(account)
    run(write(tmp_path, csv_text(file_rows())), "--account", "acme")
    exported = tmp_path / "export.csv"
    call_command("export_readings", "--account", "acme", "-o", str(exported), stdout=io.StringIO())

    third = AccountFactory(slug="third")
    make_meters(third)
    lines, _ = run(str(exported), "--account", "third")
    assert lines[-1].startswith(f"Readings: {len(file_rows())} created, 0 skipped")
    assert stored_rows(third) == stored_rows(account)
    # And the export reads back into its own account as "already there".
    lines, _ = run(str(exported), "--account", "acme")
    assert (
        lines[-1] == f"Readings: 0 created, {len(file_rows())} skipped (already there), 0 rejected."
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar_and_a_pipe_only_the_summary(account, water, tmp_path):
    rows = "".join(f"W-1,,2024-01-{day:02d}T00:00:00Z,{day}\n" for day in range(1, 29))
    path = write(tmp_path, f"{HEADER}\n{rows}")
    terminal = Terminal()
    call_command("import_readings", path, "--account", "acme", stdout=terminal)
    shown = terminal.getvalue()
    assert "\rreadings.csv [" in shown and "rows" in shown  # the bar, redrawn in place
    assert "Checking the rows, computing the chain and the flags..." in shown
    assert shown.rstrip().endswith("Readings: 28 created, 0 skipped (already there), 0 rejected.")

    piped = io.StringIO()
    call_command("import_readings", path, "--account", "acme", stdout=piped)
    assert piped.getvalue() == "Readings: 0 created, 28 skipped (already there), 0 rejected.\n"
