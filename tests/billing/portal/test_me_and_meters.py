"""``me/`` and ``meters/``: the tenant, its leases, the meters of its current leases (§6)."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest

from tests.billing.portal.conftest import shared_meter
from tests.factories import (
    EstateFactory,
    LeaseFactory,
    MeterFactory,
    PlaceFactory,
    RegisterFactory,
)

pytestmark = pytest.mark.django_db


def test_me_shows_the_tenant_and_all_its_leases(portal, tenant, lease, estate, place, account):
    old_estate = EstateFactory(place=place, code="A01", name="Flat A01")
    old = LeaseFactory(
        estate=old_estate,
        tenant=tenant,
        reference="OLD",
        start_date=dt.date(2019, 1, 1),
        end_date=dt.date(2023, 5, 31),
    )
    response = portal.get("/api/v1/portal/me/")
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "id": tenant.pk,
            "name": "Jeanne Martin",
            "email": "jeanne@example.org",
            "phone": "+33 4 00",
            "external_reference": "",
            "leases": [
                {
                    "id": old.pk,
                    "reference": "OLD",
                    "estate": {
                        "id": old_estate.pk,
                        "code": "A01",
                        "name": "Flat A01",
                        "place": {"id": place.pk, "code": "BEL", "name": "Résidence Bellecour"},
                    },
                    "start_date": "2019-01-01",
                    "end_date": "2023-05-31",
                    "is_current": False,
                },
                {
                    "id": lease.pk,
                    "reference": "BAIL-A12",
                    "estate": {
                        "id": estate.pk,
                        "code": "A12",
                        "name": "Flat A12",
                        "place": {"id": place.pk, "code": "BEL", "name": "Résidence Bellecour"},
                    },
                    "start_date": "2023-06-01",
                    "end_date": None,
                    "is_current": True,
                },
            ],
        }
    }


def test_meters_of_the_current_leases_by_billing_kind(
    portal, account, place, estate, meter, neighbour
):
    """Its estate's meters (INDIVIDUAL, INCLUDED), the SHARED ones it has a share of, the
    COLLECTIVE ones of its building; not the neighbour's, nor another building's."""
    included = MeterFactory(account=account, estate=estate, billing_type="INCLUDED")
    shared = shared_meter(account, place, estate, neighbour["estate"])
    not_shared = shared_meter(account, place, neighbour["estate"])
    collective = MeterFactory(account=account, place=place, billing_type="COLLECTIVE")
    elsewhere = PlaceFactory(account=account)
    MeterFactory(account=account, place=elsewhere, billing_type="COLLECTIVE")
    body = portal.get("/api/v1/portal/meters/").json()
    ids = [row["id"] for row in body["data"]]
    assert ids == sorted([meter.pk, included.pk, shared.pk, collective.pk])
    assert not_shared.pk not in ids
    assert body["meta"] == {"total": 4, "page": 1, "per_page": 50, "total_pages": 1}


def test_meter_representation(portal, meter, account):
    register = RegisterFactory(meter=meter, code="1.8.1", name="HT", tariff_slot="HT")
    default = meter.registers.get(is_default=True)
    data = portal.get(f"/api/v1/portal/meters/{meter.pk}/").json()["data"]
    assert data == {
        "id": meter.pk,
        "name": "Electricity A12",
        "serial_number": "E-A12",
        "meter_type": "ELECTRICITY",
        "unit": "kWh",
        "billing_type": "INDIVIDUAL",
        "communication_type": "NONE",
        "status": "ACTIVE",
        "precision_digits": 3,
        "last_reading_value": None,
        "last_reading_at": None,
        "registers": [
            {
                "id": default.pk,
                "code": "default",
                "name": default.name,
                "unit": default.unit,
                "tariff_slot": None,
                "is_default": True,
            },
            {
                "id": register.pk,
                "code": "1.8.1",
                "name": "HT",
                "unit": "kWh",
                "tariff_slot": "HT",
                "is_default": False,
            },
        ],
    }


def test_search_and_ordering(portal, account, estate, meter):
    MeterFactory(account=account, estate=estate, name="Water A12", serial_number="W-A12")
    rows = portal.get("/api/v1/portal/meters/?search=water").json()["data"]
    assert [row["serial_number"] for row in rows] == ["W-A12"]
    rows = portal.get("/api/v1/portal/meters/?ordering=-serial_number").json()["data"]
    assert [row["serial_number"] for row in rows] == ["W-A12", "E-A12"]
    response = portal.get("/api/v1/portal/meters/?ordering=multiplier")
    assert response.status_code == 400


class TestCurrentLease:
    """A lease is current when start_date ≤ today ≤ end_date (or no end), today in the
    account's time zone (CONTRACT §6)."""

    @pytest.fixture
    def tenant_lease(self, account, estate, meter, lease):
        lease.end_date = dt.date(2024, 6, 30)
        lease.save()
        return lease

    @pytest.mark.parametrize(
        ("today", "current"),
        [
            (dt.date(2023, 5, 31), False),
            (dt.date(2023, 6, 1), True),
            (dt.date(2024, 6, 30), True),
            (dt.date(2024, 7, 1), False),
        ],
    )
    def test_bounds_are_included(self, portal, tenant_lease, meter, today, current):
        with mock.patch("metering.models.Account.today", return_value=today):
            total = portal.get("/api/v1/portal/meters/").json()["meta"]["total"]
            leases = portal.get("/api/v1/portal/me/").json()["data"]["leases"]
        assert total == (1 if current else 0)
        assert leases[0]["is_current"] is current

    def test_today_is_the_accounts(self, portal, tenant_lease, meter, account):
        # 2024-06-30 23:30 UTC is already 2024-07-01 in Paris: the lease has ended there.
        account.timezone = "Europe/Paris"
        account.save()
        moment = dt.datetime(2024, 6, 30, 23, 30, tzinfo=dt.UTC)
        with mock.patch("django.utils.timezone.now", return_value=moment):
            assert portal.get("/api/v1/portal/meters/").json()["meta"]["total"] == 0
        account.timezone = "America/New_York"
        account.save()
        with mock.patch("django.utils.timezone.now", return_value=moment):
            assert portal.get("/api/v1/portal/meters/").json()["meta"]["total"] == 1
