"""Billing periods through the API (CONTRACT §5): CRUD, compute, close, charges."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest

from billing.models import BillingPeriod, Charge
from readings import services as readings_services
from readings.domain import local_midnight
from tests.billing.api import assert_error
from tests.factories import BillingPeriodFactory, MeterFactory, PlaceFactory, TariffFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/billing-periods/"


def close(period: BillingPeriod) -> None:
    BillingPeriod.objects.filter(pk=period.pk).update(status=BillingPeriod.CLOSED)


class TestCrud:
    def test_create_read_update_delete(self, api, account, place):
        body = {"place_id": place.pk, "name": "Q1 2024", "start_date": "2024-01-01"}
        body["end_date"] = "2024-03-31"
        response = api.post(URL, {**body, "status": "CLOSED", "total_amount": 5}, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert {key: data[key] for key in body} == body
        assert data["days"] == 91
        assert data["status"] == "DRAFT"  # read-only: the body's is ignored
        assert data["issues"] == [] and data["total_amount"] is None
        assert data["currency"] == "EUR"
        assert data["computed_at"] is None and data["closed_at"] is None
        assert data["closed_by"] == ""
        period = BillingPeriod.objects.get(pk=data["id"])
        assert (period.account, period.status, period.days) == (account, "DRAFT", 91)

        assert api.get(f"{URL}{period.pk}/").json()["data"] == data
        response = api.patch(f"{URL}{period.pk}/", {"end_date": "2024-01-31"}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["data"]["days"] == 31
        assert api.delete(f"{URL}{period.pk}/").status_code == 204
        assert not BillingPeriod.objects.exists()

    def test_changing_a_draft_drops_its_charges(self, api, lease, meter, period, make_charge):
        make_charge(period, meter, lease)
        BillingPeriod.objects.filter(pk=period.pk).update(total_amount=Decimal("36.06"))
        response = api.patch(f"{URL}{period.pk}/", {"name": "Janvier"}, format="json")
        assert response.status_code == 200
        assert response.json()["data"]["total_amount"] is None
        assert not Charge.objects.exists()

    def test_deleting_a_draft_deletes_its_charges(self, api, lease, meter, period, make_charge):
        make_charge(period, meter, lease)
        assert api.delete(f"{URL}{period.pk}/").status_code == 204
        assert not Charge.objects.exists()

    @pytest.mark.parametrize(
        ("dates", "field"),
        [
            ({"start_date": "2024-02-01", "end_date": "2024-01-31"}, "end_date"),
            ({"start_date": "2024-01-01", "end_date": "2026-01-03"}, "end_date"),
            ({"start_date": "2024-13-01", "end_date": "2024-01-31"}, "start_date"),
        ],
    )
    def test_invalid_dates_are_a_400(self, api, place, dates, field):
        body = {"place_id": place.pk, "name": "p", **dates}
        assert_error(api.post(URL, body, format="json"), 400, "validation_error", field)
        assert not BillingPeriod.objects.exists()

    def test_place_of_another_account_is_a_400_on_place_id(self, api, other_account):
        place = PlaceFactory(account=other_account)
        body = {"place_id": place.pk, "name": "p", "start_date": "2024-01-01"}
        body["end_date"] = "2024-01-31"
        assert_error(api.post(URL, body, format="json"), 400, "validation_error", "place_id")
        assert not BillingPeriod.objects.exists()

    def test_drafts_may_overlap(self, api, place, period):
        body = {"place_id": place.pk, "name": "again", "start_date": "2024-01-15"}
        body["end_date"] = "2024-02-15"
        assert api.post(URL, body, format="json").status_code == 201

    def test_filters_and_ordering(self, api, account, place, period):
        other = BillingPeriodFactory(
            place=PlaceFactory(account=account),
            start_date=dt.date(2024, 2, 1),
            end_date=dt.date(2024, 2, 29),
        )
        close(other)
        ids = lambda q: [p["id"] for p in api.get(f"{URL}?{q}").json()["data"]]  # noqa: E731
        assert ids("") == [other.pk, period.pk]  # latest first
        assert ids("ordering=start_date") == [period.pk, other.pk]
        assert ids(f"place_id={place.pk}") == [period.pk]
        assert ids("status=CLOSED") == [other.pk]
        assert ids("status=DRAFT") == [period.pk]
        assert ids("search=january") == [period.pk]
        assert_error(api.get(f"{URL}?status=OPEN"), 400, "validation_error", "status")


class TestClosedPeriods:
    def test_closed_period_cannot_change_nor_be_deleted_nor_computed(
        self, api, lease, meter, period, make_charge
    ):
        charge = make_charge(period, meter, lease)
        close(period)
        path = f"{URL}{period.pk}/"
        assert_error(api.patch(path, {"name": "x"}, format="json"), 409, "conflict")
        body = {"place_id": period.place_id, "name": "x", "start_date": "2024-01-01"}
        body["end_date"] = "2024-01-31"
        assert_error(api.put(path, body, format="json"), 409, "conflict")
        assert_error(api.delete(path), 409, "conflict")
        assert_error(api.post(f"{path}compute/"), 409, "conflict")
        assert_error(api.post(f"{path}close/", {"force": True}, format="json"), 409, "conflict")
        period.refresh_from_db()
        assert (period.name, period.status) == ("January 2024", "CLOSED")
        assert list(Charge.objects.all()) == [charge]

    def test_place_with_periods_cannot_be_deleted(self, api, place, period):
        assert_error(api.delete(f"/api/v1/places/{place.pk}/"), 409, "conflict")


class TestComputeAndClose:
    """A meter read 1000 → 1100 kWh over January, at 0.20 + 20 % VAT: 20.00 + 4.00 = 24.00."""

    @pytest.fixture
    def billed(self, account, lease, meter, period):
        TariffFactory(account=account, unit_price=Decimal("0.20"), vat_rate=Decimal("0.20"))
        zone = zoneinfo.ZoneInfo(account.timezone)
        items = [
            readings_services.ReadingInput(
                reading_date=local_midnight(day, zone), value=Decimal(value)
            )
            for day, value in ((dt.date(2024, 1, 1), 1000), (dt.date(2024, 2, 1), 1100))
        ]
        result = readings_services.create_readings(
            meter=meter, items=items, actor=readings_services.Actor("test")
        )
        assert not result.errors
        return period

    def test_compute_writes_the_charges_and_answers_the_period(self, api, billed, lease, meter):
        response = api.post(f"{URL}{billed.pk}/compute/")
        assert response.status_code == 200, response.json()
        data = response.json()["data"]
        assert data["id"] == billed.pk and data["status"] == "DRAFT"
        assert data["total_amount"] == 24.0
        assert data["issues"] == []
        assert data["computed_at"].endswith("Z")
        (charge,) = Charge.objects.filter(billing_period=billed)
        assert (charge.lease, charge.meter, charge.consumption) == (lease, meter, 100)
        assert (charge.amount, charge.vat_amount, charge.total_amount) == (
            Decimal("20.00"),
            Decimal("4.00"),
            Decimal("24.00"),
        )

        # Computing again replaces the lines.
        assert api.post(f"{URL}{billed.pk}/compute/").status_code == 200
        assert Charge.objects.filter(billing_period=billed).count() == 1

    def test_close_freezes_the_period_and_records_who(self, api, billed):
        response = api.post(f"{URL}{billed.pk}/close/", {}, format="json")
        assert response.status_code == 200, response.json()
        data = response.json()["data"]
        assert data["status"] == "CLOSED" and data["total_amount"] == 24.0
        assert data["closed_at"].endswith("Z")
        assert data["closed_by"].startswith("test (mtr_")  # the key's name and prefix
        billed.refresh_from_db()
        assert billed.status == "CLOSED" and billed.closed_by == data["closed_by"]
        assert Charge.objects.filter(billing_period=billed).count() == 1

    def test_close_with_issues_needs_force(self, api, place, meter, billed):
        february = BillingPeriodFactory(
            place=place, start_date=dt.date(2024, 2, 1), end_date=dt.date(2024, 2, 29)
        )
        path = f"{URL}{february.pk}/close/"
        error = assert_error(api.post(path, {}, format="json"), 409, "conflict")
        assert error["details"]["issues"][0]["meter_id"] == meter.pk
        february.refresh_from_db()
        assert february.status == "DRAFT"

        response = api.post(path, {"force": True}, format="json")
        assert response.status_code == 200, response.json()
        data = response.json()["data"]
        assert data["status"] == "CLOSED"
        assert [issue["meter_id"] for issue in data["issues"]] == [meter.pk]

    @pytest.mark.parametrize("force", ["yes", 1, "true", None, [True]])
    def test_force_must_be_a_boolean(self, api, billed, force):
        response = api.post(f"{URL}{billed.pk}/close/", {"force": force}, format="json")
        assert_error(response, 400, "validation_error", "force")
        billed.refresh_from_db()
        assert billed.status == "DRAFT"

    def test_reading_only_keys_cannot_compute_nor_close(self, account, make_client, billed):
        reader = make_client(account, scopes=["billing:read", "readings:write"])
        for action in ("compute", "close"):
            response = reader.post(f"{URL}{billed.pk}/{action}/", {}, format="json")
            assert_error(response, 403, "insufficient_scope")
        assert not Charge.objects.exists()


class TestCharges:
    def test_lines_of_the_period_with_every_field(
        self, api, account, lease, meter, period, make_charge
    ):
        charge = make_charge(period, meter, lease, basis="shares 120/1000", is_estimated=True)
        make_charge(BillingPeriodFactory(place=period.place), meter, lease)  # another period
        response = api.get(f"{URL}{period.pk}/charges/")
        assert response.status_code == 200
        body = response.json()
        assert body["meta"]["total"] == 1
        (data,) = body["data"]
        register = meter.registers.get(is_default=True)
        assert data == {
            "id": charge.pk,
            "account_id": str(account.pk),
            "billing_period_id": period.pk,
            "lease_id": lease.pk,
            "is_vacancy": False,
            "estate_id": lease.estate_id,
            "meter_id": meter.pk,
            "register_id": register.pk,
            "tariff_id": None,
            "start_date": "2024-01-01",
            "end_date": "2024-01-31",
            "index_start": 1200.5,
            "index_end": 1350.75,
            "consumption": 150.25,
            "unit": "kWh",
            "unit_price": 0.2,
            "share": 1.0,
            "basis": "shares 120/1000",
            "amount": 30.05,
            "vat_amount": 6.01,
            "total_amount": 36.06,
            "is_estimated": True,
            "is_included": False,
            "created_at": data["created_at"],
            "updated_at": data["updated_at"],
        }

    def test_filters(self, api, account, lease, meter, period, make_charge):
        mine = make_charge(period, meter, lease)
        vacancy = make_charge(period, meter, None)
        other_meter = MeterFactory(account=account, estate=lease.estate)
        other = make_charge(period, other_meter, lease)
        path = f"{URL}{period.pk}/charges/"
        ids = lambda q: [c["id"] for c in api.get(f"{path}?{q}").json()["data"]]  # noqa: E731
        assert ids("") == [mine.pk, vacancy.pk, other.pk]
        assert ids(f"lease_id={lease.pk}") == [mine.pk, other.pk]
        assert ids(f"meter_id={other_meter.pk}") == [other.pk]
        assert ids("is_vacancy=true") == [vacancy.pk]
        assert ids("is_vacancy=false") == [mine.pk, other.pk]
        assert ids("ordering=-id&per_page=1") == [other.pk]
        assert_error(api.get(f"{path}?is_vacancy=maybe"), 400, "validation_error", "is_vacancy")

    def test_charges_are_read_only(self, api, lease, meter, period, make_charge):
        charge = make_charge(period, meter, lease)
        path = f"{URL}{period.pk}/charges/"
        assert_error(api.post(path, {"amount": 1}, format="json"), 405, "method_not_allowed")
        assert_error(api.delete(f"{path}{charge.pk}/"), 404, "not_found")

    def test_period_of_another_account_is_a_404(self, api, other_account):
        period = BillingPeriodFactory(place=PlaceFactory(account=other_account))
        assert_error(api.get(f"{URL}{period.pk}/charges/"), 404, "not_found")
