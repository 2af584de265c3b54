"""A lease's statement for a period (CONTRACT §5): JSON, CSV and a printable HTML page."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest

from billing import selectors, statements
from billing.api.serializers import StatementSerializer
from tests.billing.api import assert_error
from tests.factories import (
    BillingPeriodFactory,
    EstateFactory,
    LeaseFactory,
    MeterFactory,
    PlaceFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def lines(account, place, lease, meter, period, make_charge):
    """Three lines of the lease: its meter (estimated), a shared meter's part, an included one."""
    tariff = TariffFactory(account=account, name="Base 2024")
    shared = MeterFactory(
        account=account, place=place, billing_type="SHARED", serial_number="S-HALL", name="Hall"
    )
    included = MeterFactory(
        account=account,
        estate=lease.estate,
        billing_type="INCLUDED",
        serial_number="W-A12",
        name="Cold water A12",
        meter_type="WATER",
    )
    return [
        make_charge(period, meter, lease, tariff=tariff, is_estimated=True),
        make_charge(
            period,
            shared,
            lease,
            index_start=Decimal("5000"),
            index_end=Decimal("5600"),
            consumption=Decimal("600"),
            unit_price=Decimal("0.18"),
            share=Decimal("0.12"),
            basis="shares 120/1000",
            amount=Decimal("12.96"),
            vat_amount=Decimal("2.59"),
            total_amount=Decimal("15.55"),
        ),
        make_charge(
            period,
            included,
            lease,
            index_start=Decimal("10.125"),
            index_end=Decimal("14.5"),
            consumption=Decimal("4.375"),
            unit="m3",
            unit_price=None,
            amount=Decimal("0"),
            vat_amount=Decimal("0"),
            total_amount=Decimal("0"),
            is_included=True,
        ),
    ]


def path(period, lease, query: str = "") -> str:
    url = f"/api/v1/billing-periods/{period.pk}/statements/{lease.pk}/"
    return f"{url}?{query}" if query else url


class TestJson:
    def test_lines_and_totals(self, api, account, place, lease, meter, period, lines):
        response = api.get(path(period, lease))
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"].startswith("application/json")
        data = response.json()["data"]
        assert data["account"] == {"id": str(account.pk), "name": account.name}
        assert data["place"]["name"] == "Résidence Bellecour"
        assert data["billing_period"] == {
            "id": period.pk,
            "name": "January 2024",
            "start_date": "2024-01-01",
            "end_date": "2024-01-31",
            "days": 31,
            "status": "DRAFT",
        }
        assert data["lease"]["reference"] == "BAIL-2024-07"
        assert data["lease"]["tenant"]["name"] == "Jeanne Martin"
        assert data["lease"]["estate"] == {"id": lease.estate_id, "code": "A12", "name": "Flat A12"}
        assert data["currency"] == "EUR"
        assert (data["amount"], data["vat_amount"], data["total_amount"]) == (43.01, 8.6, 51.61)
        # Lines in meter serial order.
        assert [line["meter_serial_number"] for line in data["lines"]] == [
            "E-A12",
            "S-HALL",
            "W-A12",
        ]
        first = data["lines"][0]
        assert first["id"] == lines[0].pk
        assert first["meter_name"] == "Electricity A12"
        assert first["register_code"] == "default"
        assert first["tariff_name"] == "Base 2024"
        assert (first["index_start"], first["index_end"], first["consumption"]) == (
            1200.5,
            1350.75,
            150.25,
        )
        assert (first["amount"], first["vat_amount"], first["total_amount"]) == (
            30.05,
            6.01,
            36.06,
        )
        assert first["is_estimated"] is True
        assert data["lines"][1]["share"] == 0.12 and data["lines"][1]["basis"] == "shares 120/1000"
        assert data["lines"][2]["is_included"] is True and data["lines"][2]["unit_price"] is None

    def test_body_matches_the_documented_schema(self, api, lease, period, lines):
        data = api.get(path(period, lease, "format=json")).json()["data"]
        documented = StatementSerializer()
        assert set(data) == set(documented.fields)
        line_fields = documented.fields["lines"].child.fields
        assert all(set(line) == set(line_fields) for line in data["lines"])
        for name in ("account", "place", "billing_period", "lease"):
            assert set(data[name]) == set(documented.fields[name].fields), name

    def test_lease_without_lines_gets_an_empty_statement(self, api, place, period):
        lease = LeaseFactory(estate=EstateFactory(place=place))
        data = api.get(path(period, lease)).json()["data"]
        assert data["lines"] == [] and data["total_amount"] == 0

    def test_other_leases_lines_are_not_shown(self, api, place, lease, meter, period, make_charge):
        neighbour = LeaseFactory(estate=EstateFactory(place=place))
        make_charge(period, meter, neighbour)
        make_charge(period, meter, None)  # vacancy
        data = api.get(path(period, lease)).json()["data"]
        assert data["lines"] == []


class TestCsv:
    def test_download(self, api, lease, period, lines):
        response = api.get(path(period, lease, "format=csv"))
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == (
            'attachment; filename="statement-january-2024-bail-2024-07.csv"'
        )
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert [row["meter_serial_number"] for row in rows] == ["E-A12", "S-HALL", "W-A12", "TOTAL"]
        first, shared, included, total = rows
        assert first["index_start"] == "1200.5" and first["index_end"] == "1350.75"
        assert first["consumption"] == "150.25" and first["unit"] == "kWh"
        assert first["amount"] == "30.05" and first["total_amount"] == "36.06"
        assert first["is_estimated"] == "true" and first["currency"] == "EUR"
        assert shared["share"] == "0.12" and shared["basis"] == "shares 120/1000"
        assert included["is_included"] == "true" and included["unit_price"] == ""
        assert (total["amount"], total["vat_amount"], total["total_amount"]) == (
            "43.01",
            "8.60",
            "51.61",
        )

    def test_accept_header_asks_for_csv_too(self, api, lease, period, lines):
        response = api.get(path(period, lease), HTTP_ACCEPT="text/csv")
        assert response["Content-Type"] == "text/csv; charset=utf-8"

    def test_text_that_a_spreadsheet_would_run_is_quoted(
        self, api, account, lease, period, make_charge
    ):
        meter = MeterFactory(account=account, estate=lease.estate, name="=HYPERLINK(1)")
        make_charge(period, meter, lease, amount=Decimal(-1), total_amount=Decimal(-1))
        response = api.get(path(period, lease, "format=csv"))
        (row, _total) = csv.DictReader(io.StringIO(response.content.decode()))
        assert row["meter_name"] == "'=HYPERLINK(1)"
        assert row["amount"] == "-1.00"  # numbers stay numbers, to the cent


class TestHtml:
    def test_printable_page(self, api, account, lease, period, lines):
        response = api.get(path(period, lease, "format=html"))
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"] == "text/html; charset=utf-8"
        html = response.content.decode()
        assert html.startswith("<!DOCTYPE html>")
        for text in (
            account.name,
            "Résidence Bellecour",
            "Jeanne Martin",
            "BAIL-2024-07",
            "A12",
            "January 2024",
            "2024-01-01",
            "2024-01-31",
            "E-A12",
            "Electricity A12",
            "Register default",
            "1200.5",
            "1350.75",
            "150.25 kWh",
            "S-HALL",
            "shares 120/1000",
            "12 %",
            "10.125",
            "14.5",
            "30.05",
            "6.01",
            "36.06",
            "43.01",
            "8.60",
            "51.61 EUR",
            "marker-estimated",
            "marker-included",
            "Draft",
            "@page",
        ):
            assert text in html, text
        # No external asset: the page prints offline.
        assert "http://" not in html and "https://" not in html

    def test_accept_text_html_gets_the_page(self, api, lease, period, lines):
        response = api.get(path(period, lease), HTTP_ACCEPT="text/html,*/*;q=0.8")
        assert response["Content-Type"] == "text/html; charset=utf-8"
        assert "E-A12" in response.content.decode()

    def test_quantities_are_rounded_for_reading_and_exact_in_json(
        self, api, account, lease, meter, period, make_charge
    ):
        make_charge(period, meter, lease, consumption=Decimal("612.644284252583289589"))
        html = api.get(path(period, lease, "format=html")).content.decode()
        assert "612.644 kWh" in html and "612.6442" not in html
        (line,) = api.get(path(period, lease)).json()["data"]["lines"]
        assert line["consumption"] == 612.644284252583289589

    def test_text_is_escaped(self, api, account, lease, period, make_charge):
        meter = MeterFactory(account=account, estate=lease.estate, name="<script>x</script>")
        make_charge(period, meter, lease)
        html = api.get(path(period, lease, "format=html")).content.decode()
        assert "<script>x</script>" not in html and "&lt;script&gt;" in html

    def test_closed_period_is_not_marked_draft(self, api, lease, period, lines):
        type(period).objects.filter(pk=period.pk).update(status="CLOSED")
        html = api.get(path(period, lease, "format=html")).content.decode()
        assert "Draft" not in html

    def test_render_html_works_without_a_request(self, lease, period, lines):
        statement = selectors.statement(period=period, lease=lease)
        html = statements.render_html(statement)
        assert "S-HALL" in html


class TestAccess:
    def test_unknown_format_is_a_400(self, api, lease, period):
        response = api.get(path(period, lease, "format=pdf"))
        assert response["Content-Type"].startswith("application/json")
        assert_error(response, 400, "validation_error", "format")

    @pytest.mark.parametrize("query", ["", "format=csv", "format=html"])
    def test_lease_of_another_account_is_a_404_in_json(self, api, other_account, period, query):
        lease = LeaseFactory(estate=EstateFactory(place=PlaceFactory(account=other_account)))
        response = api.get(path(period, lease, query))
        assert response["Content-Type"].startswith("application/json")
        assert_error(response, 404, "not_found")

    def test_huge_ids_are_a_404(self, api, lease, period):
        huge = 10**30
        url = f"/api/v1/billing-periods/{period.pk}/statements/{huge}/"
        assert_error(api.get(url), 404, "not_found")
        url = f"/api/v1/billing-periods/{huge}/statements/{lease.pk}/"
        assert_error(api.get(url), 404, "not_found")
        assert_error(api.get(f"/api/v1/billing-periods/{huge}/charges/"), 404, "not_found")

    def test_lease_of_another_place_is_a_404(self, api, account, period):
        lease = LeaseFactory(estate=EstateFactory(place=PlaceFactory(account=account)))
        assert_error(api.get(path(period, lease)), 404, "not_found")

    def test_lease_outside_the_period_is_a_404(self, api, place, period):
        before = LeaseFactory(
            estate=EstateFactory(place=place),
            start_date=dt.date(2023, 1, 1),
            end_date=dt.date(2023, 12, 31),
        )
        assert_error(api.get(path(period, before)), 404, "not_found")

    def test_period_of_another_account_is_a_404(self, api, other_account, lease):
        period = BillingPeriodFactory(place=PlaceFactory(account=other_account))
        assert_error(api.get(path(period, lease)), 404, "not_found")

    def test_other_account_cannot_read_it_in_any_format(self, other_api, lease, period, lines):
        for query in ("", "format=csv", "format=html"):
            assert_error(other_api.get(path(period, lease, query)), 404, "not_found")

    def test_needs_billing_read(self, account, make_client, lease, period):
        client = make_client(account, scopes=["meters:write", "readings:write"])
        assert_error(client.get(path(period, lease, "format=csv")), 403, "insufficient_scope")
