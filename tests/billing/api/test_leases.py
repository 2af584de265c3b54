"""Leases (CONTRACT §5): dates, overlaps, the meters they are billed for, filters."""

from __future__ import annotations

import datetime as dt

import pytest

from billing.models import Lease
from tests.billing.api import assert_error
from tests.factories import (
    EstateFactory,
    LeaseFactory,
    MeterFactory,
    MeterShareFactory,
    PlaceFactory,
    TenantFactory,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/leases/"


def create(api, tenant, estate, **fields):
    body = {"tenant_id": tenant.pk, "estate_id": estate.pk, "start_date": "2024-01-01", **fields}
    return api.post(URL, body, format="json")


class TestCrud:
    def test_create_read_update_delete(self, api, account, estate):
        tenant = TenantFactory(account=account)
        response = create(api, tenant, estate, reference="BAIL-1", end_date="2024-12-31")
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert data["tenant_id"] == tenant.pk and data["estate_id"] == estate.pk
        assert (data["start_date"], data["end_date"]) == ("2024-01-01", "2024-12-31")
        assert data["reference"] == "BAIL-1"
        assert data["is_current"] is False
        lease = Lease.objects.get(pk=data["id"])
        assert lease.account == account and lease.end_date == dt.date(2024, 12, 31)

        assert api.get(f"{URL}{lease.pk}/").json()["data"] == data

        response = api.patch(f"{URL}{lease.pk}/", {"end_date": None}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["data"]["end_date"] is None
        assert response.json()["data"]["is_current"] is True
        lease.refresh_from_db()
        assert lease.end_date is None

        assert api.delete(f"{URL}{lease.pk}/").status_code == 204
        assert not Lease.objects.filter(pk=lease.pk).exists()

    @pytest.mark.parametrize("field", ["tenant_id", "estate_id", "start_date"])
    def test_required_fields(self, api, account, estate, field):
        body = {"tenant_id": TenantFactory(account=account).pk, "estate_id": estate.pk}
        body["start_date"] = "2024-01-01"
        del body[field]
        assert_error(api.post(URL, body, format="json"), 400, "validation_error", field)

    def test_end_before_start_is_a_400_on_end_date(self, api, account, estate):
        tenant = TenantFactory(account=account)
        response = create(api, tenant, estate, start_date="2024-05-01", end_date="2024-04-30")
        assert_error(response, 400, "validation_error", "end_date")
        assert not Lease.objects.exists()

    def test_one_day_lease_is_fine(self, api, account, estate):
        tenant = TenantFactory(account=account)
        response = create(api, tenant, estate, start_date="2024-05-01", end_date="2024-05-01")
        assert response.status_code == 201

    def test_overlapping_leases_of_one_estate_are_a_409_overlap(self, api, account, estate):
        LeaseFactory(estate=estate, start_date=dt.date(2024, 1, 1), end_date=dt.date(2024, 6, 30))
        tenant = TenantFactory(account=account)
        response = create(api, tenant, estate, start_date="2024-06-30")
        assert_error(response, 409, "overlap")
        assert Lease.objects.count() == 1
        # The day after is free; an ongoing lease then blocks every later one.
        assert create(api, tenant, estate, start_date="2024-07-01").status_code == 201
        assert_error(create(api, tenant, estate, start_date="2030-01-01"), 409, "overlap")

    def test_moving_a_lease_onto_another_is_a_409_overlap(self, api, account, estate):
        first = LeaseFactory(
            estate=estate, start_date=dt.date(2024, 1, 1), end_date=dt.date(2024, 6, 30)
        )
        second = LeaseFactory(estate=estate, start_date=dt.date(2024, 7, 1), end_date=None)
        response = api.patch(f"{URL}{second.pk}/", {"start_date": "2024-06-01"}, format="json")
        assert_error(response, 409, "overlap")
        second.refresh_from_db()
        assert second.start_date == dt.date(2024, 7, 1)
        # Changing the lease itself never clashes with its own days.
        response = api.patch(f"{URL}{first.pk}/", {"start_date": "2023-12-01"}, format="json")
        assert response.status_code == 200, response.json()

    def test_other_estates_do_not_clash(self, api, account, estate):
        LeaseFactory(estate=estate, start_date=dt.date(2024, 1, 1))
        other = EstateFactory(place=estate.place)
        assert create(api, TenantFactory(account=account), other).status_code == 201

    def test_lease_with_charges_cannot_be_deleted(self, api, lease, meter, period, make_charge):
        make_charge(period, meter, lease)
        assert_error(api.delete(f"{URL}{lease.pk}/"), 409, "conflict")
        assert Lease.objects.filter(pk=lease.pk).exists()


@pytest.mark.parametrize("field", ["tenant_id", "estate_id"])
def test_reference_to_another_accounts_object_is_a_400_on_that_field(
    field, api, account, other_account, estate
):
    body = {
        "tenant_id": TenantFactory(account=account).pk,
        "estate_id": estate.pk,
        "start_date": "2024-01-01",
    }
    foreign = {
        "tenant_id": TenantFactory(account=other_account),
        "estate_id": EstateFactory(place=PlaceFactory(account=other_account)),
    }
    body[field] = foreign[field].pk
    assert_error(api.post(URL, body, format="json"), 400, "validation_error", field)
    lease = LeaseFactory(estate=estate)
    response = api.patch(f"{URL}{lease.pk}/", {field: foreign[field].pk}, format="json")
    assert_error(response, 400, "validation_error", field)
    lease.refresh_from_db()
    assert (lease.tenant.account, lease.estate) == (account, estate)


class TestMeters:
    def test_meters_the_lease_is_billed_for(self, api, account, place, estate):
        individual = MeterFactory(account=account, estate=estate, serial_number="IND-1")
        MeterFactory(account=account, estate=EstateFactory(place=place))  # another lot's
        collective = MeterFactory(
            account=account, place=place, billing_type="COLLECTIVE", serial_number="COL-1"
        )
        shared = MeterFactory(
            account=account, place=place, billing_type="SHARED", serial_number="SHA-1"
        )
        MeterShareFactory(meter=shared, estate=estate)
        unshared = MeterFactory(account=account, place=place, billing_type="SHARED")
        MeterShareFactory(meter=unshared, estate=EstateFactory(place=place))
        lease = LeaseFactory(estate=estate)

        expected = [
            {
                "id": meter.pk,
                "serial_number": meter.serial_number,
                "name": meter.name,
                "meter_type": "ELECTRICITY",
                "billing_type": meter.billing_type,
            }
            for meter in (individual, collective, shared)
        ]
        assert api.get(f"{URL}{lease.pk}/").json()["data"]["meters"] == expected
        (listed,) = api.get(URL).json()["data"]
        assert listed["meters"] == expected

    def test_meters_are_read_only(self, api, account, estate):
        lease = LeaseFactory(estate=estate)
        response = api.patch(f"{URL}{lease.pk}/", {"meters": [{"id": 1}]}, format="json")
        assert response.status_code == 200
        assert response.json()["data"]["meters"] == []


class TestFilters:
    def test_filters(self, api, account, place, estate):
        tenant = TenantFactory(account=account)
        today = account.today()
        current = LeaseFactory(estate=estate, tenant=tenant, start_date=today)
        other_place = PlaceFactory(account=account)
        past = LeaseFactory(
            estate=EstateFactory(place=other_place),
            start_date=today - dt.timedelta(days=60),
            end_date=today - dt.timedelta(days=1),
        )

        def ids(query: str) -> list[int]:
            response = api.get(f"{URL}?{query}")
            assert response.status_code == 200, response.json()
            return [lease["id"] for lease in response.json()["data"]]

        assert ids(f"tenant_id={tenant.pk}") == [current.pk]
        assert ids(f"estate_id={estate.pk}") == [current.pk]
        assert ids(f"place_id={other_place.pk}") == [past.pk]
        assert ids("is_current=true") == [current.pk]
        assert ids("is_current=false") == [past.pk]
        assert ids(f"search={current.reference}") == [current.pk]
        assert ids("ordering=-start_date") == [current.pk, past.pk]

    @pytest.mark.parametrize("query", ["is_current=yes", "tenant_id=abc", "place_id=1.5"])
    def test_malformed_filters_are_a_400(self, api, query):
        assert_error(api.get(f"{URL}?{query}"), 400, "validation_error")
