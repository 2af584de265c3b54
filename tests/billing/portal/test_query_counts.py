"""Every portal list runs the same number of queries for 1 row and for 50 (STYLE rule 2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from readings import services as readings_services
from tests.api_routes import api_routes
from tests.billing.portal.conftest import charge, shared_meter
from tests.factories import BillingPeriodFactory, EstateFactory, MeterFactory, RegisterFactory

pytestmark = pytest.mark.django_db


def _meters(ctx, n):
    """Meters of every kind a lease is billed for, each with a second register."""
    account, place, estate = ctx["account"], ctx["place"], ctx["estate"]
    for i in range(n):
        kind = i % 3
        if kind == 0:
            meter = MeterFactory(account=account, estate=estate)
        elif kind == 1:
            meter = shared_meter(account, place, estate, EstateFactory(place=place))
        else:
            meter = MeterFactory(account=account, place=place, billing_type="COLLECTIVE")
        RegisterFactory(meter=meter)


def _readings(ctx, n):
    meter = ctx["meter"]
    start = meter.readings.count()
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    items = [
        readings_services.ReadingInput(
            reading_date=base + dt.timedelta(days=start + i), value=Decimal(10 * (start + i))
        )
        for i in range(n)
    ]
    readings_services.create_readings(
        meter=meter, items=items, actor=readings_services.Actor("t", "PORTAL")
    )


def _statements(ctx, n):
    done = ctx["place"].billing_periods.count()
    for i in range(done, done + n):
        # Closed periods of a place never overlap: one day each.
        first = dt.date(2000, 1, 1) + dt.timedelta(days=i)
        period = BillingPeriodFactory(
            place=ctx["place"], status="CLOSED", start_date=first, end_date=first
        )
        charge(period, ctx["meter"], ctx["lease"], "10.00", "2.00")
        charge(period, ctx["meter"], ctx["lease"], "1.00", "0.20")


POPULATE: dict[str, Callable[[dict, int], None]] = {
    "/api/v1/portal/meters/": _meters,
    "/api/v1/portal/meters/{meter_id}/readings/": _readings,
    "/api/v1/portal/statements/": _statements,
}


def test_every_portal_list_route_has_a_query_count_test():
    portal_lists = {
        route.template for route in api_routes() if route.is_list and "/portal/" in route.template
    }
    assert portal_lists == set(POPULATE)


def _count(client, path: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.content[:300]
    return len(queries), response.json()["meta"]["total"]


@pytest.mark.parametrize("template", sorted(POPULATE))
def test_same_number_of_queries_for_1_and_50_rows(
    template, account, place, estate, lease, meter, portal
):
    ctx = {"account": account, "place": place, "estate": estate, "lease": lease, "meter": meter}
    path = template.format(meter_id=meter.pk)
    POPULATE[template](ctx, 1)
    portal.get(path)  # warm per-process caches before counting
    few_queries, few = _count(portal, path)
    POPULATE[template](ctx, 49)
    many_queries, many = _count(portal, path)
    assert many > few
    assert many_queries == few_queries, (template, few_queries, many_queries)
