"""Benchmark of consumption over time: GET /api/v1/meters/{id}/consumption/ (CONTRACT §4.5).

Run from the project root; the database named by --database-url (default
metering_bench_consumption, its name must contain "bench") is dropped and recreated:

    .venv/bin/python bench/consumption.py              # 175,000 readings, 30 runs
    .venv/bin/python bench/consumption.py --reuse      # measure again, no reload

What it does, in order:

1. creates the database, migrates it, creates an account (Europe/Paris), a key and one meter,
   then loads ``--readings`` readings every ``--interval-minutes`` on its default register
   set-based (``INSERT ... SELECT generate_series``, with the chain fields the engine would
   store), as ``bench/readings_api.py`` does (its loading functions are reused), and checks
   the chain against ``readings.domain``;
2. measures, ``--runs`` times each after a warm-up: the monthly consumption over the whole
   history (about 60 buckets) through the API in-process with Django's test client, the
   aggregation query bare (in both shapes), and, as references measured in the same run, a plain
   ``SELECT sum(consumption)`` over the same rows and the fetch of those rows into Python;
3. checks that the buckets add up exactly to the stored consumption between the range's
   first and last readings, and prints EXPLAIN ANALYZE of the aggregation;
4. measures a place of ``--place-meters`` meters read daily (loaded in step 1 too): daily
   buckets over a year and monthly ones over two years, through the API and bare in both
   shapes of the query;
5. prints a summary against the goal (under 200 ms through the API for step 2).

Timings are wall-clock: on a shared machine, run it twice and compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field

# The loading steps of the readings benchmark, reused as they are (this directory is on
# sys.path when the script runs).
import readings_api as loading
from readings_api import ms

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/metering_bench_consumption"
GOAL_SECONDS = 0.200


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--readings", type=int, default=175_000, help="readings (175,000)")
    parser.add_argument("--interval-minutes", type=int, default=15, help="between readings")
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each measure")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--granularity", default="month", help="day, week, month or year")
    parser.add_argument("--timezone", default="Europe/Paris", help="the account's time zone")
    parser.add_argument(
        "--place-meters",
        type=int,
        default=100,
        help="meters of the place measured in step 4, one reading a day each (100; 0: skip)",
    )
    parser.add_argument("--place-days", type=int, default=731, help="their daily readings (731)")
    loading.add_database_options(parser, "BENCH_CONSUMPTION_DATABASE_URL", DEFAULT_DATABASE_URL)
    options = parser.parse_args(argv)
    loading.check_database_name(parser, options)
    if options.readings < 2 or options.runs < 1:
        parser.error("at least 2 readings and 1 run")
    options.conn_max_age = 60  # read by loading.configure_django
    return options


# --- step 1: the data ------------------------------------------------------------------------


@dataclass
class Data:
    key: str
    meter_id: int
    register_id: int
    readings: int
    first: dt.datetime
    last: dt.datetime
    load: dict[str, float] = field(default_factory=dict)
    chain_differences: int | None = None


def timed(label: str, figures: dict[str, float], work: Callable[[], object]) -> object:
    started = time.perf_counter()
    result = work()
    figures[label] = time.perf_counter() - started
    print(f"  {label:30} {figures[label]:7.1f} s")
    return result


def prepare(options: argparse.Namespace) -> Data:
    if options.reuse:
        loading.configure_django(options)
        print(f"== 1. Reusing {options.database_url}")
        return describe(options, new_key=True)

    print(f"== 1. Database {options.database_url}")
    load: dict[str, float] = {}

    def create_and_migrate() -> None:
        loading.recreate_database(options.database_url)
        loading.configure_django(options)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    timed("create + migrate", load, create_and_migrate)
    account_id, key = timed(
        "account, key, meter", load, lambda: loading.create_fixture(1, options.timezone)
    )
    step = dt.timedelta(minutes=options.interval_minutes)
    # The history starts at local midnight on the first of a month and ends in the past.
    zone = zoneinfo.ZoneInfo(options.timezone)
    span = (options.readings * step).days + 2
    first_day = (dt.datetime.now(zone).date() - dt.timedelta(days=span)).replace(day=1)
    origin = dt.datetime.combine(first_day, dt.time.min, tzinfo=zone).astimezone(dt.UTC)
    timed(
        "readings (set-based)",
        load,
        lambda: loading.load_history(account_id, options.readings, origin, step),
    )
    if options.place_meters:
        timed(
            f"place: {options.place_meters} meters, daily readings",
            load,
            lambda: load_place(options, account_id, first_day, zone),
        )
    timed("VACUUM ANALYZE", load, loading.vacuum_analyze)
    data = describe(options, key=key)
    data.load = load
    series = loading.Series(data.meter_id, data.register_id, data.readings)
    data.chain_differences = timed(
        "chain check (readings.domain)", load, lambda: loading.check_chain(series)
    )
    print(
        f"  {data.readings:,} readings from {data.first:%Y-%m-%d %H:%M} to"
        f" {data.last:%Y-%m-%d %H:%M} UTC; chain against readings.domain:"
        f" {data.chain_differences} difference(s)"
    )
    return data


PLACE_CODE = "BENCH-PLACE"


def load_place(
    options: argparse.Namespace, account_id: str, first_day: dt.date, zone: dt.tzinfo
) -> None:
    """A place of ``--place-meters`` water meters read once a day at 06:00 local time for
    ``--place-days`` days (1.25 m³ a day), set-based, with the chain the engine would store."""

    from metering import services
    from metering.models import Account, Place

    account = Account.objects.get(pk=account_id)
    place = Place.objects.create(account=account, name="Bench place", code=PLACE_CODE)
    for number in range(options.place_meters):
        services.create_meter(
            account=account,
            values={
                "name": f"Flat {number:03d}",
                "serial_number": f"BENCH-W-{number:04d}",
                "meter_type": "WATER",
                "place": place,
            },
        )
    loading.load_daily_readings(
        account_id=account_id,
        place_id=place.pk,
        origin=dt.datetime.combine(first_day, dt.time(6)),
        zone=options.timezone,
        days=options.place_days,
        daily="1.25",
    )


def describe(options: argparse.Namespace, key: str = "", new_key: bool = False) -> Data:
    from django.db.models import Count, Max, Min

    from metering import domain, services
    from metering.models import Account, Register

    account = Account.objects.get(slug="bench")
    if new_key:
        _, key = services.create_api_key(account=account, name="bench", scopes=list(domain.SCOPES))
    register = (
        Register.objects.filter(meter__serial_number="BENCH-00000", is_default=True)
        .annotate(count=Count("readings"), first=Min("readings__reading_date"))
        .annotate(last=Max("readings__reading_date"))
        .get()
    )
    return Data(key, register.meter_id, register.pk, register.count, register.first, register.last)


# --- step 2: the measures --------------------------------------------------------------------


@dataclass
class Measure:
    label: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        return loading.percentile(self.seconds, 0.95)


def repeat(label: str, options: argparse.Namespace, work: Callable[[], object]) -> Measure:
    for _ in range(options.warmup):
        work()
    seconds = []
    for _ in range(options.runs):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    measure = Measure(label, seconds)
    print(f"  {label:58} median {ms(measure.median):>9}, p95 {ms(measure.p95):>9}")
    return measure


@dataclass
class Query:
    """The range measured: whole local days from the first reading to the last midnight."""

    start: dt.date
    end: dt.date
    granularity: str


def query_of(options: argparse.Namespace, data: Data) -> Query:
    from readings import domain

    zone = zoneinfo.ZoneInfo(options.timezone)
    start = data.first.astimezone(zone).date()
    end = data.last.astimezone(zone).date() - dt.timedelta(days=1)
    # Readings lie on every local midnight of the history (15-minute steps from one).
    assert domain.local_midnight(start, zone) == data.first, "the history starts at midnight"
    return Query(start, end, options.granularity)


def measure(options: argparse.Namespace, data: Data, query: Query) -> dict:
    from django.db import connection
    from django.test import Client

    from metering.models import Account, Meter, Register
    from readings import domain, selectors

    account = Account.objects.get(slug="bench")
    meter = Meter.objects.select_related("account").get(pk=data.meter_id)
    register = Register.objects.get(pk=data.register_id)
    zone = account.zone
    ranges = domain.buckets(query.start, query.end, query.granularity, zone)
    source = selectors.Source(meter.pk, register.pk, True)
    params = selectors.spread_sql_params(account, [source], ranges)
    strategy = selectors.spread_strategy(1, len(ranges))
    other = "scan" if strategy == "probe" else "probe"
    lower, upper = ranges[0].start, ranges[-1].end
    path = (
        f"/api/v1/meters/{meter.pk}/consumption/?start={query.start}&end={query.end}"
        f"&granularity={query.granularity}"
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {data.key}", HTTP_HOST="localhost")

    def api() -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.content[:300]!r}")

    def bare_sql(chosen: str) -> Callable[[], None]:
        def run() -> None:
            with connection.cursor() as cursor:
                cursor.execute(selectors.SPREAD_SQL[chosen], params)
                cursor.fetchall()

        return run

    def selector() -> None:
        selectors.meter_consumption(meter=meter, register=register, ranges=ranges)

    reference_sql = (
        "SELECT sum(consumption), count(*) FROM readings_reading"
        " WHERE register_id = %s AND reading_date > %s AND reading_date <= %s"
    )

    def reference() -> None:
        with connection.cursor() as cursor:
            cursor.execute(reference_sql, [register.pk, lower, upper])
            cursor.fetchall()

    def rows_into_python() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reading_date, consumption, is_estimated FROM readings_reading"
                " WHERE register_id = %s AND reading_date >= %s AND reading_date <= %s"
                " ORDER BY reading_date",
                [register.pk, lower, upper],
            )
            cursor.fetchall()

    print(
        f"\n== 2. {options.granularity} consumption {query.start}..{query.end}"
        f" ({len(ranges)} buckets), {options.runs} runs after {options.warmup} warm-up(s)"
    )
    results = {
        "api": repeat("API, in-process (Django test client)", options, api),
        "selector": repeat("selectors.meter_consumption (query + Python)", options, selector),
        "sql": repeat(
            f"aggregation query, bare ({strategy}, the one used)", options, bare_sql(strategy)
        ),
        "other": repeat(
            f"aggregation query, bare ({other}, for comparison)", options, bare_sql(other)
        ),
        "reference": repeat(
            "reference: SELECT sum(consumption) over the same rows", options, reference
        ),
        "rows": repeat(
            "for comparison: the same rows fetched into Python", options, rows_into_python
        ),
    }

    print("\n== 3. Checks")
    totals = selectors.meter_consumption(meter=meter, register=register, ranges=ranges)
    with connection.cursor() as cursor:
        cursor.execute(reference_sql, [register.pk, lower, upper])
        stored, count = cursor.fetchone()
    spread_sum = domain.exact_sum(total.consumption for total in totals)
    exact = spread_sum == stored
    print(
        f"  Σ buckets = {spread_sum} ; Σ stored consumption of the {count:,} readings in"
        f" ({query.start} 00:00, {query.end} + 1 day 00:00] = {stored} → "
        + ("equal" if exact else "DIFFERENT")
    )
    body = client.get(path).json()["data"]
    print(
        f"  API: {len(body)} buckets, first {body[0]['period_start']}..{body[0]['period_end']}"
        f" {body[0]['consumption']} {body[0]['unit']}, readings"
        f" {sum(bucket['readings_count'] for bucket in body):,}"
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + selectors.SPREAD_SQL[strategy], params)
        plan = [row[0] for row in cursor.fetchall()]
    results["plan"] = plan
    results["strategy"] = strategy
    results["exact"] = exact
    results["buckets"] = len(ranges)
    return results


def measure_place(options: argparse.Namespace, data: Data) -> list[Measure]:
    """Step 4: the place's daily consumption over a year and monthly over its history."""
    from django.db import connection
    from django.db.models import Max, Min
    from django.test import Client

    from metering.models import Account, Place
    from readings import domain, selectors
    from readings.models import Reading

    place = Place.objects.filter(code=PLACE_CODE).first()
    if place is None:
        return []
    account = Account.objects.get(slug="bench")
    zone = account.zone
    span = Reading.objects.filter(meter__place=place).aggregate(
        first=Min("reading_date"), last=Max("reading_date")
    )
    first = span["first"].astimezone(zone).date() + dt.timedelta(days=1)
    last = span["last"].astimezone(zone).date() - dt.timedelta(days=1)
    meters = place.meters.count()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {data.key}", HTTP_HOST="localhost")
    print(
        f"\n== 4. Place of {meters} meters read daily, {first}..{last},"
        f" {options.runs} runs after {options.warmup} warm-up(s)"
    )
    measures = []
    queries = [
        ("day", first, min(first + dt.timedelta(days=364), last)),
        ("month", first, last),
    ]
    for granularity, start, end in queries:
        path = (
            f"/api/v1/places/{place.pk}/consumption/?meter_type=WATER&start={start}"
            f"&end={end}&granularity={granularity}"
        )
        ranges = domain.buckets(start, end, granularity, zone)
        strategy = selectors.spread_strategy(meters, len(ranges))

        def api(path: str = path) -> None:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.content[:300]!r}")

        measures.append(
            repeat(f"API {granularity} ({len(ranges)} buckets, {strategy})", options, api)
        )
        sources = [
            selectors.Source(meter_id, register_id, True)
            for meter_id, register_id in place.meters.filter(
                registers__is_default=True
            ).values_list("pk", "registers__pk")
        ]
        params = selectors.spread_sql_params(account, sources, ranges)
        for chosen in selectors.SPREAD_SQL:

            def bare(chosen: str = chosen, params: dict = params) -> None:
                with connection.cursor() as cursor:
                    cursor.execute(selectors.SPREAD_SQL[chosen], params)
                    cursor.fetchall()

            measures.append(repeat(f"  aggregation query, bare ({chosen})", options, bare))
    return measures


def explain_summary(plan: list[str]) -> list[str]:
    """The plan's nodes (with their actual times) and its totals, without the details."""
    kept = []
    for line in plan:
        text = line.strip()
        if text.startswith("->") or text.startswith(("Planning Time", "Execution Time")):
            kept.append(line)
        elif line and not line.startswith(" "):
            kept.append(line)  # the root node
    return kept


def summary(options: argparse.Namespace, data: Data, query: Query, results: dict, load: list):
    print("\n== EXPLAIN (ANALYZE, BUFFERS) of the aggregation, nodes only")
    for line in explain_summary(results["plan"]):
        print(f"  {line}")
    reference = results["reference"].median
    print("\n" + "=" * 78)
    print("SUMMARY  bench/consumption.py")
    print(f"  machine      {loading.machine()}")
    print(f"  load average {' → '.join(load)} (1, 5, 15 min; start → end)")
    loaded = (
        f"loaded in {sum(data.load.values()):.1f} s"
        f" (readings {data.load.get('readings (set-based)', 0):.1f} s)"
        if data.load
        else "reused"
    )
    print(
        f"  data         1 meter, {data.readings:,} readings every {options.interval_minutes}"
        f" min ({options.timezone}), {loaded}"
    )
    print(
        f"  query        {query.granularity} buckets {query.start}..{query.end}:"
        f" {results['buckets']} buckets, {options.runs} runs"
    )
    for key in ("api", "selector", "sql", "other", "reference", "rows"):
        result = results[key]
        print(
            f"  {key:12} median {ms(result.median):>9}, p95 {ms(result.p95):>9},"
            f" ratio to reference {result.median / reference:6.1f}  ({result.label.strip()})"
        )
    for result in results["place"]:
        print(
            f"  {'place':12} median {ms(result.median):>9}, p95 {ms(result.p95):>9}"
            f"  ({result.label.strip()})"
        )
    api = results["api"]
    verdict = "met" if api.median < GOAL_SECONDS and api.p95 < GOAL_SECONDS else "NOT MET"
    print(
        f"  goal         < {GOAL_SECONDS * 1000:.0f} ms through the API: median"
        f" {ms(api.median)}, p95 {ms(api.p95)} → {verdict}"
    )
    print(
        f"  checks       buckets add up to the stored consumption: {results['exact']};"
        f" chain differences: {data.chain_differences} (True and 0 expected; None: reused)"
    )
    print("=" * 78)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    data = prepare(options)
    query = query_of(options, data)
    load = [loading.load_average()]
    results = measure(options, data, query)
    results["place"] = measure_place(options, data)
    load.append(loading.load_average())
    summary(options, data, query, results, load)
    return 0 if results["exact"] else 1


if __name__ == "__main__":
    loading.run(main)
