"""Benchmark of re-deriving a register's series: PATCH /api/v1/meters/{id}/ {"multiplier": ...}.

Run from the project root; the database named by --database-url (default
metering_bench_rederive, its name must contain "bench") is dropped and recreated:

    .venv/bin/python bench/rederive.py                   # 35,000 and 350,000 readings
    .venv/bin/python bench/rederive.py --sizes 35000     # one size
    .venv/bin/python bench/rederive.py --reuse           # measure again, no reload

What it does, in order:

1. creates the database, migrates it, creates an account (UTC), a key and one meter per size,
   then loads each meter's default register with that many readings every
   ``--interval-minutes`` (15: 35,000 is a year), set-based as ``bench/readings_api.py`` does
   (its series and loading helpers are reused), with their audit events, and VACUUM ANALYZE;
2. for each size, through the API in-process (Django's test client: authentication,
   validation, the engine, serialization), ``--runs`` times: PATCH the meter's multiplier
   (2, 1, 2, ...: every reading but the first changes its consumption), with the time of its
   SQL statements by kind; then POST one reading a year before the series (its interval enters
   every later reading's baseline within the year and flags it) and DELETE it again;
3. measures its reference in the same run: the same rows written by one raw
   ``UPDATE ... FROM unnest(...)`` with psycopg, audit triggers and context on (the database
   work any re-derive of these rows must do), committed; and, for comparison, Django's
   ``bulk_update`` (``CASE WHEN id = ... THEN ...``, the engine's former write) of
   ``--bulk-update-rows`` rows, rolled back. Every timed write (API or raw) starts from a
   vacuumed table, untimed;
4. checks the stored chains against ``readings.domain.derive_series``;
5. prints a summary: time per row at each size, the ratio between the sizes (flat: linear),
   the ratio to the reference, and the goal: under 2 s for 35,000 readings through the API.

Timings are wall-clock: on a shared machine, run it twice and compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg

# The series and loading helpers of the readings benchmark, reused as they are (this
# directory is on sys.path when the script runs).
import readings_api as loading
from readings_api import ms

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/metering_bench_rederive"
GOAL_SECONDS = 2.0
GOAL_READINGS = 35_000
PRODUCT_TIME_LIMIT = 30.0  # REQUEST_TIME_LIMIT_SECONDS's default
RAW_ACTOR = "bench-raw"


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--sizes",
        default="35000,350000",
        help="readings of each measured register, comma-separated (35000,350000)",
    )
    parser.add_argument("--interval-minutes", type=int, default=15, help="between readings")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each measure (3)")
    parser.add_argument(
        "--bulk-update-rows",
        default="1000,4000",
        help="rows written with Django's bulk_update for comparison ('' to skip)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=600,
        help="the server's request time limit for the run, seconds (600; the product's default"
        " is 30, past which a request is a 503 `timeout`: the summary says which would be)",
    )
    loading.add_database_options(parser, "BENCH_REDERIVE_DATABASE_URL", DEFAULT_DATABASE_URL)
    options = parser.parse_args(argv)
    loading.check_database_name(parser, options)
    try:
        options.sizes = [int(size) for size in options.sizes.split(",")]
        options.bulk_update_rows = [
            int(rows) for rows in options.bulk_update_rows.split(",") if rows.strip()
        ]
    except ValueError:
        parser.error("--sizes and --bulk-update-rows take comma-separated integers")
    if min(options.sizes) < 2 or options.runs < 1:
        parser.error("at least 2 readings per size and 1 run")
    if options.bulk_update_rows and max(options.bulk_update_rows) >= max(options.sizes):
        parser.error("--bulk-update-rows must stay below the largest size")
    options.conn_max_age = 60  # read by loading.configure_django
    os.environ["REQUEST_TIME_LIMIT_SECONDS"] = f"{options.time_limit:g}"
    return options


# --- step 1: the data ------------------------------------------------------------------------


@dataclass
class Meter:
    meter_id: int
    register_id: int
    readings: int
    origin: dt.datetime


def timed(label: str, work) -> object:
    started = time.perf_counter()
    result = work()
    print(f"  {label:40} {time.perf_counter() - started:7.1f} s")
    return result


def prepare(options: argparse.Namespace) -> tuple[str, list[Meter]]:
    if options.reuse:
        loading.configure_django(options)
        print(f"== 1. Reusing {options.database_url}")
        return new_key(), describe()

    print(f"== 1. Database {options.database_url}")

    def create_and_migrate() -> None:
        loading.recreate_database(options.database_url)
        loading.configure_django(options)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    timed("create + migrate", create_and_migrate)
    account_id, key = timed(
        f"account, key, {len(options.sizes)} meter(s)",
        lambda: loading.create_fixture(len(options.sizes), "UTC"),
    )
    step = dt.timedelta(minutes=options.interval_minutes)
    # Every series starts at one midnight and the longest ends in the past.
    origin = (dt.datetime.now(dt.UTC) - (max(options.sizes) + 2) * step).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    for meter, size in zip(describe(), options.sizes, strict=True):
        timed(
            f"{size:,} readings (set-based)",
            lambda meter=meter, size=size: load_series(account_id, meter, size, origin, step),
        )
    timed("VACUUM ANALYZE", loading.vacuum_analyze)
    return key, describe()


def load_series(
    account_id: str, meter: Meter, readings: int, origin: dt.datetime, step: dt.timedelta
) -> None:
    """``readings`` readings of ``meter``'s default register with the chain the engine would
    store and their insert events, as ``readings_api.load_history`` loads every meter."""
    from django.db import connection, transaction

    from metering.models import Meter as MeterModel

    params = {
        "origin": origin,
        "step": step,
        "actor": loading.LOAD_ACTOR,
        "account": account_id,
        "last": readings - 1,
        "register": meter.register_id,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # no trigger, no FK check
        cursor.execute(
            loading.load_readings_sql(registers="r.id = %(register)s", order="i"), params
        )
        cursor.execute(loading.load_events_sql(readings="register_id = %(register)s"), params)
    MeterModel.objects.filter(pk=meter.meter_id).refresh_last_readings()


def describe() -> list[Meter]:
    from django.db.models import Count, Min

    from metering.models import Register

    registers = (
        Register.objects.filter(meter__account__slug="bench", is_default=True)
        .annotate(count=Count("readings"), origin=Min("readings__reading_date"))
        .order_by("meter__serial_number")
    )
    return [Meter(r.meter_id, r.pk, r.count, r.origin) for r in registers]


def new_key() -> str:
    from metering import domain, services
    from metering.models import Account

    account = Account.objects.get(slug="bench")
    _, key = services.create_api_key(account=account, name="bench", scopes=list(domain.SCOPES))
    return key


# --- step 2: through the API -----------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rows: int  # readings whose updated_at moved
    statements: int
    sql: dict[str, float]  # seconds by kind of statement
    timed_out: bool = False  # 503 `timeout`: past the server's time limit, rolled back


@dataclass
class SizeResult:
    meter: Meter
    patch: list[Run] = field(default_factory=list)
    insert: list[Run] = field(default_factory=list)
    delete: list[Run] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    reference_rows: int = 0
    fetch: float = 0.0
    derive: float = 0.0
    chain_differences: int = -1

    @property
    def patch_median(self) -> float:
        return statistics.median(run.seconds for run in self.patch)

    @property
    def reference_median(self) -> float:
        return statistics.median(self.reference)

    @property
    def rows(self) -> int:
        return self.patch[0].rows


def sql_kind(sql: str) -> str:
    text = " ".join(sql.split()).upper()
    if text.startswith('UPDATE "READINGS_READING"') and "FROM UNNEST(" in text:
        return "UPDATE FROM unnest"
    for kind, prefix in (
        (
            "SELECT series",
            'SELECT "READINGS_READING"."ID" AS "ID", "READINGS_READING"."REGISTER_ID"',
        ),
        ("INSERT readings", 'INSERT INTO "READINGS_READING"'),
        ("DELETE readings", 'DELETE FROM "READINGS_READING"'),
    ):
        if text.startswith(prefix):
            return kind
    return "other"


def vacuum_readings() -> None:
    """VACUUM the readings (untimed) before each timed write: every write then finds the
    table as autovacuum leaves it, not holding the dead versions of the previous run's rows
    (each makes the next update of the row check one more index entry)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM readings_reading")


def through_api(client, method: str, path: str, body: dict | None, wanted: int, meter: Meter):
    """One request, timed, with its SQL statements' time by kind and the rows it rewrote."""
    from django.db import connection

    from readings.models import Reading

    vacuum_readings()
    sql: dict[str, float] = defaultdict(float)
    count = 0

    def record(execute, statement, params, many, context):
        nonlocal count
        started = time.perf_counter()
        try:
            return execute(statement, params, many, context)
        finally:
            sql[sql_kind(statement)] += time.perf_counter() - started
            count += 1

    before = dt.datetime.now(dt.UTC)
    send = getattr(client, method)
    with connection.execute_wrapper(record):
        started = time.perf_counter()
        response = send(path, json.dumps(body) if body else None, content_type="application/json")
        seconds = time.perf_counter() - started
    timed_out = response.status_code == 503 and b'"timeout"' in response.content
    if response.status_code != wanted and not timed_out:
        raise SystemExit(f"{method.upper()} {path}: {response.status_code} {response.content!r}")
    rows = Reading.objects.filter(register_id=meter.register_id, updated_at__gte=before).count()
    return response, Run(seconds, rows, count, dict(sql), timed_out)


def measure_api(options: argparse.Namespace, key: str, result: SizeResult) -> None:
    from django.test import Client

    from metering.models import Meter as MeterModel

    meter = result.meter
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="localhost")
    # A first request outside the measure: the key's last_used_at, connection, caches.
    client.get(f"/api/v1/meters/{meter.meter_id}/")
    current = MeterModel.objects.get(pk=meter.meter_id).multiplier
    print(f"  -- {meter.readings:,} readings (meter {meter.meter_id})")
    for run in range(options.runs):
        multiplier = 1 if current != 1 else 2
        _, timing = through_api(
            client,
            "patch",
            f"/api/v1/meters/{meter.meter_id}/",
            {"multiplier": multiplier},
            200,
            meter,
        )
        current = multiplier
        result.patch.append(timing)
        print(f"  PATCH multiplier={multiplier} (run {run + 1})   {describe_run(timing)}")
    year_before = meter.origin - dt.timedelta(days=365)
    for run in range(options.runs):
        response, timing = through_api(
            client,
            "post",
            f"/api/v1/meters/{meter.meter_id}/readings/",
            {"reading_date": year_before.isoformat(), "value": 0},
            201,
            meter,
        )
        result.insert.append(timing)
        print(f"  POST a year before (run {run + 1})     {describe_run(timing)}")
        if timing.timed_out:
            break
        reading_id = response.json()["data"]["id"]
        _, timing = through_api(
            client,
            "delete",
            f"/api/v1/meters/{meter.meter_id}/readings/{reading_id}/",
            None,
            204,
            meter,
        )
        result.delete.append(timing)
        print(f"  DELETE it again (run {run + 1})        {describe_run(timing)}")


def describe_run(run: Run) -> str:
    if run.timed_out:
        return f"{ms(run.seconds):>10}  503 timeout: past the server's time limit, rolled back"
    per_row = f"{run.seconds / run.rows * 1e6:6.1f} µs/row" if run.rows else "           "
    sql = ", ".join(f"{kind} {ms(seconds)}" for kind, seconds in sorted(run.sql.items()))
    return (
        f"{ms(run.seconds):>10}  {run.rows:>7,} rows  {per_row}  {run.statements} statements"
        f" ({sql})"
    )


def measure_parts(result: SizeResult) -> None:
    """The series' fetch and ``derive_series`` alone: the engine's two other linear parts."""
    from metering.models import Register
    from readings import domain, services
    from readings.models import Reading

    register = Register.objects.select_related("meter__account").get(pk=result.meter.register_id)
    started = time.perf_counter()
    rows = list(
        Reading.objects.filter(register=register)
        .order_by("reading_date")
        .values_list("id", "register_id", "reading_date", "value", *services.COMPUTED_FIELDS)
    )
    result.fetch = time.perf_counter() - started
    started = time.perf_counter()
    domain.derive_series(
        [domain.Point(row[2], row[3]) for row in rows],
        factor=register.meter.multiplier * register.transformer_ratio,
        max_value=register.meter.max_value,
        thresholds=services.thresholds(register.meter.account),
    )
    result.derive = time.perf_counter() - started
    print(
        f"  parts: fetch of the series {ms(result.fetch)},"
        f" derive_series {ms(result.derive)} ({len(rows):,} points)"
    )


# --- step 3: the references ------------------------------------------------------------------

UNNEST = """
    UPDATE readings_reading SET previous_value = changed.previous_value,
        consumption = changed.consumption, is_rollover = changed.is_rollover,
        flag_deviation = changed.flag_deviation, flag_spike = changed.flag_spike,
        flag_drop = changed.flag_drop, flag_negative = changed.flag_negative, updated_at = %s
    FROM unnest(%s::bigint[], %s::numeric(20, 6)[], %s::numeric(38, 18)[], %s::boolean[],
                %s::boolean[], %s::boolean[], %s::boolean[], %s::boolean[])
        AS changed (id, previous_value, consumption, is_rollover,
                    flag_deviation, flag_spike, flag_drop, flag_negative)
    WHERE readings_reading.id = changed.id
"""


def measure_reference(options: argparse.Namespace, result: SizeResult) -> None:
    """The readings the PATCH rewrote (all but the first), written by one raw UPDATE FROM
    unnest: their consumption tripled, then back as stored, each committed and timed."""
    metadata = json.dumps({"actor": RAW_ACTOR, "source": "API"})
    with psycopg.connect(options.database_url, autocommit=True) as connection:
        stored = connection.execute(
            "SELECT id, previous_value, consumption, is_rollover, flag_deviation, flag_spike,"
            " flag_drop, flag_negative FROM readings_reading"
            " WHERE register_id = %s AND consumption IS NOT NULL ORDER BY reading_date",
            [result.meter.register_id],
        ).fetchall()
        tripled = [(row[0], row[1], row[2] * 3, *row[3:]) for row in stored]
        result.reference_rows = len(stored)
        for run in range(options.runs):
            for rows in (tripled, stored):
                columns = [list(column) for column in zip(*rows, strict=True)]
                connection.execute("VACUUM readings_reading")  # as before the API's writes
                started = time.perf_counter()
                with connection.transaction(), connection.cursor() as cursor:
                    loading.set_audit_context(cursor, metadata)
                    cursor.execute(UNNEST, [dt.datetime.now(dt.UTC), *columns])
                    assert cursor.rowcount == len(rows)
                result.reference.append(time.perf_counter() - started)
            print(
                f"  reference: raw UPDATE FROM unnest of {len(stored):,} rows (run {run + 1})"
                f"  {ms(result.reference[-2])}, {ms(result.reference[-1])}"
            )


@dataclass
class BulkUpdateResult:
    rows: int
    bulk_update: float
    write_rows: float


def measure_bulk_update(options: argparse.Namespace, meter: Meter) -> list[BulkUpdateResult]:
    """Django's bulk_update against ``write_rows`` on the same rows, rolled back."""
    from django.db import transaction
    from django.utils import timezone

    from readings import services
    from readings.models import Reading

    results = []
    for count in options.bulk_update_rows:
        vacuum_readings()
        readings = list(
            Reading.objects.filter(register_id=meter.register_id, consumption__isnull=False)
            .order_by("reading_date")
            .only("id", *services.COMPUTED_FIELDS)[:count]
        )
        now = timezone.now()
        for reading in readings:
            reading.consumption *= 3
            reading.updated_at = now
        fields = [*services.COMPUTED_FIELDS, "updated_at"]
        rows = [(r.pk, *(getattr(r, name) for name in services.COMPUTED_FIELDS)) for r in readings]
        timings = []
        for write in ("bulk_update", "write_rows"):
            with transaction.atomic():
                started = time.perf_counter()
                if write == "bulk_update":
                    Reading.objects.bulk_update(readings, fields)
                else:
                    services.write_rows(
                        model=Reading, fields=services.COMPUTED_FIELDS, rows=rows, updated_at=now
                    )
                timings.append(time.perf_counter() - started)
                transaction.set_rollback(True)
        results.append(BulkUpdateResult(count, *timings))
        print(
            f"  {count:>7,} rows: bulk_update (CASE WHEN) {ms(timings[0]):>10}"
            f" ({timings[0] / count * 1e6:7.1f} µs/row); write_rows {ms(timings[1]):>9}"
            f" ({timings[1] / count * 1e6:5.1f} µs/row)"
        )
    return results


# --- step 5: the summary ---------------------------------------------------------------------


def summary(
    options: argparse.Namespace,
    machine: str,
    load: list[str],
    results: list[SizeResult],
    bulk: list[BulkUpdateResult],
) -> bool:
    print("\n== 5. Summary")
    print(f"  machine: {machine}; load average {load[0]} before, {load[1]} after")
    print(
        "  | readings | rows written | PATCH median | µs/row | reference | µs/row | ratio |"
        " POST a year before | DELETE |"
    )

    def median_of(runs: list[Run]) -> str:
        if not runs or any(run.timed_out for run in runs):
            return "503 timeout" if runs else "-"
        return f"{statistics.median(run.seconds for run in runs):.2f} s"

    for result in results:
        reference = result.reference_median
        inserted = f" ({result.insert[0].rows:,} rows)" if not result.insert[0].timed_out else ""
        if any(run.timed_out for run in result.patch):
            patch = "503 timeout | -"
            ratio = "-"
        else:
            patch = f"{result.patch_median:.2f} s | {result.patch_median / result.rows * 1e6:.1f}"
            ratio = f"{result.patch_median / reference:.1f}"
        print(
            f"  | {result.meter.readings:,} | {result.rows:,} | {patch} | {reference:.2f} s"
            f" | {reference / result.reference_rows * 1e6:.1f} | {ratio}"
            f" | {median_of(result.insert)}{inserted} | {median_of(result.delete)} |"
        )
    slow = [
        (result.meter.readings, label, run.seconds)
        for result in results
        for label, runs in (
            ("PATCH", result.patch),
            ("POST", result.insert),
            ("DELETE", result.delete),
        )
        for run in runs
        if run.seconds > PRODUCT_TIME_LIMIT and not run.timed_out
    ]
    for readings, label, seconds in slow:
        print(
            f"  {label} on {readings:,} readings took {seconds:.1f} s: past the product's default"
            f" limit of {PRODUCT_TIME_LIMIT:g} s (REQUEST_TIME_LIMIT_SECONDS) it is a 503 `timeout`"
        )
    if len(results) > 1 and not any(r.timed_out for result in results for r in result.patch):
        small, large = results[0], results[-1]
        flat = (large.patch_median / large.rows) / (small.patch_median / small.rows)
        print(
            f"  time per row, {large.meter.readings:,} vs {small.meter.readings:,} readings:"
            f" x{flat:.2f} (1.0 is linear)"
        )
    for entry in bulk:
        print(
            f"  bulk_update of {entry.rows:,} rows: {entry.bulk_update:.2f} s"
            f" ({entry.bulk_update / entry.rows * 1e6:.0f} µs/row) against"
            f" write_rows {entry.write_rows * 1000:.0f} ms"
            f" ({entry.write_rows / entry.rows * 1e6:.1f} µs/row)"
        )
    chains = all(result.chain_differences == 0 for result in results)
    print(f"  chains against readings.domain: {'all equal' if chains else 'DIFFERENCES'}")
    goal = [result for result in results if result.meter.readings == GOAL_READINGS]
    met = chains
    if goal and any(run.timed_out for run in goal[0].patch):
        met = False
        print(f"  goal: PATCH multiplier on {GOAL_READINGS:,} readings: 503 timeout, NOT met")
    elif goal:
        seconds = goal[0].patch_median
        met = met and seconds < GOAL_SECONDS
        verdict = "met" if seconds < GOAL_SECONDS else "NOT met"
        print(
            f"  goal: PATCH multiplier on {GOAL_READINGS:,} readings through the API under"
            f" {GOAL_SECONDS:.0f} s: {seconds:.2f} s, {verdict}"
        )
    else:
        print(f"  goal: not measured (no size of {GOAL_READINGS:,} readings)")
    return met


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    key, meters = prepare(options)
    if not options.reuse and [m.readings for m in meters] != options.sizes:
        raise SystemExit(f"loaded {[m.readings for m in meters]}, wanted {options.sizes}")
    load = [loading.load_average()]
    results = [SizeResult(meter) for meter in meters]
    print("\n== 2. Through the API (in-process)")
    for result in results:
        measure_api(options, key, result)
        measure_parts(result)
    print("\n== 3. References (raw psycopg, same rows)")
    for result in results:
        measure_reference(options, result)
    bulk = []
    if options.bulk_update_rows:
        print("\n   For comparison: Django's bulk_update, the former write (rolled back)")
        bulk = measure_bulk_update(options, meters[-1])
    load.append(loading.load_average())
    print("\n== 4. Checks")
    for result in results:
        series = loading.Series(result.meter.meter_id, result.meter.register_id, 0)
        result.chain_differences = loading.check_chain(series)
        print(
            f"  {result.meter.readings:,} readings: {result.chain_differences} difference(s)"
            " from readings.domain"
        )
    met = summary(options, loading.machine(), load, results, bulk)
    return 0 if met else 1


if __name__ == "__main__":
    loading.run(main)
