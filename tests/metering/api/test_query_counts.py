"""Every list endpoint runs the same number of queries for 1 object and for 50 (STYLE rule 2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Charge
from readings import periods
from readings import services as readings_services
from tests.api_routes import api_routes
from tests.factories import (
    AllocationRuleFactory,
    BillingPeriodFactory,
    EstateFactory,
    GatewayFactory,
    LeaseFactory,
    MeterFactory,
    MeterShareFactory,
    PlaceFactory,
    RegisterFactory,
    ServicePlaceFactory,
    TariffFactory,
    TenantFactory,
)

pytestmark = pytest.mark.django_db


def _meters(ctx, n):
    for _ in range(n):
        meter = MeterFactory(account=ctx["account"], estate=ctx["estate"], parent_meter=ctx["main"])
        RegisterFactory(meter=meter)  # two registers each, to show the prefetch holds


def _readings(ctx, n):
    meter = ctx["main"]
    start = meter.readings.count()
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    items = [
        readings_services.ReadingInput(
            reading_date=base + dt.timedelta(days=start + i), value=Decimal(10 * (start + i))
        )
        for i in range(n)
    ]
    readings_services.create_readings(meter=meter, items=items, actor=readings_services.Actor("t"))


def _devices(ctx, n):
    meter = ctx["main"]
    done = meter.devices.count()
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(done, done + n):
        readings_services.replace_device(
            meter=meter,
            replaced_at=base + dt.timedelta(days=i),
            final_value=Decimal(i),
            new_serial_number=f"{meter.serial_number}/{i}",
            actor=readings_services.Actor("t"),
        )


def _period_readings(ctx, n):
    meter = ctx["main"]
    start = meter.period_readings.count()
    base = dt.date(2023, 1, 1)
    items = [
        periods.PeriodInput(
            start_date=base + dt.timedelta(days=start + i),
            end_date=base + dt.timedelta(days=start + i),
            consumption=Decimal(10 + (start + i) % 7),
        )
        for i in range(n)
    ]
    result = periods.create_period_readings(
        meter=meter, items=items, actor=readings_services.Actor("t")
    )
    assert not result.errors


def _leases(ctx, n):
    """Leases of estates with meters of every billing kind, to show ``meters`` is loaded at once."""
    account, place = ctx["account"], ctx["place"]
    shared = MeterFactory(account=account, place=place, billing_type="SHARED")
    MeterFactory(account=account, place=place, billing_type="COLLECTIVE")
    for _ in range(n):
        estate = EstateFactory(place=place)
        MeterFactory(account=account, estate=estate)
        MeterShareFactory(meter=shared, estate=estate)
        LeaseFactory(estate=estate)


def _meter_shares(ctx, n):
    shared = MeterFactory(account=ctx["account"], place=ctx["place"], billing_type="SHARED")
    for _ in range(n):
        MeterShareFactory(meter=shared, estate=EstateFactory(place=ctx["place"]))


def _tariffs(ctx, n):
    # One slot each: tariffs of one type and slot may not overlap.
    start = ctx["account"].tariffs.count()
    for i in range(start, start + n):
        TariffFactory(account=ctx["account"], tariff_slot=f"S{i}")


def _allocation_rules(ctx, n):
    for _ in range(n):
        meter = MeterFactory(account=ctx["account"], place=ctx["place"], billing_type="COLLECTIVE")
        AllocationRuleFactory(meter=meter)


def _charges(ctx, n):
    period, main = ctx["billing_period"], ctx["main"]
    register = main.registers.get(is_default=True)
    lease = LeaseFactory(estate=EstateFactory(place=ctx["place"]))
    Charge.objects.bulk_create(
        Charge(
            account=ctx["account"],
            billing_period=period,
            lease=lease,
            estate=lease.estate,
            meter=main,
            register=register,
            start_date=period.start_date,
            end_date=period.end_date,
            amount=Decimal("1.00"),
            total_amount=Decimal("1.20"),
        )
        for _ in range(n)
    )


# For each list route: how to create n objects that it lists, given a context of parents.
POPULATE: dict[str, Callable[[dict, int], None]] = {
    "/api/v1/places/": lambda ctx, n: PlaceFactory.create_batch(n, account=ctx["account"]),
    "/api/v1/estates/": lambda ctx, n: EstateFactory.create_batch(n, place=ctx["place"]),
    "/api/v1/service-places/": lambda ctx, n: ServicePlaceFactory.create_batch(
        n, place=ctx["place"]
    ),
    "/api/v1/gateways/": lambda ctx, n: GatewayFactory.create_batch(n, account=ctx["account"]),
    "/api/v1/meters/": _meters,
    "/api/v1/meters/{meter_id}/registers/": lambda ctx, n: RegisterFactory.create_batch(
        n, meter=ctx["main"]
    ),
    "/api/v1/meters/{pk}/sub-meters/": _meters,
    "/api/v1/places/{place_id}/meters/": _meters,
    "/api/v1/estates/{estate_id}/meters/": _meters,
    "/api/v1/places/{place_id}/estates/{estate_id}/meters/": _meters,
    "/api/v1/meters/{meter_id}/readings/": _readings,
    "/api/v1/readings/": _readings,
    "/api/v1/meters/{meter_id}/period-readings/": _period_readings,
    "/api/v1/period-readings/": _period_readings,
    "/api/v1/meters/{meter_id}/devices/": _devices,
    "/api/v1/tenants/": lambda ctx, n: TenantFactory.create_batch(n, account=ctx["account"]),
    "/api/v1/leases/": _leases,
    "/api/v1/meter-shares/": _meter_shares,
    "/api/v1/tariffs/": _tariffs,
    "/api/v1/allocation-rules/": _allocation_rules,
    "/api/v1/billing-periods/": lambda ctx, n: BillingPeriodFactory.create_batch(
        n, place=ctx["place"]
    ),
    "/api/v1/billing-periods/{billing_period_id}/charges/": _charges,
}

# The portal's lists answer portal keys only: tests/billing/portal/test_query_counts.py.
LIST_ROUTES = [
    route for route in api_routes() if route.is_list and "/portal/" not in route.template
]


def test_every_list_route_has_a_query_count_test():
    assert {route.template for route in LIST_ROUTES} == set(POPULATE)


def _context(account) -> dict:
    place = PlaceFactory(account=account)
    estate = EstateFactory(place=place)
    main = MeterFactory(account=account, place=place, is_main_meter=True)
    billing_period = BillingPeriodFactory(place=place)
    return {
        "account": account,
        "place": place,
        "estate": estate,
        "main": main,
        "billing_period": billing_period,
    }


def _count(api, path: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = api.get(path)
    assert response.status_code == 200, response.content[:300]
    return len(queries), response.json()["meta"]["total"]


@pytest.mark.parametrize("template", sorted(POPULATE))
def test_same_number_of_queries_for_1_and_50_objects(template, account, api):
    ctx = _context(account)
    path = template.format(
        pk=ctx["main"].pk,
        meter_id=ctx["main"].pk,
        place_id=ctx["place"].pk,
        estate_id=ctx["estate"].pk,
        billing_period_id=ctx["billing_period"].pk,
    )
    POPULATE[template](ctx, 1)
    api.get(path)  # warm per-process caches (content types, ...) before counting
    few_queries, few = _count(api, path)
    POPULATE[template](ctx, 49)
    many_queries, many = _count(api, path)
    assert many > few
    assert many_queries == few_queries, (template, few_queries, many_queries)
