"""import_meters (CONTRACT §7): delimiters, encodings, references, dry run, errors file, exit."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from metering.csv_files import normalise_decimal_comma
from metering.models import Meter, Register
from tests.factories import EstateFactory, GatewayFactory, MeterFactory, PlaceFactory

pytestmark = pytest.mark.django_db

HEADER = "name,serial_number,meter_type"


def write(tmp_path: Path, text: str, *, name: str = "meters.csv", encoding="utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def run(*args) -> tuple[list[str], str]:
    """stdout lines and stderr text of ``import_meters``."""
    out, err = io.StringIO(), io.StringIO()
    call_command("import_meters", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines(), err.getvalue()


def run_rejected(*args) -> tuple[list[str], str, CommandError]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_meters", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines(), err.getvalue(), caught.value


def test_comma_file_creates_meters_with_the_api_defaults(account, tmp_path):
    place = PlaceFactory(account=account, code="B1")
    path = write(
        tmp_path,
        "name,serial_number,meter_type,place_code,multiplier,is_main_meter,properties\n"
        'Main,E-1,ELECTRICITY,B1,2.5,true,"{""floor"": 2}"\n'
        "Water,W-1,WATER,,,,\n",
    )
    lines, _ = run(path, "--account", "acme")
    assert lines[-1] == "Meters: 2 created, 0 skipped (already there), 0 rejected."
    main = Meter.objects.get(account=account, serial_number="E-1")
    assert (main.place_id, main.multiplier, main.is_main_meter, main.properties) == (
        place.pk,
        Decimal("2.5"),
        True,
        {"floor": 2},
    )
    water = Meter.objects.get(account=account, serial_number="W-1")
    assert (water.unit, water.multiplier, water.status) == ("m3", Decimal(1), "ACTIVE")
    # Through create_meter: the default register exists.
    assert Register.objects.filter(meter=water, code="default", is_default=True).exists()


def test_semicolon_file_with_bom_and_decimal_comma(account, tmp_path):
    path = write(
        tmp_path,
        "\ufeffname;serial_number;meter_type;multiplier;max_value;notes\n"
        "Heat;H-1;HEATING;2,5;99999,9;kept, as text\n",
    )
    lines, _ = run(path, "--account", "acme")
    assert lines[-1].startswith("Meters: 1 created")
    meter = Meter.objects.get(serial_number="H-1")
    assert (meter.name, meter.multiplier, meter.max_value, meter.notes) == (
        "Heat",
        Decimal("2.5"),
        Decimal("99999.9"),
        "kept, as text",
    )


def test_decimal_comma_is_only_for_decimal_fields():
    assert normalise_decimal_comma("12,5") == "12.5"
    assert normalise_decimal_comma("1.234,5") == "1.234,5"
    assert normalise_decimal_comma("12.5") == "12.5"


def test_reimport_creates_nothing(account, tmp_path):
    path = write(tmp_path, f"{HEADER}\nA,S-1,GAS\nB,S-2,GAS\n")
    run(path, "--account", "acme")
    lines, _ = run(path, "--account", "acme")
    assert lines[-1] == "Meters: 0 created, 2 skipped (already there), 0 rejected."
    assert Meter.objects.filter(account=account).count() == 2


def test_existing_serial_is_skipped_not_changed(account, tmp_path):
    MeterFactory(account=account, serial_number="S-1", name="Original")
    run(write(tmp_path, f"{HEADER}\nChanged,S-1,ELECTRICITY\n"), "--account", "acme")
    assert Meter.objects.get(serial_number="S-1").name == "Original"


def test_dry_run_stores_nothing(account, tmp_path):
    path = write(tmp_path, f"{HEADER},parent_serial_number\nChild,C-1,WATER,P-1\nP,P-1,WATER,\n")
    lines, _ = run(path, "--account", "acme", "--dry-run")
    assert lines[-1] == (
        "Meters (dry run, nothing stored): 2 created, 0 skipped (already there), 0 rejected."
    )
    assert not Meter.objects.filter(account=account).exists()


def test_rejected_rows_go_to_the_errors_file_with_their_line(account, tmp_path):
    path = write(
        tmp_path,
        f"{HEADER},multiplier,place_code\n"
        "Good,G-1,ELECTRICITY,,\n"
        "\n"  # line 3: blank, skipped
        "Bad,B-1,ELECTRICITY,-1,\n"
        "Nowhere,N-1,GAS,,NOPE\n"
        ",E-1,TOASTER,,\n",
    )
    errors = tmp_path / "errors.csv"
    lines, stderr, error = run_rejected(path, "--account", "acme", "--errors-out", str(errors))
    assert lines[-1] == "Meters: 1 created, 0 skipped (already there), 3 rejected."
    assert error.returncode == 1
    assert "3 rows rejected" in str(error)
    with errors.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "code", "message"]
    assert [row[:2] for row in rows[1:]] == [
        ["4", "validation_error"],
        ["5", "unknown_place"],
        ["6", "validation_error"],
    ]
    assert "multiplier" in rows[1][2]
    assert "name" in rows[3][2] and "meter_type" in rows[3][2]
    assert "line 4: validation_error: multiplier" in stderr
    # The accepted row is stored even though others were rejected.
    assert list(Meter.objects.filter(account=account).values_list("serial_number", flat=True)) == [
        "G-1"
    ]


def test_parent_after_its_child_in_the_file(account, tmp_path):
    path = write(
        tmp_path,
        f"{HEADER},parent_serial_number\n"
        "Flat 1,W-11,WATER_COLD,W-1\n"
        "Riser,W-1,WATER,W-0\n"
        "Main,W-0,WATER,\n"
        "Orphan,W-99,WATER,MISSING\n",
    )
    lines, _, _ = run_rejected(path, "--account", "acme")
    assert lines[-1] == "Meters: 3 created, 0 skipped (already there), 1 rejected."
    meters = {m.serial_number: m for m in Meter.objects.filter(account=account)}
    assert meters["W-11"].parent_meter_id == meters["W-1"].pk
    assert meters["W-1"].parent_meter_id == meters["W-0"].pk


def test_parent_rules_are_the_apis(account, tmp_path):
    MeterFactory(account=account, serial_number="GAS-0", meter_type="GAS")
    path = write(tmp_path, f"{HEADER},parent_serial_number\nSub,E-1,ELECTRICITY,GAS-0\n")
    _, stderr, _ = run_rejected(path, "--account", "acme")
    assert "validation_error: parent_meter: A ELECTRICITY meter cannot be a sub-meter" in stderr


def test_estates_gateways_and_references(account, other_account, tmp_path):
    place = PlaceFactory(account=account, code="B1")
    other_place = PlaceFactory(account=account, code="B2")
    estate = EstateFactory(place=place, code="L1")
    EstateFactory(place=other_place, code="L2")
    EstateFactory(place=other_place, code="L1")
    gateway = GatewayFactory(account=account, identifier="GW-A")
    GatewayFactory(account=other_account, identifier="GW-B")
    path = write(
        tmp_path,
        f"{HEADER},place_code,estate_code,gateway_identifier\n"
        "With place,M-1,GAS,B1,L1,GW-A\n"
        "Estate alone,M-2,GAS,,L2,\n"
        "Ambiguous,M-3,GAS,,L1,\n"
        "Other account's gateway,M-4,GAS,,,GW-B\n",
    )
    errors = tmp_path / "errors.csv"
    run_rejected(path, "--account", "acme", "--errors-out", str(errors))
    first = Meter.objects.get(serial_number="M-1")
    assert (first.place_id, first.estate_id, first.gateway_id) == (place.pk, estate.pk, gateway.pk)
    # The place comes from the estate.
    assert Meter.objects.get(serial_number="M-2").place_id == other_place.pk
    codes = [row[1] for row in csv.reader(errors.open(encoding="utf-8"))][1:]
    assert codes == ["ambiguous_estate", "unknown_gateway"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,serial_number\nA,1\n", "missing required column(s) meter_type"),
        (f"{HEADER},colour\nA,1,GAS,red\n", "unknown column(s) colour"),
        (f"{HEADER},service_place_id\nA,1,GAS,3\n", "unknown column(s) service_place_id"),
        ("", "is empty"),
    ],
)
def test_bad_headers_are_one_clear_error(account, tmp_path, text, message):
    with pytest.raises(CommandError) as caught:
        run(write(tmp_path, text), "--account", "acme")
    assert message in str(caught.value)
    assert not Meter.objects.exists()


def test_non_utf8_file_names_the_line(account, tmp_path):
    path = write(tmp_path, f"{HEADER}\nA,S-1,GAS\nCompteur é,S-2,GAS\n", encoding="latin-1")
    with pytest.raises(CommandError, match=r"not UTF-8: line 3"):
        run(path, "--account", "acme")
    # The file is one transaction: nothing of it is stored.
    assert not Meter.objects.exists()


def test_unknown_account(account, tmp_path):
    with pytest.raises(CommandError, match="Unknown account 'nope'"):
        run(write(tmp_path, f"{HEADER}\nA,S-1,GAS\n"), "--account", "nope")


def test_missing_file_from_the_shell_exits_1_without_traceback(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    result = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "manage.py",
            "import_meters",
            str(tmp_path / "missing.csv"),
            "--account",
            "acme",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"CommandError: Cannot read {tmp_path / 'missing.csv'}: No such file or directory."
    ]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ('"{""a"": 1e400}"', "Numbers must be finite."),
        ('"{""a"": ""x\\u0000y""}"', "Null characters are not allowed."),
        ('"' + '{""a"": ' * 70 + "1" + "}" * 70 + '"', "Nesting deeper than 64 levels."),
    ],
)
def test_properties_jsonb_cannot_store_are_a_rejected_row(account, tmp_path, cell, message):
    """The API's rule for free JSON holds for the import too: a row error, no traceback."""
    path = write(tmp_path, f"{HEADER},properties\nMain,E-1,ELECTRICITY,{cell}\nOk,E-2,WATER,\n")
    lines, err, _ = run_rejected(path, "--account", "acme")
    assert f"properties: {message}" in "\n".join(lines) + err
    assert list(Meter.objects.values_list("serial_number", flat=True)) == ["E-2"]
