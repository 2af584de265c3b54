"""Benchmark of the readings write path: POST .../readings/ and POST .../readings/batch/.

Run from the project root; the database named by --database-url (default metering_bench, its
name must contain "bench") is dropped and recreated:

    .venv/bin/python bench/readings_api.py                 # 1,000 meters × 1,000 readings
    .venv/bin/python bench/readings_api.py --meters 50     # a quick run

What it does, in order:

1. creates the database, migrates it, creates an account, a key with every scope and
   ``--meters`` meters through the product's services, then loads ``--readings`` hourly
   readings per meter set-based (``INSERT ... SELECT generate_series``) with the chain the
   engine would store (previous_value, consumption; a smooth series raises no flag) and their
   audit events, and VACUUM ANALYZE;
2. serves the product with gunicorn (``config.wsgi``, DEBUG off, rate limits raised);
3. measures (a) the latency of single-reading POSTs appending to a meter of ``--readings``
   readings, (b) the throughput of batches of ``--batch-size`` readings, each appending to
   another meter, with one client per gunicorn worker;
4. measures its reference in the same run: the same rows inserted into the same table with
   psycopg, one transaction per batch (executemany with the audit triggers and context, as the
   engine's INSERT runs; without context; without triggers; one multi-row INSERT; COPY);
5. prints a summary against the goal (≥ 5,000 readings/s through the batch endpoint);
6. runs requests in-process to split their time by phase and SQL statement, profiles a batch
   with cProfile, and times the engine with and without the audit triggers.

Timings are wall-clock: on a shared machine, run it twice and compare.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import functools
import http.client
import json
import os
import platform
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/metering_bench"
GOAL_READINGS_PER_SECOND = 5_000
LOAD_ACTOR = "bench-load"
RAW_ACTOR = "bench-raw"
RUNS_PER_LOAD = 3  # runs a loaded database is good for: this one, then two with --reuse


# --- options ---------------------------------------------------------------------------------


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--meters", type=int, default=1000, help="meters (default 1000)")
    parser.add_argument("--readings", type=int, default=1000, help="readings per meter")
    parser.add_argument("--single", type=int, default=300, help="timed single POSTs")
    parser.add_argument("--warmup", type=int, default=20, help="untimed POSTs first")
    parser.add_argument("--batches", type=int, default=40, help="timed batch POSTs")
    parser.add_argument("--batch-size", type=int, default=500, help="readings per batch")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="gunicorn worker counts to measure batches with, one client per worker (1,2)",
    )
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (sync)")
    parser.add_argument(
        "--conn-max-age", type=int, default=60, help="DATABASE_CONN_MAX_AGE of the server (60)"
    )
    parser.add_argument("--port", type=int, default=8051)
    # UTC keeps the generated series and its timings independent of the date.
    parser.add_argument("--timezone", default="UTC", help="the account's time zone (UTC)")
    parser.add_argument("--interval-minutes", type=int, default=60, help="between readings")
    parser.add_argument("--profile-batches", type=int, default=5, help="in-process batches")
    parser.add_argument("--no-profile", action="store_true", help="skip step 6")
    parser.add_argument("--load-only", action="store_true", help="stop after step 1")
    add_database_options(parser, "BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    options = parser.parse_args(argv)
    options.workers = [int(w) for w in options.workers.split(",") if w.strip()]
    if options.meters < 2 or options.readings < 2 or options.batch_size < 1:
        parser.error("at least 2 meters, 2 readings per meter and 1 reading per batch")
    check_database_name(parser, options)
    return options


def add_database_options(parser: argparse.ArgumentParser, variable: str, default: str) -> None:
    """``--database-url`` (the environment's ``variable``, else ``default``) and ``--reuse``."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get(variable, default),
        help=f"the bench database, dropped and recreated (env {variable})",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database of a previous run (no load)"
    )


def check_database_name(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    """Refuse a database whose name lacks "bench": it is dropped."""
    name = urlsplit(options.database_url).path.lstrip("/")
    if "bench" not in name:
        parser.error(f"refusing to drop {name!r}: the database name must contain 'bench'")


def database_named(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def configure_django(options: argparse.Namespace) -> None:
    """The environment the server gets too: local settings, DEBUG off, no rate limit."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DJANGO_DEBUG="false",
        DATABASE_URL=options.database_url,
        DATABASE_CONN_MAX_AGE=str(options.conn_max_age),
        API_RATE_LIMIT_ACCOUNT_KEY="10000000/min",
        DJANGO_LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(ROOT))
    # WhiteNoise looks for collected static files, which the API does not need (as in tests).
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    import django

    django.setup()


# --- the series ------------------------------------------------------------------------------
# Reading i of a register (i = 0, 1, ...) is at origin + i × interval with the value below, in
# thousandths: 1.5 a step plus a little noise, so consumption stays within 1.401..1.599 and no
# anomaly flag is raised. The SQL of the load and the Python of the appends compute the same.


def value_sql(i: str) -> str:
    """``index_value`` in SQL, for reading number ``i`` of register ``r`` (%% for psycopg)."""
    return f"(({i} * 1500 + ({i} * 7919 + r.id) %% 100) / 1000.0)::numeric(20, 6)"


def index_value(register_id: int, i: int) -> Decimal:
    return Decimal(i * 1500 + (i * 7919 + register_id) % 100).scaleb(-3)


@dataclass
class Series:
    meter_id: int
    register_id: int
    count: int  # readings stored: the next one appended is number ``count``


@dataclass
class Chunk:
    """Readings ``start``..``start + size - 1`` of one register."""

    series: Series
    start: int
    size: int

    def rows(self, origin: dt.datetime, interval: dt.timedelta) -> list[tuple]:
        """(reading_date, value, previous_value) of each reading."""
        register_id = self.series.register_id
        return [
            (origin + i * interval, index_value(register_id, i), index_value(register_id, i - 1))
            for i in range(self.start, self.start + self.size)
        ]

    def body(self, origin: dt.datetime, interval: dt.timedelta) -> list[dict]:
        return [
            {"reading_date": date.isoformat(), "value": str(value), "reading_type": "AUTOMATIC"}
            for date, value, _ in self.rows(origin, interval)
        ]


class NoRoom(Exception):
    """The next readings of a meter would be in the future."""


class Allocator:
    """Hands out the next readings of the meters in turn; the first is kept for single POSTs.

    The meters holding the fewest readings come first, so that a run on a reused database
    appends to meters as full as in a fresh one.
    """

    def __init__(self, series: list[Series], origin: dt.datetime, interval: dt.timedelta):
        self.series = sorted(series, key=lambda one: (one.count, one.meter_id))
        self.origin = origin
        self.interval = interval
        self.turn = 0

    def single(self, size: int) -> Chunk:
        return self._take(self.series[0], size)

    def batch(self, size: int) -> Chunk:
        series = self.series[1 + self.turn % (len(self.series) - 1)]
        self.turn += 1
        return self._take(series, size)

    def _take(self, series: Series, size: int) -> Chunk:
        last = self.origin + (series.count + size - 1) * self.interval
        if last > dt.datetime.now(dt.UTC):
            raise NoRoom("This database has no room left for a run: run without --reuse.")
        chunk = Chunk(series, series.count, size)
        series.count += size
        return chunk


def appends_needed(options: argparse.Namespace) -> int:
    """The most readings any meter gets after its history, over every step of the run."""
    # In-process: a warm-up, the measured batches, one under cProfile, the engine calls.
    engine = ENGINE_ROUNDS * len(AUDIT_MODES)
    profile = 0 if options.no_profile else 1 + options.profile_batches + 1 + engine
    api = options.batches * len(options.workers) + sum(options.workers)
    chunks = api + options.batches * len(RAW_VARIANTS) + profile
    per_meter = -(-chunks // (options.meters - 1)) * options.batch_size
    # Meter 0: the single POSTs, then 1 + 20 in-process ones.
    return max(per_meter, options.warmup + options.single + 21)


# --- step 1: the database --------------------------------------------------------------------


def recreate_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(database_named(url, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def create_fixture(meters: int, time_zone: str) -> tuple[str, str]:
    """An account, a key with every scope and ``meters`` meters; (account id, clear key)."""
    from metering import domain, services

    account = services.create_account(name="Bench", slug="bench", timezone=time_zone)
    _, key = services.create_api_key(account=account, name="bench", scopes=list(domain.SCOPES))
    for number in range(meters):
        services.create_meter(
            account=account,
            values={
                "name": f"Meter {number:04d}",
                "serial_number": f"BENCH-{number:05d}",
                "meter_type": "ELECTRICITY",
            },
        )
    return str(account.pk), key


# The columns of readings_reading that a load fills, in the order of ``load_readings_sql``.
LOAD_COLUMNS = (
    "created_at, updated_at, reading_date, value, reading_type, is_estimated, "
    "is_billing_reading, photo_url, reader_name, notes, source, created_by, "
    "previous_value, consumption, is_rollover, "
    "flag_deviation, flag_spike, flag_drop, flag_negative, "
    "account_id, meter_id, register_id, lease_id"
)


def load_readings_sql(*, registers: str, order: str) -> str:
    """INSERT ... SELECT of readings 0 to %(last)s of the registers ``r`` meeting ``registers``
    (SQL), in ``order``: reading i at %(origin)s + i × %(step)s, the value of ``value_sql``,
    the chain the engine would store, no flag (a smooth series raises none)."""
    return f"""
        INSERT INTO readings_reading ({LOAD_COLUMNS})
        SELECT now(), now(), %(origin)s + i * %(step)s, value, 'AUTOMATIC', false,
               false, '', '', '', 'IMPORT', %(actor)s,
               previous_value, value - previous_value, false,
               false, false, false, false,
               %(account)s, r.meter_id, r.id, NULL
        FROM generate_series(0::bigint, %(last)s) AS i  -- i * 7919 passes 2^31
        CROSS JOIN metering_register r
        CROSS JOIN LATERAL (
            SELECT {value_sql("i")} AS value,
                   CASE WHEN i > 0 THEN {value_sql("(i - 1)")} END AS previous_value
        ) AS v
        WHERE {registers}
        ORDER BY {order}
    """


def load_events_sql(*, readings: str) -> str:
    """INSERT ... SELECT of the insert events (no context) of the readings meeting ``readings``
    (SQL): what the audit trigger, off during a load, would have written."""
    return f"""
        INSERT INTO readings_readingevent (
            {LOAD_COLUMNS}, id, pgh_created_at, pgh_label, pgh_obj_id, pgh_context_id
        )
        SELECT {LOAD_COLUMNS}, id, now(), 'insert', id, NULL
        FROM readings_reading
        WHERE {readings}
        ORDER BY id
    """


def set_audit_context(cursor: psycopg.Cursor, metadata: str) -> None:
    """What ``pghistory.context`` sets before each statement, for a raw write's transaction."""
    cursor.execute(
        "SELECT set_config('pghistory.context_id', gen_random_uuid()::text,"
        " true), set_config('pghistory.context_metadata', %s, true)",
        [metadata],
    )


def load_history(account_id: str, readings: int, origin: dt.datetime, step: dt.timedelta) -> None:
    """``readings`` readings per default register, chain included, set-based.

    Rows go in in time order (each hour, every meter), as gateways would send them. The audit
    history gets what its row trigger would have written (an insert event per reading, no
    context), in one INSERT ... SELECT too: a per-row trigger would take most of the time.
    """
    from django.db import connection, transaction

    readings_sql = load_readings_sql(registers="r.is_default", order="i, r.id")
    events_sql = load_events_sql(readings="created_by = %(actor)s")
    params = {
        "origin": origin,
        "step": step,
        "actor": LOAD_ACTOR,
        "account": account_id,
        "last": readings - 1,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        # As pg_restore loads data: no trigger (neither the audit's nor the foreign keys'
        # checks: the rows reference the registers just read); the indexes, but the primary
        # keys, dropped then built again; room to sort. One transaction: an interrupted load
        # leaves the schema as it was.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cursor.execute(
            """
            SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', conrelid::regclass, conname),
                   format('ALTER TABLE %I ADD CONSTRAINT %I %s', conrelid::regclass, conname,
                          pg_get_constraintdef(oid))
            FROM pg_constraint
            WHERE conrelid IN ('readings_reading'::regclass, 'readings_readingevent'::regclass)
              AND contype = 'u'
            UNION ALL
            SELECT format('DROP INDEX %I', indexname), indexdef
            FROM pg_indexes
            WHERE tablename IN ('readings_reading', 'readings_readingevent')
              AND indexname NOT IN (SELECT conname FROM pg_constraint)
            """
        )
        indexes = cursor.fetchall()
        for drop, _ in indexes:
            cursor.execute(drop)
        cursor.execute(readings_sql, params)
        cursor.execute(events_sql, params)
        for _, create in indexes:
            cursor.execute(create)
    from metering.models import Meter

    Meter.objects.filter(account_id=account_id).refresh_last_readings()


def load_daily_readings(
    *, account_id: str, place_id: int, origin: dt.datetime, zone: str, days: int, daily: str
) -> None:
    """``days`` daily readings on the default register of every meter of a place, from the
    local time ``origin`` (naive) in ``zone``, rising ``daily`` a day, set-based with the chain
    the engine would store (no flag: the consumption is constant)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            """
            INSERT INTO readings_reading (
                created_at, updated_at, reading_date, value, reading_type, is_estimated,
                is_billing_reading, photo_url, reader_name, notes, source, created_by,
                previous_value, consumption, is_rollover,
                flag_deviation, flag_spike, flag_drop, flag_negative,
                account_id, meter_id, register_id, lease_id)
            SELECT now(), now(),
                (((%(origin)s::timestamp + i * interval '1 day') AT TIME ZONE %(zone)s)),
                i * %(daily)s::numeric, 'AUTOMATIC', false, false, '', '', '', 'IMPORT',
                %(actor)s,
                CASE WHEN i > 0 THEN (i - 1) * %(daily)s::numeric END,
                CASE WHEN i > 0 THEN %(daily)s::numeric END, false,
                false, false, false, false,
                %(account)s, r.meter_id, r.id, NULL
            FROM generate_series(0, %(last)s) AS i
            CROSS JOIN metering_register r
            JOIN metering_meter m ON m.id = r.meter_id
            WHERE r.is_default AND m.place_id = %(place)s
            ORDER BY i, r.id
            """,
            {
                "origin": origin,
                "zone": zone,
                "daily": daily,
                "actor": LOAD_ACTOR,
                "account": account_id,
                "last": days - 1,
                "place": place_id,
            },
        )


def vacuum_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("readings_reading", "readings_readingevent", "metering_meter"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def read_series(account_id: str) -> tuple[list[Series], dt.datetime]:
    """Every meter's default register with its number of readings, and the series' origin."""
    from django.db.models import Count, Min

    from metering.models import Register
    from readings.models import Reading

    registers = (
        Register.objects.filter(meter__account_id=account_id, is_default=True)
        .annotate(count=Count("readings"))
        .order_by("meter_id")
    )
    series = [Series(r.meter_id, r.pk, r.count) for r in registers]
    origin = Reading.objects.filter(account_id=account_id).aggregate(o=Min("reading_date"))["o"]
    return series, origin


def check_chain(series: Series) -> int:
    """How many stored readings of ``series`` differ from what the engine derives (0)."""
    from metering.models import Register
    from readings import domain, services
    from readings.models import Reading

    register = Register.objects.select_related("meter__account").get(pk=series.register_id)
    rows = list(Reading.objects.filter(register=register).order_by("reading_date"))
    derived = domain.derive_series(
        [domain.Point(row.reading_date, row.value) for row in rows],
        factor=register.meter.multiplier * register.transformer_ratio,
        max_value=register.meter.max_value,
        thresholds=services.thresholds(register.meter.account),
    )
    return sum(
        (row.previous_value, row.consumption, row.is_rollover, frozenset(row.anomaly_flags))
        != (result.previous_value, result.consumption, result.is_rollover, result.flags)
        for row, result in zip(rows, derived, strict=True)
    )


# --- step 2: the server ----------------------------------------------------------------------


@contextlib.contextmanager
def gunicorn(options: argparse.Namespace, workers: int, key: str) -> Iterator[None]:
    """gunicorn serving ``config.wsgi`` until the block ends, whatever ends it."""
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{options.port}",
        "--workers",
        str(workers),
        "--worker-class",
        options.worker_class,
        "--log-level",
        "warning",
        "--timeout",
        "120",
    ]
    log_path = Path(tempfile.gettempdir()) / f"bench-gunicorn-{os.getpid()}.log"
    with log_path.open("wb") as log:
        # Its own session: a Ctrl-C reaches this script only, which then stops the server.
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            wait_until_served(options.port, key, server)
            yield
        except Exception:
            stop(server)
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            print("  gunicorn's log ends with:", *tail, sep="\n    ")
            raise
        finally:
            stop(server)
            log_path.unlink()


def wait_until_served(port: int, key: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {server.returncode}")
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/v1/account/", headers=auth_headers(key))
            status = connection.getresponse().status
            connection.close()
            if status == 200:
                return
            raise RuntimeError(f"GET /api/v1/account/ answered {status}")
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer within a minute")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- step 3: the client ----------------------------------------------------------------------


def auth_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Accept": "application/json"}


class ApiClient:
    """One persistent HTTP connection, reopened only when the server closes it."""

    def __init__(self, port: int, key: str):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {
            **auth_headers(key),
            "Content-Type": "application/json",
            "Connection": "keep-alive",
        }
        self.requests = 0
        self.closed_by_server = 0

    def post(self, path: str, body: bytes) -> tuple[float, int, bytes]:
        """(seconds, status, body) of one POST."""
        start = time.perf_counter()
        self.connection.request("POST", path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        content = response.read()
        elapsed = time.perf_counter() - start
        self.requests += 1
        self.closed_by_server += response.will_close
        return elapsed, response.status, content

    def close(self) -> None:
        self.connection.close()


def expect(status: int, content: bytes, wanted: int, accepted: int | None = None) -> None:
    if status != wanted:
        raise RuntimeError(f"expected {wanted}, got {status}: {content[:500]!r}")
    if accepted is not None and (data := json.loads(content)["data"])["accepted"] != accepted:
        raise RuntimeError(f"expected {accepted} accepted readings: {data['errors'][:3]}")


@dataclass
class SingleResult:
    latencies: list[float]
    reconnects: int


def measure_single(options, key, chunk: Chunk, origin, step) -> SingleResult:
    path = f"/api/v1/meters/{chunk.series.meter_id}/readings/"
    bodies = [json.dumps(item).encode() for item in chunk.body(origin, step)]
    client = ApiClient(options.port, key)
    try:
        latencies = []
        for number, body in enumerate(bodies):
            elapsed, status, content = client.post(path, body)
            expect(status, content, 201)
            if number >= options.warmup:
                latencies.append(elapsed)
        return SingleResult(latencies, client.closed_by_server)
    finally:
        client.close()


@dataclass
class BatchResult:
    workers: int
    readings: int
    wall: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.readings / self.wall


def measure_batches(options, key, workers, chunks: list[Chunk], origin, step) -> BatchResult:
    """``workers`` clients at once, each sending its share of ``chunks`` one after the other."""
    requests = [
        (
            f"/api/v1/meters/{chunk.series.meter_id}/readings/batch/",
            json.dumps({"readings": chunk.body(origin, step)}).encode(),
            chunk.size,
        )
        for chunk in chunks
    ]
    # One untimed batch per client first (connections, caches), on the first chunks.
    warmups, requests = requests[:workers], requests[workers:]
    latencies: list[float] = []
    failures: list[BaseException] = []

    def run(share):
        client = ApiClient(options.port, key)
        try:
            for path, body, size in share:
                elapsed, status, content = client.post(path, body)
                expect(status, content, 201, accepted=size)
                latencies.append(elapsed)
        except BaseException as exc:
            failures.append(exc)
        finally:
            client.close()

    def in_parallel(shares):
        threads = [threading.Thread(target=run, args=(share,), daemon=True) for share in shares]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]

    in_parallel([[request] for request in warmups])
    latencies.clear()
    start = time.perf_counter()
    in_parallel([requests[client::workers] for client in range(workers)])
    wall = time.perf_counter() - start
    return BatchResult(workers, sum(size for _, _, size in requests), wall, latencies)


# --- step 4: the reference -------------------------------------------------------------------

RAW_COLUMNS = (
    "created_at, updated_at, reading_date, value, reading_type, is_estimated, "
    "is_billing_reading, photo_url, reader_name, notes, source, created_by, previous_value, "
    "consumption, is_rollover, flag_deviation, flag_spike, flag_drop, flag_negative, "
    "account_id, meter_id, register_id, lease_id"
)
ROW = "(" + ", ".join(["%s"] * 23) + ")"


@dataclass(frozen=True)
class RawVariant:
    label: str
    method: str  # executemany, values (one multi-row INSERT ... RETURNING id) or copy
    triggers: bool = True
    context: bool = True  # pghistory's context set first, as the engine's transaction does


RAW_VARIANTS = (
    RawVariant("executemany, audit triggers + context [reference]", "executemany"),
    RawVariant("executemany, audit triggers, no context", "executemany", context=False),
    RawVariant("executemany, triggers disabled", "executemany", triggers=False, context=False),
    RawVariant("multi-row INSERT ... RETURNING id (as bulk_create)", "values"),
    RawVariant("COPY, audit triggers + context", "copy"),
)


@dataclass
class RawResult:
    variant: RawVariant
    readings: int
    wall: float

    @property
    def per_second(self) -> float:
        return self.readings / self.wall


def measure_raw(url: str, account_id: str, chunks: list[Chunk], origin, step, variant) -> float:
    """Seconds to insert ``chunks``: one transaction per batch, the rows built beforehand."""
    now = dt.datetime.now(dt.UTC)
    batches = []
    for chunk in chunks:
        series = chunk.series
        rows = [
            (
                *(now, now, date, value, "AUTOMATIC", False, False, "", "", "", "API"),
                *(RAW_ACTOR, previous, value - previous, False, False, False, False, False),
                *(account_id, series.meter_id, series.register_id, None),
            )
            for date, value, previous in chunk.rows(origin, step)
        ]
        batches.append(rows)
    single = f"INSERT INTO readings_reading ({RAW_COLUMNS}) VALUES {ROW}"
    metadata = json.dumps({"actor": RAW_ACTOR, "source": "API"})
    with psycopg.connect(url) as connection:
        if not variant.triggers:
            connection.execute("ALTER TABLE readings_reading DISABLE TRIGGER USER")
            connection.commit()
        try:
            start = time.perf_counter()
            for rows in batches:
                with connection.transaction(), connection.cursor() as cursor:
                    if variant.context:
                        set_audit_context(cursor, metadata)
                    if variant.method == "executemany":
                        cursor.executemany(single, rows)
                    elif variant.method == "values":
                        values = ", ".join([ROW] * len(rows))
                        sql = f"INSERT INTO readings_reading ({RAW_COLUMNS}) VALUES {values}"
                        cursor.execute(f"{sql} RETURNING id", [v for row in rows for v in row])
                        cursor.fetchall()
                    else:
                        with cursor.copy(
                            f"COPY readings_reading ({RAW_COLUMNS}) FROM STDIN"
                        ) as copy:
                            for row in rows:
                                copy.write_row(row)
            return time.perf_counter() - start
        finally:
            if not variant.triggers:
                connection.execute("ALTER TABLE readings_reading ENABLE TRIGGER USER")
                connection.commit()


# --- step 6: the profile ---------------------------------------------------------------------


class PhaseClock:
    """Wall-clock time spent in chosen functions, by label, patched in this process only."""

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)
        self.sql: dict[str, list[float]] = defaultdict(list)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner, name: str, label: str) -> None:
        """Time calls of ``owner.name`` (a function, method or property) under ``label``."""
        own = name in vars(owner)
        original = vars(owner)[name] if own else getattr(owner, name)
        function = original.fget if isinstance(original, property) else original

        @functools.wraps(function)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.totals[label] += time.perf_counter() - start

        setattr(owner, name, property(timed) if isinstance(original, property) else timed)
        self._undo.append(
            (lambda: setattr(owner, name, original)) if own else (lambda: delattr(owner, name))
        )

    def record_sql(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.sql[sql_label(sql)].append(time.perf_counter() - start)

    def reset(self) -> None:
        self.totals.clear()
        self.sql.clear()

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


SQL_LABELS = (
    ("FOR NO KEY UPDATE", "lock the meter (SELECT ... FOR NO KEY UPDATE)"),
    ('INSERT INTO "readings_reading"', "INSERT the readings (+ audit triggers)"),
    ('UPDATE "metering_meter"', "refresh last_reading_value/_at (UPDATE meter)"),
    ('"metering_apikey"', "authenticate the key"),
    ('FROM "metering_register"', "load the meter's registers"),
    ('"readings_reading"."reading_date" IN', "find duplicates of stored readings"),
    ('FROM "readings_reading"', "load the series window"),
    ('FROM "metering_meter"', "look the meter up (path)"),
)


def sql_label(sql: str) -> str:
    # pghistory.context prepends a set_config() to each statement: label what follows it.
    statement = sql.split("; ", 1)[1] if sql.startswith("SELECT set_config") else sql
    for needle, label in SQL_LABELS:
        if needle in statement:
            return label
    return statement[:60]


PHASES = (
    ("request", "whole request (test client, in-process)"),
    ("initial", "  authenticate, throttle, look the meter up"),
    ("parse", "  parse the JSON body"),
    ("validate", "  validate items (ReadingSerializer.run_validation)"),
    ("engine", "  engine: services.create_readings"),
    ("lock", "    lock the meter"),
    ("rebuild", "    _rebuild: load window, derive, write"),
    ("derive", "      domain.derive_series"),
    ("bulk_create", "      bulk_create (build + INSERT)"),
    ("refresh", "    refresh_last_readings"),
    ("commit", "    COMMIT (deferred foreign-key checks, WAL flush)"),
    ("represent", "  serialize the response (ReadingSerializer)"),
    ("render", "  render JSON (JSONRenderer)"),
    ("fetch", "  (across the above) ORM reads: queries + instances"),
    ("init", "  (across the above) Reading.__init__, new and loaded"),
)


def instrument(clock: PhaseClock) -> None:
    from django.db import connection
    from django.db.models.query import QuerySet
    from rest_framework.parsers import JSONParser
    from rest_framework.renderers import JSONRenderer
    from rest_framework.serializers import ListSerializer, Serializer

    from metering.models import MeterQuerySet
    from readings import domain, services
    from readings.api import serializers, views
    from readings.models import Reading

    clock.wrap(views.MeterReadingViewSet, "initial", "initial")
    clock.wrap(JSONParser, "parse", "parse")
    clock.wrap(serializers.ReadingSerializer, "run_validation", "validate")
    clock.wrap(services, "create_readings", "engine")
    clock.wrap(services, "_lock_meter", "lock")
    clock.wrap(services, "_rebuild", "rebuild")
    clock.wrap(domain, "derive_series", "derive")
    clock.wrap(QuerySet, "bulk_create", "bulk_create")
    clock.wrap(QuerySet, "_fetch_all", "fetch")
    clock.wrap(Reading, "__init__", "init")
    clock.wrap(MeterQuerySet, "refresh_last_readings", "refresh")
    clock.wrap(connection, "_commit", "commit")
    # A batch's response goes through ListSerializer, a single reading's through Serializer.
    clock.wrap(ListSerializer, "data", "represent")
    clock.wrap(Serializer, "data", "represent")
    clock.wrap(JSONRenderer, "render", "render")


@dataclass
class Breakdown:
    """Phases and SQL statements of in-process requests, one dict per request."""

    phases: list[dict[str, float]] = field(default_factory=list)
    sql: list[dict[str, list[float]]] = field(default_factory=list)


ENGINE_ROUNDS = 5
AUDIT_MODES = {
    "shipped": "statement-level, as shipped (pghistory.Statement)",
    "row": "row-level (pghistory's default), what-if",
    "none": "none (DISABLE TRIGGER USER)",
}


@contextlib.contextmanager
def audit_triggers(mode: str) -> Iterator[None]:
    """Reading inserts audited as shipped, by a row-level trigger, or not at all.

    The row-level trigger is the one pghistory builds by default; it is installed for the
    block only and the shipped (statement-level) one disabled meanwhile.
    """
    import pgtrigger
    from django.apps import apps
    from django.db import connection
    from pghistory.trigger import Event

    from readings.models import Reading

    row_level = Event(
        name="bench_row_insert",
        operation=pgtrigger.Insert,
        label="insert",
        event_model=apps.get_model("readings", "ReadingEvent"),
        level=pgtrigger.Row,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'readings_reading'::regclass"
            " AND tgname LIKE 'pgtrigger_insert_insert_%'"
        )
        (shipped,) = cursor.fetchone()
        if mode == "none":
            cursor.execute("ALTER TABLE readings_reading DISABLE TRIGGER USER")
        elif mode == "row":
            cursor.execute(f"ALTER TABLE readings_reading DISABLE TRIGGER {shipped}")
            row_level.install(Reading)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if mode == "row":
                row_level.uninstall(Reading)
            cursor.execute("ALTER TABLE readings_reading ENABLE TRIGGER USER")


def profile(options, key, allocator: Allocator, origin, step) -> dict:
    """In-process requests: breakdowns by phase and SQL statement, a cProfile of a batch, the
    engine with and without the audit triggers, and the cost of a database connection."""
    from django.apps import apps
    from django.db import connection
    from django.test import Client

    from metering.models import Meter
    from readings import services
    from readings.api import views

    assert options.batch_size <= views.MAX_BATCH
    client = Client(HTTP_HOST="127.0.0.1", headers={"Authorization": f"Bearer {key}"})

    def post(chunk: Chunk, batch: bool) -> float:
        path = f"/api/v1/meters/{chunk.series.meter_id}/readings/"
        body = chunk.body(origin, step)
        start = time.perf_counter()
        response = client.post(
            path + "batch/" if batch else path,
            data=json.dumps({"readings": body} if batch else body[0]),
            content_type="application/json",
        )
        elapsed = time.perf_counter() - start
        expect(response.status_code, response.content, 201, chunk.size if batch else None)
        return elapsed

    clock = PhaseClock()
    instrument(clock)
    singles, batches = Breakdown(), Breakdown()
    try:
        with connection.execute_wrapper(clock.record_sql):
            post(allocator.single(1), batch=False)  # warm-up: imports, connection, caches
            post(allocator.batch(options.batch_size), batch=True)
            for breakdown, batch, count in ((singles, False, 20), (batches, True, None)):
                for _ in range(count or options.profile_batches):
                    chunk = allocator.batch(options.batch_size) if batch else allocator.single(1)
                    clock.reset()
                    clock.totals["request"] = post(chunk, batch)
                    breakdown.phases.append(dict(clock.totals))
                    breakdown.sql.append(dict(clock.sql))
    finally:
        clock.undo()

    profiler = cProfile.Profile()
    chunk = allocator.batch(options.batch_size)
    profiler.enable()
    profiled = post(chunk, batch=True)
    profiler.disable()

    def engine(mode: str) -> tuple[float, float, float, int]:
        """The engine alone on a batch with the audit triggers as ``mode`` says: its time, its
        INSERT's and COMMIT's, and the audit events recorded with their context."""
        chunk = allocator.batch(options.batch_size)
        items = [
            services.ReadingInput(reading_date=date, value=value, reading_type="AUTOMATIC")
            for date, value, _ in chunk.rows(origin, step)
        ]
        meter = Meter.objects.get(pk=chunk.series.meter_id)
        clock = PhaseClock()
        clock.wrap(connection, "_commit", "commit")
        try:
            with audit_triggers(mode), connection.execute_wrapper(clock.record_sql):
                start = time.perf_counter()
                created = services.create_readings(
                    meter=meter, items=items, actor=services.Actor("bench")
                )
                elapsed = time.perf_counter() - start
        finally:
            clock.undo()
        events = apps.get_model("readings", "ReadingEvent").objects.filter(
            pgh_obj_id__in=[reading.pk for reading in created.accepted],
            pgh_context_id__isnull=False,
        )
        insert = sum(clock.sql[SQL_LABELS[1][1]])
        return elapsed, insert, clock.totals["commit"], events.count()

    # Interleaved, so that the machine's load weighs on each mode alike.
    engine_times: dict[str, list[tuple[float, float, float, int]]] = defaultdict(list)
    for _ in range(ENGINE_ROUNDS):
        for mode in AUDIT_MODES:
            engine_times[mode].append(engine(mode))

    connects = []
    for _ in range(20):
        start = time.perf_counter()
        psycopg.connect(options.database_url).close()
        connects.append(time.perf_counter() - start)
    return {
        "singles": singles,
        "batches": batches,
        "profiler": profiler,
        "profiled": profiled,
        "engine": {
            mode: (
                *(statistics.median(column) for column in list(zip(*times, strict=True))[:3]),
                min(events for *_, events in times),
            )
            for mode, times in engine_times.items()
        },
        "connect": statistics.median(connects),
    }


def report_breakdown(title: str, breakdown: Breakdown) -> float:
    """Print the median time of each phase and SQL statement; the median request time."""
    phases, sql = breakdown.phases, breakdown.sql
    request = statistics.median(totals["request"] for totals in phases)
    print(f"\n-- {title}: median of {len(phases)} requests")
    print(f"  {'phase':56} {'ms':>8} {'%':>6}")
    for key, label in PHASES:
        value = statistics.median(totals.get(key, 0.0) for totals in phases)
        print(f"  {label:56} {value * 1000:8.1f} {value / request * 100:6.1f}")
    print(f"  {'SQL statement (client side, incl. round trip)':56} {'ms':>8} {'%':>6}")
    labels = {label for calls in sql for label in calls}
    medians = {
        label: statistics.median(sum(calls.get(label, [])) for calls in sql) for label in labels
    }
    for label, value in sorted(medians.items(), key=lambda item: -item[1]):
        count = statistics.median(len(calls.get(label, [])) for calls in sql)
        name = f"{label[:50]} ×{count:.0f}"
        print(f"  {name:56} {value * 1000:8.1f} {value / request * 100:6.1f}")
    commit = statistics.median(totals.get("commit", 0.0) for totals in phases)
    print(f"  {'COMMIT':56} {commit * 1000:8.1f} {commit / request * 100:6.1f}")
    database = sum(medians.values()) + commit
    print(f"  {'all SQL and COMMIT':56} {database * 1000:8.1f} {database / request * 100:6.1f}")
    python = request - database
    print(f"  {'Python (the rest)':56} {python * 1000:8.1f} {python / request * 100:6.1f}")
    return request


def report_profile(result: dict, options) -> None:
    report_breakdown("In-process single POST", result["singles"])
    report_breakdown(f"In-process batch of {options.batch_size}", result["batches"])

    print(f"\n-- cProfile of one batch request ({result['profiled'] * 1000:.0f} ms under profiler)")
    stats = pstats.Stats(result["profiler"])
    own: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        own[package_of(filename)] += tottime
    total = sum(own.values())
    print("  own time by package:")
    for package, value in sorted(own.items(), key=lambda item: -item[1])[:10]:
        print(f"    {package:40} {value * 1000:7.1f} ms {value / total * 100:5.1f} %")
    print("  top functions by own time:")
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:15]
    for (filename, line, name), (_, calls, tottime, _, _) in rows:
        where = f"{package_of(filename)}:{Path(filename).name}:{line} {name}"
        print(f"    {where[:66]:66} {calls:7d} calls {tottime * 1000:7.1f} ms")
    print("  top functions by cumulative time:")
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][3])
    shown = 0
    for (filename, line, name), (_, calls, _, cumtime, _) in rows:
        package = package_of(filename)
        if package.startswith(("builtins", "stdlib", "bench", "django:core")):
            continue
        where = f"{package}:{Path(filename).name}:{line} {name}"
        print(f"    {where[:66]:66} {calls:7d} calls {cumtime * 1000:7.1f} ms")
        shown += 1
        if shown == 25:
            break

    print(
        f"\n-- services.create_readings alone on a batch of {options.batch_size}, by audit"
        f" trigger (median of {ENGINE_ROUNDS}, interleaved)"
    )
    print(f"  {'audit trigger':48} {'engine':>7} {'INSERT':>7} {'COMMIT':>7} {'events':>7}")
    for mode, (total, insert, commit, events) in result["engine"].items():
        print(
            f"  {AUDIT_MODES[mode]:48} {total * 1000:7.1f} {insert * 1000:7.1f}"
            f" {commit * 1000:7.1f} {events:7d}"
        )
    print("  (ms; events: audit events recorded with their context, of the batch's readings)")
    print(
        f"\n-- A new PostgreSQL connection (each request's when CONN_MAX_AGE=0):"
        f" {result['connect'] * 1000:.1f} ms (median of 20)"
    )


def package_of(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if filename.startswith(str(ROOT)):
        return "/".join(Path(filename).relative_to(ROOT).parts[:1]) + " (project)"
    if filename.startswith("<") or filename == "~":
        return "builtins (C)"
    return "stdlib:" + Path(filename).stem


# --- the run ---------------------------------------------------------------------------------


def machine() -> str:
    import gunicorn as gunicorn_package
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0].split()[0]
    return (
        f"{os.cpu_count()} CPUs (nproc); Python {platform.python_version()};"
        f" PostgreSQL {postgres}; gunicorn {gunicorn_package.__version__}"
    )


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class Figures:
    machine: str = ""
    load_average: list[str] = field(default_factory=list)
    load: dict[str, float] = field(default_factory=dict)
    history: int = 0
    single: SingleResult | None = None
    batches: list[BatchResult] = field(default_factory=list)
    raw: list[RawResult] = field(default_factory=list)
    rewritten: int = 0
    chain_differences: int = 0


@dataclass
class Bench:
    account_id: str
    key: str
    series: list[Series]
    origin: dt.datetime


def prepare(options, figures: Figures) -> Bench:
    """Step 1: a database holding the history (or the one of a previous run)."""
    if options.reuse:
        configure_django(options)
        from metering import domain, services
        from metering.models import Account

        account = Account.objects.get(slug="bench")
        _, key = services.create_api_key(account=account, name="bench", scopes=list(domain.SCOPES))
        account_id = str(account.pk)
        with psycopg.connect(options.database_url, autocommit=True) as connection:
            # An interrupted run may have left them off.
            connection.execute("ALTER TABLE readings_reading ENABLE TRIGGER USER")
        series, origin = read_series(account_id)
        print(f"== 1. Reusing {options.database_url}: {len(series)} meters")
        return Bench(account_id, key, series, origin)

    print(f"== 1. Database {options.database_url}")
    step = dt.timedelta(minutes=options.interval_minutes)

    def timed(label: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = work()
        figures.load[label] = time.perf_counter() - started
        print(f"  {label:30} {figures.load[label]:7.1f} s")
        return result

    def create_and_migrate() -> None:
        recreate_database(options.database_url)
        configure_django(options)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    timed("create + migrate", create_and_migrate)
    account_id, key = timed(
        "account, key, meters", lambda: create_fixture(options.meters, options.timezone)
    )
    # The history ends early enough that every append of this run, and of a few more runs
    # with --reuse, is in the past.
    span = options.readings + RUNS_PER_LOAD * appends_needed(options)
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    origin = end - dt.timedelta(hours=1) - span * step
    timed("readings (set-based)", lambda: load_history(account_id, options.readings, origin, step))
    timed("VACUUM ANALYZE", vacuum_analyze)
    series, _ = read_series(account_id)
    total = sum(one.count for one in series)
    differences = check_chain(series[0]) + check_chain(series[-1])
    print(
        f"  {total:,} readings in {len(series)} meters; chain of meters 0 and"
        f" {len(series) - 1} against readings.domain: {differences} difference(s)"
    )
    return Bench(account_id, key, series, origin)


def measure(options, figures: Figures, bench: Bench, allocator: Allocator) -> None:
    """Steps 2 and 3: gunicorn, single POSTs, then batches for each number of workers."""
    step = dt.timedelta(minutes=options.interval_minutes)
    for number, workers in enumerate(options.workers):
        print(
            f"\n== 2. gunicorn, {workers} {options.worker_class} worker(s),"
            f" port {options.port}, CONN_MAX_AGE={options.conn_max_age}"
        )
        with gunicorn(options, workers, bench.key):
            if number == 0:
                chunk = allocator.single(options.warmup + options.single)
                figures.single = measure_single(options, bench.key, chunk, bench.origin, step)
                latencies = figures.single.latencies
                print(
                    f"== 3a. {len(latencies)} single POSTs on a meter with"
                    f" {figures.history:,} readings: median"
                    f" {ms(statistics.median(latencies))},"
                    f" p95 {ms(percentile(latencies, 0.95))}"
                )
            # One more batch per client, first, to warm it up.
            count = workers + options.batches
            chunks = [allocator.batch(options.batch_size) for _ in range(count)]
            result = measure_batches(options, bench.key, workers, chunks, bench.origin, step)
            figures.batches.append(result)
            print(
                f"== 3b. {options.batches} batches of {options.batch_size}, {workers}"
                f" client(s): {result.per_second:,.0f} readings/s,"
                f" median request {ms(statistics.median(result.latencies))}"
            )


def measure_reference(options, figures: Figures, bench: Bench, allocator: Allocator) -> None:
    """Step 4: the same number of rows, without the product."""
    step = dt.timedelta(minutes=options.interval_minutes)
    print("\n== 4. Reference: the same rows inserted with psycopg, one transaction per batch")
    for variant in RAW_VARIANTS:
        chunks = [allocator.batch(options.batch_size) for _ in range(options.batches)]
        wall = measure_raw(
            options.database_url, bench.account_id, chunks, bench.origin, step, variant
        )
        figures.raw.append(RawResult(variant, options.batches * options.batch_size, wall))
        print(f"  {variant.label:55} {figures.raw[-1].per_second:8,.0f} rows/s")


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    # A SIGTERM ends the run like a Ctrl-C: the finally blocks stop the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures = Figures()
    bench = prepare(options, figures)
    if options.load_only:
        return 0
    step = dt.timedelta(minutes=options.interval_minutes)
    from readings.models import Reading

    started = dt.datetime.now(dt.UTC)
    figures.machine = machine()
    figures.load_average.append(load_average())
    allocator = Allocator(bench.series, bench.origin, step)
    figures.history = allocator.series[0].count
    try:
        measure(options, figures, bench, allocator)
        measure_reference(options, figures, bench, allocator)
    except NoRoom as exc:
        print(exc)
        return 2
    figures.load_average.append(load_average())
    # The engine re-derives only rows whose stored chain differs from its own: none of the
    # loaded history should have been rewritten by the appends.
    history = Reading.objects.filter(created_by=LOAD_ACTOR, updated_at__gt=started)
    figures.rewritten = history.count()
    figures.chain_differences = sum(check_chain(one) for one in allocator.series[:2])
    summary(options, figures)

    if not options.no_profile:
        print("\n== 6. Where the time goes")
        report_profile(profile(options, bench.key, allocator, bench.origin, step), options)
    return 0


def summary(options, figures: Figures) -> None:
    reference = figures.raw[0]
    print("\n" + "=" * 78)
    print("SUMMARY  bench/readings_api.py")
    print(f"  machine      {figures.machine}")
    print(f"  load average {' → '.join(figures.load_average)} (1, 5, 15 min; start → end)")
    loaded = (
        f"loaded in {sum(figures.load.values()):.1f} s"
        f" (readings {figures.load['readings (set-based)']:.1f} s)"
        if figures.load
        else "reused"
    )
    print(
        f"  data         {options.meters:,} meters × {options.readings:,} readings, one every"
        f" {options.interval_minutes} min, {loaded}"
    )
    print(
        f"  server       gunicorn {options.worker_class}, CONN_MAX_AGE={options.conn_max_age},"
        " DEBUG off"
    )
    if figures.single:
        latencies = figures.single.latencies
        print(
            f"  single POST  median {ms(statistics.median(latencies))},"
            f" p95 {ms(percentile(latencies, 0.95))} ({len(latencies)} POSTs on a meter with"
            f" {figures.history:,} readings; the server closed the connection after"
            f" {figures.single.reconnects} of {len(latencies) + options.warmup} responses)"
        )
    for result in figures.batches:
        print(
            f"  batch        {result.workers} worker(s), {result.workers} client(s):"
            f" {result.per_second:,.0f} readings/s, median request"
            f" {ms(statistics.median(result.latencies))}, ratio to reference"
            f" {result.per_second / reference.per_second:.2f}"
        )
    for raw in figures.raw:
        print(f"  raw          {raw.variant.label}: {raw.per_second:,.0f} rows/s")
    best = max(figures.batches, key=lambda result: result.per_second)
    verdict = "met" if best.per_second >= GOAL_READINGS_PER_SECOND else "NOT MET"
    print(
        f"  goal         ≥ {GOAL_READINGS_PER_SECOND:,} readings/s through the batch endpoint:"
        f" best {best.per_second:,.0f} ({best.workers} worker(s)) → {verdict}"
    )
    print(
        f"  checks       loaded readings rewritten by the engine: {figures.rewritten};"
        f" chain differences on the first two meters written: {figures.chain_differences}"
        " (0 and 0 expected)"
    )
    print("=" * 78)


def run(main: Callable[[], int]) -> None:
    """A bench script's entry point: ``main``'s exit status; a Ctrl-C ends it with 130, no
    traceback."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nInterrupted.")
        sys.exit(130)


if __name__ == "__main__":
    run(main)
