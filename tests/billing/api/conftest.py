"""Objects the billing API tests share: a place with an estate, a lease, a period, charges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from billing.models import BillingPeriod, Charge, Lease
from metering.models import Estate, Meter, Place
from tests.factories import (
    BillingPeriodFactory,
    EstateFactory,
    LeaseFactory,
    MeterFactory,
    PlaceFactory,
    TenantFactory,
)


@pytest.fixture
def place(account) -> Place:
    return PlaceFactory(
        account=account, name="Résidence Bellecour", code="BEL", address_line1="2 rue X"
    )


@pytest.fixture
def estate(place) -> Estate:
    return EstateFactory(place=place, code="A12", name="Flat A12")


@pytest.fixture
def lease(estate, account) -> Lease:
    tenant = TenantFactory(account=account, name="Jeanne Martin", email="jeanne@example.org")
    return LeaseFactory(
        estate=estate, tenant=tenant, reference="BAIL-2024-07", start_date=dt.date(2023, 6, 1)
    )


@pytest.fixture
def meter(account, estate) -> Meter:
    return MeterFactory(
        account=account, estate=estate, name="Electricity A12", serial_number="E-A12"
    )


@pytest.fixture
def period(place) -> BillingPeriod:
    return BillingPeriodFactory(
        place=place,
        name="January 2024",
        start_date=dt.date(2024, 1, 1),
        end_date=dt.date(2024, 1, 31),
    )


@pytest.fixture
def make_charge() -> Callable[..., Charge]:
    """``make_charge(period, meter, lease, **fields)``: a charge line stored as compute would."""

    def make(period: BillingPeriod, meter: Meter, lease: Lease | None, **fields) -> Charge:
        values = {
            "account": period.account,
            "billing_period": period,
            "lease": lease,
            "estate": lease.estate if lease is not None else meter.estate,
            "is_vacancy": lease is None,
            "meter": meter,
            "register": meter.registers.get(is_default=True),
            "start_date": period.start_date,
            "end_date": period.end_date,
            "index_start": Decimal("1200.5"),
            "index_end": Decimal("1350.75"),
            "consumption": Decimal("150.25"),
            "unit": meter.unit,
            "unit_price": Decimal("0.2"),
            "share": Decimal(1),
            "basis": "",
            "amount": Decimal("30.05"),
            "vat_amount": Decimal("6.01"),
            "total_amount": Decimal("36.06"),
            **fields,
        }
        return Charge.objects.create(**values)

    return make
