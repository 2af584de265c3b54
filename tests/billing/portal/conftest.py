"""A tenant with a current lease and its meters, another tenant beside it, portal clients."""

from __future__ import annotations

import datetime as dt
import io
import pathlib
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from billing.models import BillingPeriod, Charge, Lease, Tenant
from metering.models import Estate, Meter, Place
from tests.factories import (
    BillingPeriodFactory,
    EstateFactory,
    LeaseFactory,
    MeterFactory,
    MeterShareFactory,
    PlaceFactory,
    TenantFactory,
)


@pytest.fixture
def place(account) -> Place:
    return PlaceFactory(account=account, name="Résidence Bellecour", code="BEL")


@pytest.fixture
def estate(place) -> Estate:
    return EstateFactory(place=place, code="A12", name="Flat A12")


@pytest.fixture
def tenant(account) -> Tenant:
    return TenantFactory(
        account=account, name="Jeanne Martin", email="jeanne@example.org", phone="+33 4 00"
    )


@pytest.fixture
def lease(estate, tenant) -> Lease:
    return LeaseFactory(
        estate=estate, tenant=tenant, reference="BAIL-A12", start_date=dt.date(2023, 6, 1)
    )


@pytest.fixture
def meter(account, estate, lease) -> Meter:
    """The lease's electricity meter, read by hand."""
    return MeterFactory(
        account=account, estate=estate, name="Electricity A12", serial_number="E-A12"
    )


@pytest.fixture
def portal(tenant, make_portal) -> APIClient:
    return make_portal(tenant)


@pytest.fixture
def neighbour(account, place):
    """Another tenant of the same building, with its own lease, meter and statement."""
    estate = EstateFactory(place=place, code="B07", name="Flat B07")
    tenant = TenantFactory(account=account, name="Paul Durand")
    lease = LeaseFactory(estate=estate, tenant=tenant, start_date=dt.date(2022, 1, 1))
    meter = MeterFactory(account=account, estate=estate, serial_number="E-B07")
    return {"tenant": tenant, "lease": lease, "meter": meter, "estate": estate}


@pytest.fixture
def closed_period(place) -> BillingPeriod:
    period = BillingPeriodFactory(
        place=place,
        name="Q1 2024",
        start_date=dt.date(2024, 1, 1),
        end_date=dt.date(2024, 3, 31),
    )
    BillingPeriod.objects.filter(pk=period.pk).update(status=BillingPeriod.CLOSED)
    period.refresh_from_db()
    return period


def charge(period: BillingPeriod, meter: Meter, lease: Lease, amount: str, vat: str) -> Charge:
    """A line of ``lease`` as ``compute`` stores it."""
    return Charge.objects.create(
        account=period.account,
        billing_period=period,
        lease=lease,
        estate=lease.estate,
        meter=meter,
        register=meter.registers.get(is_default=True),
        start_date=period.start_date,
        end_date=period.end_date,
        consumption=Decimal(100),
        unit=meter.unit,
        unit_price=Decimal("0.2"),
        amount=Decimal(amount),
        vat_amount=Decimal(vat),
        total_amount=Decimal(amount) + Decimal(vat),
    )


def shared_meter(account, place, *estates) -> Meter:
    meter = MeterFactory(account=account, place=place, billing_type="SHARED", meter_type="WATER")
    for estate in estates:
        MeterShareFactory(meter=meter, estate=estate)
    return meter


@pytest.fixture
def media_root(settings, tmp_path) -> pathlib.Path:
    """A storage directory of the test's own, to see exactly what it stored."""
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def stored_files(root: pathlib.Path) -> list[pathlib.Path]:
    """Every file stored under ``root``, sorted."""
    return sorted(path for path in root.rglob("*") if path.is_file())


def image_bytes(image_format: str, size: tuple[int, int] = (4, 3)) -> bytes:
    """A small image made with Pillow, in ``image_format`` (PNG, JPEG, GIF...)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=image_format)
    return buffer.getvalue()


def photo_file(
    image_format: str = "PNG", name: str = "meter.png", content_type: str = "image/png"
) -> SimpleUploadedFile:
    """An upload of a small image in ``image_format``, named and typed as the client says."""
    return SimpleUploadedFile(name, image_bytes(image_format), content_type=content_type)
