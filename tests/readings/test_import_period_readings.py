"""import_period_readings (CONTRACT §4.4, §7): the API's rows and rules, skipped and rejected
rows, one transaction, dry run, and the same stored rows as the API's batch endpoint."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError

from metering.models import Account, Meter
from readings import domain, imports, periods
from readings.models import PeriodReading
from readings.selectors import PeriodReadingEvent
from tests.factories import AccountFactory, MeterFactory

pytestmark = pytest.mark.django_db

HEADER = "serial_number,start_date,end_date,consumption"
COLUMNS = (
    "serial_number",
    "start_date",
    "end_date",
    "consumption",
    "cost",
    "cost_currency",
    "demand_kw",
    "is_estimated",
    "notes",
)
COMPARED = (
    "start_date",
    "end_date",
    "consumption",
    "cost",
    "cost_currency",
    "demand_kw",
    "is_estimated",
    "notes",
    *domain.FLAG_FIELDS.values(),
)


def write(tmp_path: Path, text: str, *, name: str = "periods.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def run(*args) -> tuple[list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_period_readings", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines(), err.getvalue()


def run_rejected(*args) -> tuple[list[str], str, CommandError]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_period_readings", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines(), err.getvalue(), caught.value


def spans(meter) -> list[tuple[dt.date, dt.date, Decimal]]:
    return list(
        PeriodReading.objects.filter(meter=meter)
        .order_by("start_date")
        .values_list("start_date", "end_date", "consumption")
    )


@pytest.fixture
def gas(account):
    return MeterFactory(account=account, serial_number="G-1", meter_type="GAS")


def test_rows_are_stored_with_the_apis_defaults(account, gas, tmp_path):
    path = write(
        tmp_path,
        "\ufeffserial_number;start_date;end_date;consumption;cost;cost_currency;demand_kw;"
        "is_estimated;notes\n"
        "G-1;2024-02-01;2024-02-29;120,5;30,12;;1,5;true;bill, February\n"
        "G-1;2024-01-01;2024-01-31;100;;USD;;;\n",
    )
    lines, err = run(path, "--account", "acme")
    assert lines[-1] == "Period readings: 2 created, 0 skipped (already there), 0 rejected."
    assert err == ""
    february = PeriodReading.objects.get(meter=gas, start_date=dt.date(2024, 2, 1))
    assert (february.consumption, february.cost, february.cost_currency) == (
        Decimal("120.5"),
        Decimal("30.12"),
        "EUR",  # the account's
    )
    assert (february.demand_kw, february.is_estimated, february.notes) == (
        Decimal("1.5"),
        True,
        "bill, February",
    )
    assert (february.source, february.created_by) == ("IMPORT", "system:import_period_readings")
    january = PeriodReading.objects.get(meter=gas, start_date=dt.date(2024, 1, 1))
    assert (january.cost, january.cost_currency, january.is_estimated) == (None, "USD", False)


def test_reimport_skips_and_an_overlap_is_rejected(account, gas, tmp_path):
    path = write(
        tmp_path, f"{HEADER}\nG-1,2024-01-01,2024-01-31,100\nG-1,2024-02-01,2024-02-29,90\n"
    )
    run(path, "--account", "acme")
    lines, _ = run(path, "--account", "acme")
    assert lines[-1] == "Period readings: 0 created, 2 skipped (already there), 0 rejected."

    errors = tmp_path / "errors.csv"
    path = write(
        tmp_path,
        f"{HEADER}\n"
        "G-1,2024-01-01,2024-01-31,101\n"  # 2: same period, another consumption
        "G-1,2024-03-01,2024-03-31,80\n"  # 3: created
        "G-1,2024-03-15,2024-04-15,80\n"  # 4: overlaps line 3
        "NOPE,2024-03-01,2024-03-31,80\n"  # 5: unknown meter
        "G-1,2024-06-01,2024-05-01,80\n"  # 6: ends before it starts
        "G-1,2024-07-01,2024-07-31,\n",  # 7: no consumption
        name="second.csv",
    )
    lines, err, error = run_rejected(path, "--account", "acme", "--errors-out", str(errors))
    assert lines[-1] == "Period readings: 1 created, 0 skipped (already there), 5 rejected."
    assert error.returncode == 1
    with errors.open(newline="") as handle:
        rows = [(int(row["line"]), row["code"]) for row in csv.DictReader(handle)]
    assert rows == [
        (2, "overlap"),
        (4, "overlap"),
        (5, "unknown_meter"),
        (6, "validation_error"),
        (7, "validation_error"),
    ]
    assert "line 6: validation_error: end_date: A period cannot end before it starts." in err
    assert "line 7: validation_error: consumption: This field is required." in err
    assert len(spans(gas)) == 3


def test_a_locked_period_is_rejected(account, gas, tmp_path):
    register = gas.registers.get(is_default=True)
    register.locked_until = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    register.save(update_fields=["locked_until"])
    path = write(tmp_path, f"{HEADER}\nG-1,2024-01-01,2024-01-31,100\n")
    _, err, _ = run_rejected(path, "--account", "acme")
    assert err.startswith("line 2: reading_locked: ")


def test_dry_run_stores_nothing(account, gas, tmp_path):
    path = write(tmp_path, f"{HEADER}\nG-1,2024-01-01,2024-01-31,100\n")
    lines, _ = run(path, "--account", "acme", "--dry-run")
    assert lines[-1] == (
        "Period readings (dry run, nothing stored): 1 created, 0 skipped (already there), "
        "0 rejected."
    )
    assert not PeriodReading.objects.exists()


def test_a_database_error_in_the_middle_stores_nothing(account, tmp_path, monkeypatch):
    meters = [MeterFactory(account=account, serial_number=f"M-{n}") for n in range(3)]
    path = write(
        tmp_path,
        HEADER + "\n" + "".join(f"M-{n},2024-01-01,2024-01-31,{n}\n" for n in range(3)),
    )
    engine = periods.create_period_readings

    def create_period_readings(*, meter, items, actor):
        if meter.pk == meters[2].pk:
            raise OperationalError("deadlock detected")
        return engine(meter=meter, items=items, actor=actor)

    monkeypatch.setattr(periods, "create_period_readings", create_period_readings)
    with pytest.raises(CommandError) as caught:
        run(path, "--account", "acme")
    assert caught.value.returncode == 1
    assert "nothing was stored: deadlock detected" in str(caught.value)
    assert not PeriodReading.objects.exists()


def test_import_period_readings_returns_its_result(account, gas, tmp_path):
    path = write(
        tmp_path, f"{HEADER}\nG-1,2024-01-01,2024-01-31,100\nG-1,2024-01-31,2024-02-01,1\n"
    )
    result = imports.import_period_readings(account=account, path=path)
    assert (result.created, result.skipped, result.rejected) == (1, 0, 1)
    assert result.rejected_rows == [
        imports.RejectedRow(3, "overlap", periods.BATCH_OVERLAP_MESSAGE)
    ]


# --- the same rows as the API ----------------------------------------------------------------


def file_rows() -> list[dict[str, str]]:
    """Monthly bills of two meters, interleaved and out of order, with a spike and a drop."""
    rows = []
    for serial, consumptions in (
        ("P-1", [100, 102, 98, 101, 400, 99, 10, 100, -20, 100]),
        ("P-2", [50, 55, 45, 50, 52, 48, 51, 49, 50, 200]),
    ):
        for month in (4, 0, 9, 2, 1, 3, 7, 5, 8, 6):
            start = dt.date(2023, month + 1, 1)
            end = dt.date(2023, month + 2, 1) - dt.timedelta(days=1)
            row = {
                "serial_number": serial,
                "start_date": start.isoformat(),
                "end_date": end.isoformat(),
                "consumption": str(consumptions[month]),
            }
            if month == 3:
                row |= {"cost": "12.30", "demand_kw": "4.5", "is_estimated": "true", "notes": "n"}
            rows.append(row)
    return rows[::2] + rows[1::2]


def make_meters(account: Account) -> None:
    MeterFactory(account=account, serial_number="P-1", meter_type="GAS")
    MeterFactory(account=account, serial_number="P-2", meter_type="ELECTRICITY")


def stored_rows(account: Account) -> dict[tuple[str, dt.date], tuple]:
    rows = PeriodReading.objects.filter(account=account).values_list(
        "meter__serial_number", *COMPARED
    )
    return {(row[0], row[1]): row[1:] for row in rows}


def history_counts(account: Account) -> dict[tuple[str, dt.date], int]:
    keys = dict(
        (pk, (serial, start))
        for pk, serial, start in PeriodReading.objects.filter(account=account).values_list(
            "id", "meter__serial_number", "start_date"
        )
    )
    counts = dict.fromkeys(keys.values(), 0)
    for pk in PeriodReadingEvent.objects.filter(pgh_obj_id__in=keys).values_list(
        "pgh_obj_id", flat=True
    ):
        counts[keys[pk]] += 1
    return counts


def test_an_import_stores_exactly_what_the_api_stores(account, make_client, tmp_path):
    rows = file_rows()
    make_meters(account)
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    lines, _ = run(write(tmp_path, handle.getvalue()), "--account", "acme")
    assert (
        lines[-1] == f"Period readings: {len(rows)} created, 0 skipped (already there), 0 rejected."
    )

    through_api = AccountFactory(slug="api")
    make_meters(through_api)
    client = make_client(through_api)
    meters = dict(Meter.objects.filter(account=through_api).values_list("serial_number", "id"))
    by_meter: dict[str, list[dict]] = {}
    for row in rows:
        by_meter.setdefault(row["serial_number"], []).append(
            {name: text for name, text in row.items() if name != "serial_number"}
        )
    for serial, items in by_meter.items():
        response = client.post(
            f"/api/v1/meters/{meters[serial]}/period-readings/batch/",
            {"readings": items},
            format="json",
        )
        assert response.status_code == 201, response.json()
        assert response.json()["data"]["rejected"] == 0

    imported = stored_rows(account)
    assert len(imported) == len(rows)
    assert imported == stored_rows(through_api)
    flags = {
        flag for row in PeriodReading.objects.filter(account=account) for flag in row.anomaly_flags
    }
    assert flags >= {"SPIKE", "DROP", "NEGATIVE"}
    assert history_counts(account) == history_counts(through_api)
    assert set(history_counts(account).values()) == {1}
