"""``statements/``: the tenant's statements of closed periods (CONTRACT §5, §6), and
``meters/{id}/consumption/`` as the account API computes it."""

from __future__ import annotations

import datetime as dt

import pytest

from billing.models import BillingPeriod
from tests.billing.api import assert_error
from tests.billing.portal.conftest import charge
from tests.factories import BillingPeriodFactory, EstateFactory, LeaseFactory, MeterFactory
from tests.readings.conftest import add

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(place):
    return BillingPeriodFactory(
        place=place, name="Q2 2024", start_date=dt.date(2024, 4, 1), end_date=dt.date(2024, 6, 30)
    )


@pytest.fixture
def older(place):
    period = BillingPeriodFactory(
        place=place, name="Q4 2023", start_date=dt.date(2023, 10, 1), end_date=dt.date(2023, 12, 31)
    )
    BillingPeriod.objects.filter(pk=period.pk).update(status=BillingPeriod.CLOSED)
    return period


def path(period, lease, query: str = "") -> str:
    return f"/api/v1/portal/statements/{period.pk}/{lease.pk}/{query}"


class TestList:
    def test_one_per_closed_period_and_lease_with_lines_newest_first(
        self, portal, account, tenant, place, lease, meter, closed_period, older, draft, neighbour
    ):
        water = MeterFactory(account=account, estate=lease.estate, meter_type="WATER")
        charge(closed_period, meter, lease, "30.05", "6.01")
        charge(closed_period, water, lease, "12.00", "1.20")
        charge(older, meter, lease, "20.00", "4.00")
        charge(draft, meter, lease, "99.00", "0.00")  # a draft: not shown
        charge(closed_period, neighbour["meter"], neighbour["lease"], "5.00", "1.00")
        # A former lease of the tenant, elsewhere in the building, with lines in Q1.
        former = LeaseFactory(
            estate=EstateFactory(place=place),
            tenant=tenant,
            reference="OLD",
            start_date=dt.date(2020, 1, 1),
            end_date=dt.date(2024, 1, 15),
        )
        charge(closed_period, meter, former, "3.00", "0.60")
        body = portal.get("/api/v1/portal/statements/").json()
        assert body["meta"]["total"] == 3
        assert body["data"] == [
            {
                "billing_period": {
                    "id": closed_period.pk,
                    "name": "Q1 2024",
                    "start_date": "2024-01-01",
                    "end_date": "2024-03-31",
                },
                "lease": {"id": lease.pk, "reference": "BAIL-A12"},
                "amount": 42.05,
                "vat_amount": 7.21,
                "total_amount": 49.26,
                "currency": "EUR",
            },
            {
                "billing_period": {
                    "id": closed_period.pk,
                    "name": "Q1 2024",
                    "start_date": "2024-01-01",
                    "end_date": "2024-03-31",
                },
                "lease": {"id": former.pk, "reference": "OLD"},
                "amount": 3.0,
                "vat_amount": 0.6,
                "total_amount": 3.6,
                "currency": "EUR",
            },
            {
                "billing_period": {
                    "id": older.pk,
                    "name": "Q4 2023",
                    "start_date": "2023-10-01",
                    "end_date": "2023-12-31",
                },
                "lease": {"id": lease.pk, "reference": "BAIL-A12"},
                "amount": 20.0,
                "vat_amount": 4.0,
                "total_amount": 24.0,
                "currency": "EUR",
            },
        ]

    def test_pages(self, portal, lease, meter, closed_period, older):
        charge(closed_period, meter, lease, "1.00", "0.00")
        charge(older, meter, lease, "1.00", "0.00")
        body = portal.get("/api/v1/portal/statements/?per_page=1&page=2").json()
        assert body["meta"] == {"total": 2, "page": 2, "per_page": 1, "total_pages": 2}
        assert body["data"][0]["billing_period"]["id"] == older.pk


class TestStatement:
    @pytest.fixture
    def lines(self, closed_period, meter, lease):
        return [charge(closed_period, meter, lease, "30.05", "6.01")]

    def test_json_is_the_account_apis_statement(self, portal, api, closed_period, lease, lines):
        mine = portal.get(path(closed_period, lease))
        assert mine.status_code == 200
        account_view = api.get(
            f"/api/v1/billing-periods/{closed_period.pk}/statements/{lease.pk}/"
        ).json()
        assert mine.json() == account_view
        data = mine.json()["data"]
        assert data["total_amount"] == 36.06 and len(data["lines"]) == 1
        assert data["lease"]["tenant"]["name"] == "Jeanne Martin"

    def test_csv_and_html(self, portal, api, closed_period, lease, lines):
        csv = portal.get(path(closed_period, lease, "?format=csv"))
        assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
        assert csv["Content-Disposition"].startswith('attachment; filename="statement-q1-2024-')
        account_csv = api.get(
            f"/api/v1/billing-periods/{closed_period.pk}/statements/{lease.pk}/?format=csv"
        )
        assert csv.content == account_csv.content
        html = portal.get(path(closed_period, lease, "?format=html"))
        assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
        assert "BAIL-A12" in html.content.decode()
        assert_error(portal.get(path(closed_period, lease, "?format=pdf")), 400, "validation_error")

    def test_a_draft_period_is_404(self, portal, draft, meter, lease):
        charge(draft, meter, lease, "10.00", "2.00")
        for query in ("", "?format=csv", "?format=html"):
            assert_error(portal.get(path(draft, lease, query)), 404, "not_found")

    def test_a_closed_period_without_lines_of_the_lease_is_404(
        self, portal, closed_period, lease, neighbour
    ):
        charge(closed_period, neighbour["meter"], neighbour["lease"], "5.00", "1.00")
        assert_error(portal.get(path(closed_period, lease)), 404, "not_found")

    def test_an_unknown_period_is_404(self, portal, lease):
        assert_error(portal.get(f"/api/v1/portal/statements/999999/{lease.pk}/"), 404, "not_found")


class TestConsumption:
    def test_as_the_account_api_computes_it(self, portal, api, meter):
        add(meter, (0, 100), (10, 200), (40, 500))
        query = "?start=2024-01-01&end=2024-02-29&granularity=month"
        mine = portal.get(f"/api/v1/portal/meters/{meter.pk}/consumption/{query}")
        theirs = api.get(f"/api/v1/meters/{meter.pk}/consumption/{query}")
        assert mine.status_code == 200
        assert mine.json() == theirs.json()
        assert [bucket["period_start"] for bucket in mine.json()["data"]] == [
            "2024-01-01",
            "2024-02-01",
        ]

    def test_parameters_are_checked_as_there(self, portal, meter):
        response = portal.get(f"/api/v1/portal/meters/{meter.pk}/consumption/?start=2024-01-01")
        assert_error(response, 400, "validation_error", "end")
        response = portal.get(
            f"/api/v1/portal/meters/{meter.pk}/consumption/"
            "?start=2024-01-01&end=2024-01-31&register_id=999999"
        )
        assert_error(response, 400, "validation_error", "register_id")
