"""Places, estates, service places and gateways (CONTRACT §3)."""

from __future__ import annotations

import pytest

from metering.models import Estate, Gateway, Place, ServicePlace
from tests.factories import (
    EstateFactory,
    GatewayFactory,
    MeterFactory,
    PlaceFactory,
    ServicePlaceFactory,
)

pytestmark = pytest.mark.django_db


class TestPlaces:
    def test_crud(self, api, account):
        body = {
            "name": "Les Tilleuls",
            "code": "TIL",
            "address_line1": "12 rue des Lilas",
            "address_line2": "Bât. B",
            "postal_code": "69003",
            "city": "Lyon",
            "country": "FR",
            "latitude": "45.7578",
            "longitude": "4.8320",
            "surface_m2": 2400,
        }
        created = api.post("/api/v1/places/", body, format="json")
        assert created.status_code == 201, created.json()
        data = created.json()["data"]
        assert data["latitude"] == 45.7578 and data["surface_m2"] == 2400
        place_id = data["id"]
        patched = api.patch(f"/api/v1/places/{place_id}/", {"city": "Villeurbanne"}, format="json")
        assert patched.json()["data"]["city"] == "Villeurbanne"
        assert api.delete(f"/api/v1/places/{place_id}/").status_code == 204
        assert not Place.objects.exists()

    def test_code_unique_per_account(self, api, account, other_account):
        PlaceFactory(account=other_account, code="TIL")
        assert (
            api.post("/api/v1/places/", {"name": "a", "code": "TIL"}, format="json").status_code
            == 201
        )
        second = api.post("/api/v1/places/", {"name": "b", "code": "TIL"}, format="json")
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "conflict"

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("latitude", 91),
            ("latitude", -90.5),
            ("longitude", 181),
            ("surface_m2", -1),
        ],
    )
    def test_ranges(self, api, field, value):
        response = api.post(
            "/api/v1/places/", {"name": "a", "code": "x", field: value}, format="json"
        )
        assert response.status_code == 400
        assert field in response.json()["error"]["details"]

    def test_place_with_estates_cannot_be_deleted(self, api, account):
        estate = EstateFactory(place=PlaceFactory(account=account))
        response = api.delete(f"/api/v1/places/{estate.place_id}/")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "conflict"
        assert Place.objects.filter(pk=estate.place_id).exists()

    def test_filters(self, api, account):
        PlaceFactory(account=account, code="A", city="Lyon")
        PlaceFactory(account=account, code="B", city="Paris")
        assert [p["code"] for p in api.get("/api/v1/places/?city=paris").json()["data"]] == ["B"]
        assert [p["code"] for p in api.get("/api/v1/places/?code=A").json()["data"]] == ["A"]


class TestEstates:
    def test_crud_and_defaults(self, api, account):
        place = PlaceFactory(account=account)
        body = {"place_id": place.pk, "code": "A101", "floor": "1", "surface_m2": "63.5"}
        data = api.post("/api/v1/estates/", body, format="json").json()["data"]
        assert data["usage"] == "RESIDENTIAL" and data["shares"] == 0
        assert data["place_id"] == place.pk and data["surface_m2"] == 63.5
        response = api.patch(f"/api/v1/estates/{data['id']}/", {"shares": 120}, format="json")
        assert response.json()["data"]["shares"] == 120

    def test_code_unique_per_place(self, api, account):
        estate = EstateFactory(place=PlaceFactory(account=account), code="A1")
        other_place = PlaceFactory(account=account)
        body = {"place_id": estate.place_id, "code": "A1"}
        assert api.post("/api/v1/estates/", body, format="json").status_code == 409
        body["place_id"] = other_place.pk
        assert api.post("/api/v1/estates/", body, format="json").status_code == 201

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("shares", -1),
            ("usage", "CASTLE"),
            ("surface_m2", -3),
            ("place_id", None),
        ],
    )
    def test_validation(self, api, account, field, value):
        body = {"place_id": PlaceFactory(account=account).pk, "code": "x", field: value}
        response = api.post("/api/v1/estates/", body, format="json")
        assert response.status_code == 400
        assert field in response.json()["error"]["details"]

    def test_filter_by_place_and_usage(self, api, account):
        first, second = PlaceFactory(account=account), PlaceFactory(account=account)
        EstateFactory(place=first, usage="PARKING")
        EstateFactory(place=second)
        assert api.get(f"/api/v1/estates/?place_id={first.pk}").json()["meta"]["total"] == 1
        assert api.get("/api/v1/estates/?usage=PARKING").json()["meta"]["total"] == 1
        assert api.get("/api/v1/estates/?usage=CASTLE").status_code == 400

    def test_estate_with_meters_cannot_be_deleted(self, api, account):
        estate = EstateFactory(place=PlaceFactory(account=account))
        MeterFactory(account=account, estate=estate)
        assert api.delete(f"/api/v1/estates/{estate.pk}/").status_code == 409
        assert Estate.objects.filter(pk=estate.pk).exists()


class TestServicePlaces:
    def test_crud(self, api, account):
        place = PlaceFactory(account=account)
        body = {
            "place_id": place.pk,
            "meter_type": "GAS",
            "provider": "GRDF",
            "contract_reference": "C-1",
            "delivery_point": "GI123456",
        }
        response = api.post("/api/v1/service-places/", body, format="json")
        assert response.status_code == 201
        assert response.json()["data"]["delivery_point"] == "GI123456"
        assert api.get("/api/v1/service-places/?meter_type=GAS").json()["meta"]["total"] == 1

    def test_delivery_point_unique_per_account(self, api, account):
        ServicePlaceFactory(place=PlaceFactory(account=account), delivery_point="PDL1")
        body = {
            "place_id": PlaceFactory(account=account).pk,
            "meter_type": "ELECTRICITY",
            "delivery_point": "PDL1",
        }
        assert api.post("/api/v1/service-places/", body, format="json").status_code == 409
        assert ServicePlace.objects.count() == 1

    def test_several_service_places_without_delivery_point(self, api, account):
        place = PlaceFactory(account=account)
        for _ in range(2):
            body = {"place_id": place.pk, "meter_type": "WATER"}
            assert api.post("/api/v1/service-places/", body, format="json").status_code == 201


class TestGateways:
    def test_crud(self, api, account):
        place = PlaceFactory(account=account)
        body = {
            "name": "LoRa concentrator",
            "communication_type": "LORAWAN",
            "identifier": "EUI-0001",
            "place_id": place.pk,
        }
        data = api.post("/api/v1/gateways/", body, format="json").json()["data"]
        assert data["place_id"] == place.pk and data["last_seen_at"] is None
        response = api.patch(f"/api/v1/gateways/{data['id']}/", {"place_id": None}, format="json")
        assert response.json()["data"]["place_id"] is None

    def test_identifier_unique_per_account(self, api, account):
        GatewayFactory(account=account, identifier="EUI-1")
        body = {"name": "g", "identifier": "EUI-1"}
        assert api.post("/api/v1/gateways/", body, format="json").status_code == 409

    def test_deleting_a_gateway_keeps_its_meters(self, api, account):
        gateway = GatewayFactory(account=account)
        meter = MeterFactory(account=account, gateway=gateway)
        assert api.delete(f"/api/v1/gateways/{gateway.pk}/").status_code == 204
        meter.refresh_from_db()
        assert meter.gateway_id is None
        assert not Gateway.objects.exists()
