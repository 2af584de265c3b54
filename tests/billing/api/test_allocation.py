"""Meter shares, tariffs and allocation rules (CONTRACT §5)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import AllocationRule, MeterShare, Tariff
from tests.billing.api import assert_error
from tests.factories import (
    AllocationRuleFactory,
    EstateFactory,
    MeterFactory,
    MeterShareFactory,
    PlaceFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db


class TestMeterShares:
    URL = "/api/v1/meter-shares/"

    @pytest.fixture
    def shared(self, account, place):
        return MeterFactory(account=account, place=place, billing_type="SHARED")

    def test_create_read_update_delete(self, api, account, shared, estate):
        body = {"meter_id": shared.pk, "estate_id": estate.pk, "ratio": "2.5"}
        response = api.post(self.URL, body, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert (data["meter_id"], data["estate_id"], data["ratio"]) == (shared.pk, estate.pk, 2.5)
        share = MeterShare.objects.get(pk=data["id"])
        assert share.account == account and share.ratio == Decimal("2.5")

        assert api.get(f"{self.URL}{share.pk}/").json()["data"] == data
        response = api.patch(f"{self.URL}{share.pk}/", {"ratio": 120}, format="json")
        assert response.status_code == 200
        share.refresh_from_db()
        assert share.ratio == 120
        assert api.delete(f"{self.URL}{share.pk}/").status_code == 204
        assert not MeterShare.objects.exists()

    @pytest.mark.parametrize("ratio", [0, -1, "abc"])
    def test_ratio_must_be_positive(self, api, shared, estate, ratio):
        body = {"meter_id": shared.pk, "estate_id": estate.pk, "ratio": ratio}
        assert_error(api.post(self.URL, body, format="json"), 400, "validation_error", "ratio")

    def test_second_share_of_a_meter_for_one_estate_is_a_409(self, api, shared, estate):
        MeterShareFactory(meter=shared, estate=estate)
        body = {"meter_id": shared.pk, "estate_id": estate.pk, "ratio": 1}
        error = assert_error(api.post(self.URL, body, format="json"), 409, "conflict")
        assert "share" in error["message"]
        assert MeterShare.objects.count() == 1

    def test_meter_must_be_shared(self, api, account, place, estate):
        meter = MeterFactory(account=account, place=place)  # INDIVIDUAL
        body = {"meter_id": meter.pk, "estate_id": estate.pk, "ratio": 1}
        assert_error(api.post(self.URL, body, format="json"), 400, "validation_error", "meter_id")
        assert not MeterShare.objects.exists()

    def test_estate_must_be_in_the_meters_place(self, api, account, shared):
        estate = EstateFactory(place=PlaceFactory(account=account))
        body = {"meter_id": shared.pk, "estate_id": estate.pk, "ratio": 1}
        assert_error(api.post(self.URL, body, format="json"), 400, "validation_error", "estate_id")

    @pytest.mark.parametrize("field", ["meter_id", "estate_id"])
    def test_other_accounts_ids_are_a_400_on_that_field(
        self, api, other_account, shared, estate, field
    ):
        other_place = PlaceFactory(account=other_account)
        foreign = {
            "meter_id": MeterFactory(account=other_account, billing_type="SHARED"),
            "estate_id": EstateFactory(place=other_place),
        }
        body = {"meter_id": shared.pk, "estate_id": estate.pk, "ratio": 1, field: foreign[field].pk}
        assert_error(api.post(self.URL, body, format="json"), 400, "validation_error", field)
        assert not MeterShare.objects.exists()

    def test_filters(self, api, account, place, shared, estate):
        mine = MeterShareFactory(meter=shared, estate=estate)
        other = MeterShareFactory(
            meter=MeterFactory(account=account, place=place, billing_type="SHARED"),
            estate=EstateFactory(place=place),
        )
        ids = lambda q: [s["id"] for s in api.get(f"{self.URL}?{q}").json()["data"]]  # noqa: E731
        assert ids(f"meter_id={shared.pk}") == [mine.pk]
        assert ids(f"estate_id={other.estate_id}") == [other.pk]
        assert_error(api.get(f"{self.URL}?meter_id=x"), 400, "validation_error", "meter_id")


class TestTariffs:
    URL = "/api/v1/tariffs/"
    BODY = {
        "name": "Base 2024",
        "meter_type": "ELECTRICITY",
        "unit_price": "0.2516",
        "standing_charge_per_day": 0.45,
        "vat_rate": "0.20",
        "valid_from": "2024-01-01",
    }

    def test_create_read_update_delete(self, api, account):
        response = api.post(self.URL, self.BODY, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert data["unit_price"] == 0.2516
        assert data["standing_charge_per_day"] == 0.45
        assert data["vat_rate"] == 0.2
        assert data["currency"] == "EUR"  # the account's
        assert data["tariff_slot"] is None and data["valid_to"] is None
        tariff = Tariff.objects.get(pk=data["id"])
        assert tariff.account == account and tariff.unit_price == Decimal("0.2516")

        assert api.get(f"{self.URL}{tariff.pk}/").json()["data"] == data
        response = api.patch(f"{self.URL}{tariff.pk}/", {"valid_to": "2024-12-31"}, format="json")
        assert response.status_code == 200
        tariff.refresh_from_db()
        assert tariff.valid_to == dt.date(2024, 12, 31)
        assert api.delete(f"{self.URL}{tariff.pk}/").status_code == 204
        assert not Tariff.objects.exists()

    def test_currency_defaults_to_the_accounts(self, api, account):
        account.currency = "CHF"
        account.save()
        response = api.post(self.URL, self.BODY, format="json")
        assert response.json()["data"]["currency"] == "CHF"
        response = api.post(
            self.URL, {**self.BODY, "currency": "EUR", "tariff_slot": "HT"}, format="json"
        )
        assert response.json()["data"]["currency"] == "EUR"

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("unit_price", -1),
            ("vat_rate", "1.5"),
            ("vat_rate", -0.1),
            ("meter_type", "PLUTONIUM"),
            ("currency", "EURO"),
            ("valid_to", "2023-12-31"),
        ],
    )
    def test_invalid_values_are_a_400_on_their_field(self, api, field, value):
        response = api.post(self.URL, {**self.BODY, field: value}, format="json")
        assert_error(response, 400, "validation_error", field)
        assert not Tariff.objects.exists()

    def test_overlap_of_one_type_and_slot_is_a_409_another_slot_is_fine(self, api, account):
        TariffFactory(account=account, tariff_slot="HT", valid_from=dt.date(2023, 1, 1))
        body = {**self.BODY, "tariff_slot": "HT"}
        assert_error(api.post(self.URL, body, format="json"), 409, "overlap")
        assert Tariff.objects.count() == 1
        response = api.post(self.URL, {**body, "tariff_slot": "NT"}, format="json")
        assert response.status_code == 201, response.json()
        response = api.post(self.URL, {**body, "meter_type": "GAS"}, format="json")
        assert response.status_code == 201, response.json()
        # No slot: a tariff for any register, its own series.
        response = api.post(self.URL, self.BODY, format="json")
        assert response.status_code == 201, response.json()
        assert_error(api.post(self.URL, self.BODY, format="json"), 409, "overlap")

    def test_consecutive_tariffs_do_not_overlap(self, api, account):
        TariffFactory(
            account=account, valid_from=dt.date(2023, 1, 1), valid_to=dt.date(2023, 12, 31)
        )
        assert api.post(self.URL, self.BODY, format="json").status_code == 201

    def test_tariff_in_use_cannot_be_deleted(self, api, account):
        tariff = TariffFactory(account=account)
        MeterFactory(account=account, tariff=tariff)
        assert_error(api.delete(f"{self.URL}{tariff.pk}/"), 409, "conflict")
        assert Tariff.objects.filter(pk=tariff.pk).exists()

    def test_tariff_of_charges_cannot_be_deleted(
        self, api, account, lease, meter, period, make_charge
    ):
        tariff = TariffFactory(account=account, tariff_slot="X")
        make_charge(period, meter, lease, tariff=tariff)
        assert_error(api.delete(f"{self.URL}{tariff.pk}/"), 409, "conflict")

    def test_filters(self, api, account):
        base = TariffFactory(
            account=account, valid_from=dt.date(2023, 1, 1), valid_to=dt.date(2023, 12, 31)
        )
        peak = TariffFactory(account=account, tariff_slot="HP", valid_from=dt.date(2024, 1, 1))
        gas = TariffFactory(account=account, meter_type="GAS", valid_from=dt.date(2022, 1, 1))
        ids = lambda q: [t["id"] for t in api.get(f"{self.URL}?{q}").json()["data"]]  # noqa: E731
        assert ids("meter_type=GAS") == [gas.pk]
        assert ids("tariff_slot=HP") == [peak.pk]
        assert ids("valid_on=2023-06-01") == [base.pk, gas.pk]
        assert ids("valid_on=2024-06-01") == [peak.pk, gas.pk]
        assert ids("valid_on=2023-12-31&meter_type=ELECTRICITY") == [base.pk]
        assert_error(api.get(f"{self.URL}?meter_type=FOO"), 400, "validation_error", "meter_type")
        assert_error(api.get(f"{self.URL}?valid_on=soon"), 400, "validation_error", "valid_on")


class TestAllocationRules:
    URL = "/api/v1/allocation-rules/"

    @pytest.fixture
    def collective(self, account, place):
        return MeterFactory(account=account, place=place, billing_type="COLLECTIVE")

    def test_create_read_update_delete(self, api, account, collective):
        body = {"meter_id": collective.pk, "basis": "SURFACE", "consumption_part_percent": "70"}
        response = api.post(self.URL, body, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert (data["meter_id"], data["basis"], data["consumption_part_percent"]) == (
            collective.pk,
            "SURFACE",
            70,
        )
        rule = AllocationRule.objects.get(pk=data["id"])
        assert rule.account == account and rule.consumption_part_percent == 70

        assert api.get(f"{self.URL}{rule.pk}/").json()["data"] == data
        response = api.patch(f"{self.URL}{rule.pk}/", {"basis": "EQUAL"}, format="json")
        assert response.status_code == 200
        rule.refresh_from_db()
        assert rule.basis == "EQUAL"
        assert api.delete(f"{self.URL}{rule.pk}/").status_code == 204
        assert not AllocationRule.objects.exists()

    def test_defaults(self, api, collective):
        data = api.post(self.URL, {"meter_id": collective.pk}, format="json").json()["data"]
        assert (data["basis"], data["consumption_part_percent"]) == ("SHARES", 0)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("consumption_part_percent", 101), ("consumption_part_percent", -1), ("basis", "RENT")],
    )
    def test_invalid_values(self, api, collective, field, value):
        body = {"meter_id": collective.pk, field: value}
        assert_error(api.post(self.URL, body, format="json"), 400, "validation_error", field)
        assert not AllocationRule.objects.exists()

    def test_meter_must_be_collective(self, api, account, place):
        meter = MeterFactory(account=account, place=place, billing_type="SHARED")
        response = api.post(self.URL, {"meter_id": meter.pk}, format="json")
        assert_error(response, 400, "validation_error", "meter_id")
        assert not AllocationRule.objects.exists()

    def test_second_rule_for_a_meter_is_a_409(self, api, collective):
        AllocationRuleFactory(meter=collective)
        response = api.post(self.URL, {"meter_id": collective.pk}, format="json")
        assert_error(response, 409, "conflict")
        assert AllocationRule.objects.count() == 1

    def test_meter_of_another_account_is_a_400(self, api, other_account):
        meter = MeterFactory(
            account=other_account,
            place=PlaceFactory(account=other_account),
            billing_type="COLLECTIVE",
        )
        response = api.post(self.URL, {"meter_id": meter.pk}, format="json")
        assert_error(response, 400, "validation_error", "meter_id")

    def test_filters(self, api, account, place, collective):
        shares = AllocationRuleFactory(meter=collective)
        equal = AllocationRuleFactory(
            meter=MeterFactory(account=account, place=place, billing_type="COLLECTIVE"),
            basis="EQUAL",
        )
        ids = lambda q: [r["id"] for r in api.get(f"{self.URL}?{q}").json()["data"]]  # noqa: E731
        assert ids(f"meter_id={collective.pk}") == [shares.pk]
        assert ids("basis=EQUAL") == [equal.pk]
        assert_error(api.get(f"{self.URL}?basis=RENT"), 400, "validation_error", "basis")
