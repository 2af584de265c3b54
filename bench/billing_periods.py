"""Benchmark of computing a billing period (CONTRACT §5): ``billing.services.compute_period``.

Run from the project root; the database named by --database-url (default metering_bench_billing,
its name must contain "bench") is dropped and recreated:

    .venv/bin/python bench/billing_periods.py              # 500 estates, 2 years of daily readings
    .venv/bin/python bench/billing_periods.py --reuse      # measure again, no reload

What it does, in order:

1. creates the database, migrates it, and builds one place of ``--estates`` estates, each
   with a lease (every other one changes tenant in the middle of the measured month, so its
   lines are split), an ``INDIVIDUAL`` electricity meter read once a day at 06:00 local time
   for ``--days`` days (loaded set-based, with the chain the engine would store), one
   ``SHARED`` meter over ten estates and one ``COLLECTIVE`` meter split by shares, and two
   tariffs with a price change in the middle of the year;
2. measures ``compute_period`` ``--runs`` times (after a warm-up) for a month and for a year,
   in process, and, as the reference measured in the same run, the bare fetch of the readings
   the computation loads (the same rows, one psycopg query, no Django);
3. prints the figures, the queries per computation and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
import zoneinfo

import readings_api as loading
from readings_api import ms

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/metering_bench_billing"
PLACE_CODE = "BENCH-BILLING"


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--estates", type=int, default=500, help="estates and meters (500)")
    parser.add_argument("--days", type=int, default=731, help="daily readings per meter (731)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each measure")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    loading.add_database_options(parser, "BENCH_BILLING_DATABASE_URL", DEFAULT_DATABASE_URL)
    options = parser.parse_args(argv)
    loading.check_database_name(parser, options)
    if options.estates < 10 or options.days < 400 or options.runs < 1:
        parser.error("at least 10 estates, 400 days and 1 run")
    options.conn_max_age = 60  # read by loading.configure_django
    return options


def first_day(options: argparse.Namespace) -> dt.date:
    """The history starts on the 1st of a month and ends before today."""
    return (dt.date.today() - dt.timedelta(days=options.days + 40)).replace(day=1)


def build(options: argparse.Namespace) -> None:
    from decimal import Decimal

    from django.core.management import call_command

    from billing.models import AllocationRule, Lease, MeterShare, Tariff, Tenant
    from metering import services
    from metering.models import Estate, Place

    loading.recreate_database(options.database_url)
    call_command("migrate", verbosity=0)
    account = services.create_account(name="Bench", slug="bench", timezone="Europe/Paris")
    place = Place.objects.create(account=account, name="Bench place", code=PLACE_CODE)
    start = first_day(options)
    middle = start + dt.timedelta(days=options.days // 2)
    Tariff.objects.create(
        account=account,
        name="Before",
        meter_type="ELECTRICITY",
        unit_price=Decimal("0.2016"),
        standing_charge_per_day=Decimal("0.45"),
        vat_rate=Decimal("0.20"),
        valid_from=start,
        valid_to=middle - dt.timedelta(days=1),
    )
    Tariff.objects.create(
        account=account,
        name="After",
        meter_type="ELECTRICITY",
        unit_price=Decimal("0.2276"),
        standing_charge_per_day=Decimal("0.45"),
        vat_rate=Decimal("0.20"),
        valid_from=middle,
    )
    month = measured_month(options)
    change = month + dt.timedelta(days=14)
    for number in range(options.estates):
        estate = Estate.objects.create(
            account=account, place=place, code=f"E{number:04d}", name=f"Flat {number}", shares=100
        )
        tenant = Tenant.objects.create(account=account, name=f"Tenant {number}")
        if number % 2:
            Lease.objects.create(
                account=account,
                tenant=tenant,
                estate=estate,
                start_date=start,
                end_date=change - dt.timedelta(days=1),
            )
            Lease.objects.create(account=account, tenant=tenant, estate=estate, start_date=change)
        else:
            Lease.objects.create(account=account, tenant=tenant, estate=estate, start_date=start)
        services.create_meter(
            account=account,
            values={
                "name": f"Flat {number}",
                "serial_number": f"BENCH-E-{number:05d}",
                "meter_type": "ELECTRICITY",
                "place": place,
                "estate": estate,
            },
        )
    shared = services.create_meter(
        account=account,
        values={
            "name": "Shared",
            "serial_number": "BENCH-SHARED",
            "meter_type": "ELECTRICITY",
            "place": place,
            "billing_type": "SHARED",
        },
    )
    for estate in Estate.objects.filter(place=place).order_by("pk")[:10]:
        MeterShare.objects.create(account=account, meter=shared, estate=estate, ratio=1)
    collective = services.create_meter(
        account=account,
        values={
            "name": "Common",
            "serial_number": "BENCH-COMMON",
            "meter_type": "ELECTRICITY",
            "place": place,
            "billing_type": "COLLECTIVE",
        },
    )
    AllocationRule.objects.create(account=account, meter=collective, basis="SHARES")
    loading.load_daily_readings(
        account_id=str(account.pk),
        place_id=place.pk,
        origin=dt.datetime.combine(start, dt.time(6)),
        zone="Europe/Paris",
        days=options.days,
        daily="7.5",
    )
    loading.vacuum_analyze()


def measured_month(options: argparse.Namespace) -> dt.date:
    """The first day of the month measured: the last whole month of the history."""
    last = first_day(options) + dt.timedelta(days=options.days - 2)
    return (last.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def reference_fetch(options, period) -> float:
    """The bare fetch of the readings ``compute_period`` loads for ``period``."""
    import psycopg

    zone = zoneinfo.ZoneInfo("Europe/Paris")
    lower = dt.datetime.combine(period.start_date - dt.timedelta(days=7), dt.time.min, zone)
    upper = dt.datetime.combine(period.end_date + dt.timedelta(days=8), dt.time.min, zone)
    with psycopg.connect(options.database_url) as connection:
        started = time.perf_counter()
        rows = connection.execute(
            """
            SELECT r.register_id, r.reading_date, r.value, r.consumption,
                   r.is_billing_reading, r.is_estimated
            FROM readings_reading r JOIN metering_meter m ON m.id = r.meter_id
            JOIN metering_place p ON p.id = m.place_id
            WHERE p.code = %s AND r.reading_date BETWEEN %s AND %s
            ORDER BY r.register_id, r.reading_date
            """,
            (PLACE_CODE, lower, upper),
        ).fetchall()
        elapsed = time.perf_counter() - started
    assert rows
    return elapsed


def measure(options, label: str, start: dt.date, end: dt.date) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing import services
    from billing.models import BillingPeriod, Charge
    from metering.models import Account, Place

    account = Account.objects.get(slug="bench")
    place = Place.objects.get(account=account, code=PLACE_CODE)
    BillingPeriod.objects.filter(place=place, name=label).delete()
    period = services.create_period(
        account=account,
        values={"place": place, "name": label, "start_date": start, "end_date": end},
    )
    for _ in range(options.warmup):
        services.compute_period(period=period)
    timings = []
    for _ in range(options.runs):
        started = time.perf_counter()
        services.compute_period(period=period)
        timings.append(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as queries:
        period = services.compute_period(period=period)
    references = [reference_fetch(options, period) for _ in range(options.runs)]
    charges = Charge.objects.filter(billing_period=period).count()
    median, reference = statistics.median(timings), statistics.median(references)
    print(f"== {label}: {start} .. {end} ({(end - start).days + 1} days)")
    print(f"  charges written            {charges:8d}")
    print(f"  issues                     {len(period.issues):8d}")
    print(f"  total amount               {period.total_amount:>12} {period.currency}")
    print(f"  queries per computation    {len(queries):8d}")
    print(f"  compute_period median      {ms(median):>11}  (min {ms(min(timings))})")
    print(f"  reference: fetch readings  {ms(reference):>11}")
    print(f"  ratio to the reference     {median / reference:8.1f}")


def main() -> None:
    options = parse_options()
    loading.configure_django(options)
    if not options.reuse:
        started = time.perf_counter()
        build(options)
        print(
            f"== 1. Built {options.estates} estates × {options.days} days of readings "
            f"in {time.perf_counter() - started:.1f} s"
        )
    month = measured_month(options)
    month_end = (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    measure(options, "month", month, month_end)
    year_start = month_end - dt.timedelta(days=364)
    measure(options, "year", year_start, month_end)


if __name__ == "__main__":
    main()
