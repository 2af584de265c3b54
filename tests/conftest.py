"""Fixtures shared by every test: accounts, keys, API and admin clients, one object of each
kind, the demo (on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from billing import services as billing_services
from billing.models import BillingPeriod, Charge, Tenant
from metering import admin_imports, domain, services
from metering.models import Account
from readings import periods
from readings import services as readings_services
from tests.demo import PASSWORD, load_demo
from tests.factories import (
    AccountFactory,
    AllocationRuleFactory,
    BillingPeriodFactory,
    EstateFactory,
    GatewayFactory,
    LeaseFactory,
    MembershipFactory,
    MeterFactory,
    MeterShareFactory,
    PlaceFactory,
    RegisterFactory,
    ServicePlaceFactory,
    TariffFactory,
    TenantFactory,
    UserFactory,
)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters live in the cache: each test starts with a clean one."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def account(db) -> Account:
    return AccountFactory(slug="acme", name="Acme")


@pytest.fixture
def other_account(db) -> Account:
    return AccountFactory(slug="other", name="Other")


@pytest.fixture
def make_client(db) -> Callable[..., APIClient]:
    """``make_client(account, scopes=...)``: an API client holding a new account key."""

    def make(account: Account, scopes: tuple[str, ...] | list[str] = domain.SCOPES) -> APIClient:
        _, raw = services.create_api_key(account=account, name="test", scopes=list(scopes))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.raw_key = raw
        return client

    return make


@pytest.fixture
def make_portal(db) -> Callable[[Tenant], APIClient]:
    """``make_portal(tenant)``: an API client holding a new portal key of the tenant."""

    def make(tenant: Tenant) -> APIClient:
        key, raw = billing_services.create_portal_key(tenant=tenant, name="tenant app")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.portal_key = key
        return client

    return make


@pytest.fixture
def api(account, make_client) -> APIClient:
    """A client with every scope on ``account``."""
    return make_client(account)


@pytest.fixture
def other_api(other_account, make_client) -> APIClient:
    """A client with every scope on ``other_account``."""
    return make_client(other_account)


# --- admin clients -------------------------------------------------------------------------


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def member(account):
    """``member(role, *accounts)``: a logged-in staff client with that role in each account."""

    def make(role: str = "MANAGER", *accounts: Account) -> Client:
        user = UserFactory(is_staff=True)
        for each in accounts or (account,):
            MembershipFactory(user=user, account=each, role=role)
        client = login(user)
        client.user = user
        return client

    return make


@pytest.fixture
def superuser_client(db) -> Client:
    return login(UserFactory(is_staff=True, is_superuser=True))


@pytest.fixture
def upload_dir(tmp_path, monkeypatch) -> pathlib.Path:
    """The admin import's uploads of this test, in a directory of its own."""
    directory = tmp_path / "uploads"
    monkeypatch.setattr(admin_imports, "UPLOAD_DIR", directory)
    return directory


# --- one object of each kind ---------------------------------------------------------------


@pytest.fixture
def world(account) -> dict:
    """One object of each kind the API serves, in ``account``, keyed by the name of the path
    parameter it fills (``meter`` for ``meter_id``; a model's snake-case name for ``pk``).

    An electricity meter with a gateway and a tariff is the main meter of an estate and has a
    sub-meter, a second register, six monthly readings and a period reading; a tenant leases
    the estate since 2020; a draft billing period, and a closed one with a charge of the lease.
    """
    place = PlaceFactory(account=account, code="P")
    estate = EstateFactory(place=place, code="E")
    service_place = ServicePlaceFactory(place=place)
    gateway = GatewayFactory(account=account, place=place)
    tariff = TariffFactory(account=account, meter_type="ELECTRICITY")
    meter = MeterFactory(
        account=account,
        estate=estate,
        place=place,
        meter_type="ELECTRICITY",
        is_main_meter=True,
        gateway=gateway,
        tariff=tariff,
    )
    sub_meter = MeterFactory(account=account, parent_meter=meter, meter_type="ELECTRICITY")
    register = RegisterFactory(meter=meter, code="1.8.1", tariff_slot="HT")
    actor = readings_services.Actor("test:world")
    now = timezone.now()
    readings = readings_services.create_readings(
        meter=meter,
        items=[
            readings_services.ReadingInput(
                reading_date=now - dt.timedelta(days=30 * (6 - n)), value=Decimal(100 * n)
            )
            for n in range(6)
        ],
        actor=actor,
    ).accepted
    period_reading = periods.create_period_readings(
        meter=meter,
        items=[
            periods.PeriodInput(
                start_date=dt.date(2024, 1, 1),
                end_date=dt.date(2024, 1, 31),
                consumption=Decimal(1),
            )
        ],
        actor=actor,
    ).accepted[0]
    tenant = TenantFactory(account=account, email="tenant@example.org")
    lease = LeaseFactory(estate=estate, tenant=tenant, start_date=dt.date(2020, 1, 1))
    draft = BillingPeriodFactory(place=place)
    closed = BillingPeriodFactory(
        place=place, start_date=dt.date(2023, 1, 1), end_date=dt.date(2023, 1, 31)
    )
    charge = Charge.objects.create(
        account=account,
        billing_period=closed,
        lease=lease,
        estate=estate,
        meter=meter,
        start_date=closed.start_date,
        end_date=closed.end_date,
        amount=Decimal("10.00"),
        total_amount=Decimal("12.00"),
    )
    BillingPeriod.objects.filter(pk=closed.pk).update(status=BillingPeriod.CLOSED)
    closed.refresh_from_db()
    return {
        "place": place,
        "estate": estate,
        "service_place": service_place,
        "gateway": gateway,
        "tariff": tariff,
        "meter": meter,
        "sub_meter": sub_meter,
        "register": register,
        "reading": readings[-1],
        "period_reading": period_reading,
        "tenant": tenant,
        "lease": lease,
        "meter_share": MeterShareFactory(
            meter=MeterFactory(account=account, place=place, billing_type="SHARED"), estate=estate
        ),
        "allocation_rule": AllocationRuleFactory(
            meter=MeterFactory(account=account, place=place, billing_type="COLLECTIVE")
        ),
        "billing_period": draft,
        "closed_period": closed,
        "charge": charge,
    }


# --- the demo ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_output(django_db_setup, django_db_blocker) -> list[str]:
    """What one ``load_demo`` (with ``tests.demo.PASSWORD``) printed: the demo of the module that
    asks, built once in a transaction rolled back after its last test. Each test reads it in
    its own savepoint inside that transaction (as with Django's ``setUpTestData``)."""
    with django_db_blocker.unblock(), transaction.atomic():
        output = load_demo(password=PASSWORD)
        # Check the deferred foreign keys once, here: checked inside each test's savepoint
        # (Django does at teardown), the check is rolled back with it and redone every time.
        connection.check_constraints()
        yield output
        transaction.set_rollback(True)
