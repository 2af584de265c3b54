"""Benchmark of the CSV import of readings (CONTRACT §7, issue 7): ``manage.py import_readings``.

Run from the project root; the database named by --database-url (default
metering_bench_import, its name must contain "bench") is dropped and recreated:

    .venv/bin/python bench/import_readings.py                     # 100,000 and 1,000,000 rows
    .venv/bin/python bench/import_readings.py --rows 20000,100000 # other sizes

For each size, in a fresh account of ``--meters`` meters (10,000 by default; fewer when the
file is smaller, so that each meter gets at least ``--min-per-meter`` readings):

1. writes a CSV file (``serial_number,reading_date,value``; daily readings, meters
   interleaved day by day as a meter-reading contractor's file would be);
2. the reference: a raw ``COPY`` of the same file into a bare table with the same three
   columns (no index, no trigger), through psycopg, timed;
3. runs ``manage.py import_readings`` on the file in a child process, timed, with its peak
   resident memory (``wait4``'s rusage), and checks the number of readings stored;
4. prints the time, readings per second, the ratio to the raw ``COPY`` and the peak memory;
5. the floor: an ``INSERT ... SELECT`` of the same readings, ready-made, into
   ``readings_reading`` (its indexes, foreign-key checks and audit trigger; rolled back),
   timed, with its own ratio to the ``COPY``: what no import of the file can beat.

The goal (issue 7): at most 3 times the raw ``COPY`` time, and a peak memory that stays flat
as the file grows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import readings_api as loading

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/metering_bench_import"


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rows", default="100000,1000000", help="file sizes, comma-separated (100000,1000000)"
    )
    parser.add_argument("--meters", type=int, default=10_000, help="meters at most (10,000)")
    parser.add_argument(
        "--min-per-meter", type=int, default=10, help="readings per meter at least (10)"
    )
    loading.add_database_options(parser, "BENCH_IMPORT_DATABASE_URL", DEFAULT_DATABASE_URL)
    options = parser.parse_args(argv)
    loading.check_database_name(parser, options)
    try:
        options.sizes = [int(size) for size in options.rows.split(",")]
    except ValueError:
        parser.error("--rows: comma-separated numbers")
    if any(size < options.min_per_meter for size in options.sizes) or options.meters < 1:
        parser.error("each size needs at least --min-per-meter rows, and 1 meter")
    options.conn_max_age = 0
    return options


def create_meters(slug: str, count: int) -> list[str]:
    """An account ``slug`` with ``count`` water meters (and their default registers)."""
    from metering import services
    from metering.models import Meter, Register

    account = services.create_account(name=f"Bench {slug}", slug=slug, timezone="Europe/Paris")
    meters = Meter.objects.bulk_create(
        Meter(
            account=account,
            name=f"Flat {number}",
            serial_number=f"{slug.upper()}-{number:06d}",
            meter_type="WATER",
            unit="m3",
        )
        for number in range(count)
    )
    Register.objects.bulk_create(
        Register(
            meter=meter, code=Register.DEFAULT_CODE, name="Default", unit="m3", is_default=True
        )
        for meter in meters
    )
    return [meter.serial_number for meter in meters]


def write_file(path: Path, serials: list[str], rows: int) -> None:
    """``rows`` daily readings, day by day across the meters, values rising 0.25 m³ a day."""
    start = dt.datetime(2024, 1, 1, 6, tzinfo=dt.UTC)
    per_meter = -(-rows // len(serials))
    written = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write("serial_number,reading_date,value\n")
        for day in range(per_meter):
            stamp = (start + dt.timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
            value = f"{day * 0.25 + 100:.3f}"
            for serial in serials:
                if written == rows:
                    return
                handle.write(f"{serial},{stamp},{value}\n")
                written += 1


def raw_copy(url: str, path: Path) -> float:
    """Seconds to COPY the file into a bare table of the same columns."""
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute("DROP TABLE IF EXISTS bench_raw_copy")
        connection.execute(
            "CREATE UNLOGGED TABLE bench_raw_copy "
            "(serial_number text, reading_date timestamptz, value numeric)"
        )
        connection.commit()
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy("COPY bench_raw_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            path.open("rb") as handle,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        connection.commit()
        elapsed = time.perf_counter() - started
        connection.execute("DROP TABLE bench_raw_copy")
        connection.commit()
    return elapsed


READING_COLUMNS = (
    "created_at, updated_at, account_id, meter_id, register_id, reading_date, value, "
    "reading_type, is_estimated, is_billing_reading, lease_id, photo_url, reader_name, notes, "
    "source, created_by, previous_value, consumption, is_rollover, flag_deviation, flag_spike, "
    "flag_drop, flag_negative"
)


def insert_floor(url: str, slug: str) -> float:
    """Seconds to INSERT the imported readings again, ready-made (dates moved 100 years on),
    into ``readings_reading``: its indexes, foreign keys and audit trigger, nothing else, in
    a transaction rolled back. No import of these rows can be faster."""
    import psycopg

    moved = READING_COLUMNS.replace("reading_date", "reading_date + interval '100 years'")
    with psycopg.connect(url) as connection:
        started = time.perf_counter()
        connection.execute(
            f"INSERT INTO readings_reading ({READING_COLUMNS}) "
            f"SELECT {moved} FROM readings_reading "
            "WHERE account_id = (SELECT id FROM metering_account WHERE slug = %s) "
            "ORDER BY register_id, reading_date",
            (slug,),
        )
        connection.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred foreign keys
        elapsed = time.perf_counter() - started
        connection.rollback()
    return elapsed


def run_import(options: argparse.Namespace, path: Path, slug: str) -> tuple[float, int, int]:
    """(seconds, peak resident memory in KiB, exit status) of ``manage.py import_readings``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": options.database_url,
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "manage.py", "import_readings", str(path), "--account", slug]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if status:
        print(child.stderr.read().decode()[-2000:])
    return elapsed, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def main() -> None:
    options = parse_options()
    loading.recreate_database(options.database_url)
    loading.configure_django(options)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from readings.models import Reading

    print(
        f"{'rows':>10} {'meters':>7} {'COPY s':>8} {'import s':>9} {'rows/s':>9} "
        f"{'ratio':>6} {'peak MiB':>9} {'INSERT s':>9} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-import-") as directory:
        for size in options.sizes:
            slug = f"bench{size}"
            meters = max(1, min(options.meters, size // options.min_per_meter))
            serials = create_meters(slug, meters)
            path = Path(directory) / f"readings-{size}.csv"
            write_file(path, serials, size)
            reference = raw_copy(options.database_url, path)
            elapsed, peak_kib, status = run_import(options, path, slug)
            stored = Reading.objects.filter(account__slug=slug).count()
            floor = insert_floor(options.database_url, slug)
            print(
                f"{size:>10,} {meters:>7,} {reference:>8.2f} {elapsed:>9.2f} "
                f"{size / elapsed:>9,.0f} {elapsed / reference:>6.1f} {peak_kib / 1024:>9.0f} "
                f"{floor:>9.2f} {floor / reference:>6.1f}"
                + ("" if status == 0 and stored == size else f"  (exit {status}, {stored} stored)")
            )


if __name__ == "__main__":
    main()
