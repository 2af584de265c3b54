"""The set-based import (``readings.bulk_import``) against the engine path on the same files:
the same counts, the same rejected rows and messages, the same stored rows field by field,
the same audit events and the same meters' last readings (CONTRACT §7, issue 7 points 2, 5)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering.models import Account, Meter
from readings import imports, services
from readings.models import Reading
from tests.factories import AccountFactory, MeterFactory, RegisterFactory
from tests.readings.test_import_readings import COMPARED, history_counts

pytestmark = pytest.mark.django_db

ACTOR = services.Actor("test:fixture", "API")
HEADER = (
    "serial_number,register,reading_date,value,reading_type,is_estimated,is_billing_reading,"
    "reader_name,notes,photo_url"
)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def readings(meter, register_code, *pairs) -> None:
    items = [
        services.ReadingInput(
            reading_date=at(date), value=Decimal(value), register_code=register_code
        )
        for date, value in pairs
    ]
    result = services.create_readings(meter=meter, items=items, actor=ACTOR)
    assert not result.errors, result.errors


def set_up(slug: str) -> Account:
    """An account with meters of every kind and readings stored already."""
    account = AccountFactory(
        slug=slug, timezone="Europe/Paris", anomaly_baseline_days=30, anomaly_min_intervals=2
    )
    MeterFactory(account=account, serial_number="PLAIN", meter_type="WATER")
    roll = MeterFactory(account=account, serial_number="ROLL", max_value=Decimal(1000))
    mult = MeterFactory(account=account, serial_number="MULT", multiplier=Decimal("2.5"))
    RegisterFactory(meter=mult, code="1.8.2", transformer_ratio=Decimal(40))
    MeterFactory(account=account, serial_number="PREC", precision_digits=1)
    MeterFactory(account=account, serial_number="O'BRIEN")
    gone = MeterFactory(account=account, serial_number="GONE")
    readings(gone, None, ("2024-01-01T00:00", "5"))
    Meter.objects.filter(pk=gone.pk).update(status="DECOMMISSIONED")
    # Stored readings the file overlaps: a chain the file must bring up to date.
    readings(roll, None, ("2024-01-01T08:00", "900"), ("2024-01-15T08:00", "990"))
    readings(mult, "1.8.2", ("2024-03-01T11:00", "1"), ("2024-03-29T11:00", "4"))
    # A locked register: readings up to 2024-02-01 belong to a closed period.
    locked = MeterFactory(account=account, serial_number="LOCKED")
    readings(locked, None, ("2024-01-01T00:00", "10"), ("2024-02-01T00:00", "20"))
    services.lock_readings(readings=Reading.objects.filter(meter=locked))
    # A device replaced on 2024-02-10 whose new device starts at 3.
    swap = MeterFactory(account=account, serial_number="SWAP")
    readings(swap, None, ("2024-01-01T00:00", "100"), ("2024-01-20T00:00", "150"))
    services.replace_device(
        meter=swap,
        replaced_at=at("2024-02-10T00:00"),
        final_value=Decimal(170),
        new_serial_number="SWAP-2",
        initial_value=Decimal(3),
        actor=ACTOR,
    )
    return account


FILE = [
    # PLAIN: out of order, every date format the API takes, and a spike, a drop, a negative.
    "PLAIN,,2024-01-15,140,,,,,,",
    "PLAIN,,2024-01-01,0,MANUAL,,,Ann,first,",
    "PLAIN,default,2024-01-08T00:00,70,AUTOMATIC,yes,TRUE,,,",
    "PLAIN,,2024-01-22 00:00:00.5,210,,,,,,",
    "PLAIN,,2024-01-29T00:00:00+02:00,900,ESTIMATED,,,,,",
    "PLAIN,,2024-02-05T00:00:00Z,905,,false,,,,",
    "PLAIN,,2024-02-12T00:00:00.123456Z,850,,,,,,",
    "PLAIN,,2024-02-19T05:00,  860.5  ,,,,,,https://example.com/p.jpg",
    # Around the change back to winter time: 02:30 happens twice (the first one counts).
    "PLAIN,,2024-10-27T02:30,900,,,,,,",
    "PLAIN,,2024-03-31T02:30,870,,,,,,",  # a time the change to summer time skips
    "PLAIN,,2024-04-02,1e3,,,,,,",  # an exponent: the API's DecimalField takes it
    # Rejected by the API's serializer.
    "PLAIN,,05/01/2024,1,,,,,,",
    "PLAIN,,2024-02-30,1,,,,,,",
    "PLAIN,,2024-05-01,-1,,,,,,",
    "PLAIN,,2024-05-02,abc,,,,,,",
    "PLAIN,,2024-05-03,1,manual,,,,,",
    "PLAIN,,2024-05-04,1,,maybe,,,,",
    "PLAIN,,2024-05-05,1,,,,,,not a url",
    "PLAIN,,2024-05-06," + "1" * 15 + ",,,,,,",
    "PLAIN,,2024-05-07T25:00,1,,,,,,",
    "PLAIN,,2024-05-08,1,,,," + "x" * 101 + ",,",
    # The engine's checks.
    "PLAIN,,2099-01-01,5000,,,,,,",  # in the future
    "PLAIN,,2024-01-08T00:00,71,,,,,,",  # an earlier row has this register and date
    "PLAIN,,2024-01-08T00:00,70,,,,,,",  # the same, with the same value
    "PLAIN,9.9.9,2024-01-09,70,,,,,,",  # no such register
    "PREC,,2024-01-01,1.25,,,,,,",  # more decimals than the meter's
    "PREC,,2024-01-02,1.20,,,,,,",  # trailing zeros are no decimals
    "ROLL,,2024-01-20T08:00Z,2000,,,,,,",  # above the counter's maximum
    "ROLL,,2024-01-08T08:00Z,950,,,,,,",  # between stored readings
    "ROLL,,2024-01-15T08:00Z,990,,,,,,",  # identical to a stored reading: skipped
    "ROLL,,2024-01-01T08:00Z,901,,,,,,",  # another value at a stored date
    "ROLL,,2024-01-22T08:00Z,30,,,,,,",  # rolls over at 1000
    "ROLL,,2024-01-29T09:00Z,70,,,,,,",
    "MULT,1.8.2,2024-03-15T12:00,2,AUTOMATIC,,,,,",
    "MULT,default,2024-03-15T12:00,20,,,,,,",
    "MULT,1.8.2,2024-04-12T12:00,6.5,,,,,,",
    "GONE,,2024-02-01,6,,,,,,",  # decommissioned
    "GONE,,2024-01-01T00:00:00Z,5,,,,,,",  # identical to a stored one: still skipped
    "LOCKED,,2024-01-15,15,,,,,,",  # among locked readings
    "LOCKED,,2024-02-01T00:00:00Z,20,,,,,,",  # identical to a locked one: skipped
    "LOCKED,,2024-02-15,30,,,,,,",  # after the lock
    "SWAP-2,,2024-02-20,13,,,,,,",  # counts from the new device's 3
    "SWAP-2,,2024-02-05,160,,,,,,",  # before the replacement: the old device
    "NOPE,,2024-01-01,1,,,,,,",
    "O'BRIEN2,,2024-01-01,1,,,,,,",
    "O'BRIEN,,2024-01-01,1,,,,,,",
    ",,2024-01-01,1,,,,,,",  # no serial number
    "",  # a blank line
    ",,,,,,,,,",  # a row of empty cells
    "PLAIN,,2024-06-01,1,,,,,,,extra",  # more cells than columns
    "PLAIN,,2024-06-02,1100",  # fewer cells: the others are empty
    '"PLAIN","","2024-06-03","1200","","","","","a ""quoted"", note\non two lines",""',
    "PLAIN,,2024-06-04,1300,,,,,,",
    "MULT,,2024-04-12T12:00,60,,,,,,",  # no register: the default one, of two
    "LOCKED,,2024-02-01T00:00:00Z,21,,,,,,",  # another value at the lock instant: locked
]


def run_both(tmp_path: Path, lines: list[str], *, semicolon: bool = False):
    """The file imported set-based into one account and through the engine into another."""
    header = HEADER.replace(",", ";") if semicolon else HEADER
    text = "\n".join([header, *lines]) + "\n"
    path = tmp_path / "readings.csv"
    path.write_text(text, encoding="utf-8")
    results = []
    for slug, set_based in (("set-based", True), ("engine", False)):
        account = Account.objects.get(slug=slug)
        results.append(
            (
                account,
                imports.import_readings(account=account, path=str(path), set_based=set_based),
            )
        )
    return results


def snapshot(account: Account) -> dict:
    rows = {
        (serial, code, date): row
        for serial, code, date, *row in Reading.objects.filter(account=account).values_list(
            "meter__serial_number",
            "register__code",
            "reading_date",
            *COMPARED,
            "source",
            "created_by",
            "lease_id",
        )
    }
    meters = dict(
        Meter.objects.filter(account=account).values_list("serial_number", "last_reading_value")
    )
    return {"rows": rows, "meters": meters, "history": history_counts(account)}


def assert_same(results) -> None:
    (bulk_account, bulk), (engine_account, engine) = results
    assert (bulk.created, bulk.skipped, bulk.rejected) == (
        engine.created,
        engine.skipped,
        engine.rejected,
    )
    assert bulk.rejected_rows == engine.rejected_rows
    assert bulk.summary == engine.summary
    bulk_state, engine_state = snapshot(bulk_account), snapshot(engine_account)
    assert bulk_state["rows"].keys() == engine_state["rows"].keys()
    for key, row in bulk_state["rows"].items():
        assert row == engine_state["rows"][key], key
    assert bulk_state == engine_state


def test_every_rule_gives_what_the_engine_gives(tmp_path):
    set_up("set-based")
    set_up("engine")
    results = run_both(tmp_path, FILE)
    assert_same(results)
    account, result = results[0]
    codes = {row.code for row in result.rejected_rows}
    assert [row.line for row in result.rejected_rows if row.code == "duplicate_reading"] == [
        24,
        25,
        32,
    ]
    assert codes == {
        "validation_error",
        "duplicate_reading",
        "unknown_register",
        "unknown_meter",
        "conflict",
        "reading_locked",
        "malformed_row",
    }
    assert result.skipped == 3
    messages = {row.line: row.message for row in result.rejected_rows}
    assert messages[46] == 'No meter with serial number "O\'BRIEN2" in this account.'
    assert messages[27] == "value: This meter's readings have at most 1 decimals."
    # The set-based import brought the stored chain up to date: 950 now sits between them.
    roll = Reading.objects.filter(account=account, meter__serial_number="ROLL")
    assert roll.get(reading_date=at("2024-01-15T08:00")).previous_value == Decimal(950)
    swap = roll.model.objects.get(account=account, meter__serial_number="SWAP-2", value=13)
    assert (swap.previous_value, swap.consumption) == (Decimal(3), Decimal(10))
    # The same file again creates nothing.
    again = run_both(tmp_path, FILE)
    assert again[0][1].created == again[1][1].created == 0
    assert_same(again)


def test_a_semicolon_file_with_decimal_commas_gives_what_the_engine_gives(tmp_path):
    set_up("set-based")
    set_up("engine")
    lines = [
        "PLAIN;;2024-01-01;0,5;;;;;;",
        "PLAIN;;2024-01-08;1.234,5;;;;;;",
        "PLAIN;;2024-01-15;12,25;;;;;;",
        "PLAIN;;2024-01-22;20;;;;;;",
    ]
    results = run_both(tmp_path, lines, semicolon=True)
    assert results[0][1].created == 3
    assert_same(results)


@pytest.mark.parametrize("seed", range(12))
def test_random_files_over_stored_series_give_what_the_engine_gives(tmp_path, seed):
    """Random series, thresholds, stored readings and files (shuffled, with duplicates)."""
    rng = random.Random(seed)  # noqa: S311 (test data)
    thresholds = {
        "anomaly_baseline_days": rng.choice([7, 30, 365]),
        "anomaly_min_intervals": rng.choice([0, 1, 3]),
        "anomaly_deviation_ratio": Decimal(rng.choice(["0.2", "0.5"])),
        "anomaly_spike_ratio": Decimal(rng.choice(["1.5", "3"])),
        "anomaly_drop_ratio": Decimal(rng.choice(["0.25", "0.8"])),
    }
    series = {}
    for serial in ("A", "B", "C"):
        value, points = Decimal(0), []
        start = at("2024-01-01T00:00") + dt.timedelta(hours=rng.randrange(48))
        for step in range(rng.randrange(5, 40)):
            value += Decimal(rng.choice([0, 1, 2, 5, 40, -3])) + Decimal(rng.randrange(100)) / 100
            value = max(value, Decimal(0))
            when = start + dt.timedelta(hours=step * rng.choice([6, 24, 24, 72]))
            points.append((when, value))
        series[serial] = sorted(dict(points).items())
    stored = {serial: rng.sample(points, len(points) // 3) for serial, points in series.items()}
    for slug in ("set-based", "engine"):
        account = AccountFactory(slug=slug, timezone="Europe/Paris", **thresholds)
        for serial in series:
            meter = MeterFactory(
                account=account,
                serial_number=serial,
                max_value=Decimal(500) if serial == "C" else None,
            )
            items = [
                services.ReadingInput(reading_date=when, value=value)
                for when, value in stored[serial]
            ]
            services.create_readings(meter=meter, items=items, actor=ACTOR)
    lines = []
    for serial, points in series.items():
        for when, value in points:
            if rng.random() < 0.1:  # another value at a date: one of the two is refused
                lines.append(f"{serial},,{when.isoformat()},{value + 1},,,,,,")
            lines.append(f"{serial},,{when.isoformat()},{value},,,,,,")
    rng.shuffle(lines)
    assert_same(run_both(tmp_path, lines))


def test_the_statements_do_not_grow_with_the_file(tmp_path):
    def queries(rows: int) -> int:
        account = AccountFactory(slug=f"q{rows}")
        MeterFactory(account=account, serial_number="Q")
        lines = [
            f"Q,,{(at('2024-01-01T00:00') + dt.timedelta(days=n)).isoformat()},{n},,,,,,"
            for n in range(rows)
        ]
        path = tmp_path / f"q{rows}.csv"
        path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
        with CaptureQueriesContext(connection) as captured:
            result = imports.import_readings(account=account, path=str(path))
        assert result.created == rows
        return len(captured)

    assert queries(3) == queries(300)
