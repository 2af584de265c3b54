"""The API conventions of CONTRACT §2, on every response."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from billing.services import create_portal_key
from metering.models import Gateway, Place
from tests.factories import MeterFactory, PlaceFactory, TenantFactory

pytestmark = pytest.mark.django_db


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


class TestEnvelope:
    def test_single_object_is_wrapped_in_data(self, api, account):
        place = PlaceFactory(account=account)
        response = api.get(f"/api/v1/places/{place.pk}/")
        assert response.status_code == 200
        assert set(response.json()) == {"data"}
        assert response.json()["data"]["id"] == place.pk

    def test_list_has_data_and_meta(self, api, account):
        PlaceFactory.create_batch(3, account=account)
        body = api.get("/api/v1/places/").json()
        assert set(body) == {"data", "meta"}
        assert body["meta"] == {"total": 3, "page": 1, "per_page": 50, "total_pages": 1}

    def test_every_object_has_id_and_timestamps_in_utc(self, api, account):
        place = PlaceFactory(account=account)
        data = api.get(f"/api/v1/places/{place.pk}/").json()["data"]
        assert isinstance(data["id"], int)
        for field in ("created_at", "updated_at"):
            assert data[field].endswith("Z")
            dt.datetime.fromisoformat(data[field])

    def test_delete_answers_204_without_body(self, api, account):
        place = PlaceFactory(account=account)
        response = api.delete(f"/api/v1/places/{place.pk}/")
        assert response.status_code == 204
        assert response.content == b""
        assert not Place.objects.filter(pk=place.pk).exists()


class TestPagination:
    def test_pages_and_per_page(self, api, account):
        PlaceFactory.create_batch(5, account=account)
        body = api.get("/api/v1/places/?per_page=2&page=3").json()
        assert body["meta"] == {"total": 5, "page": 3, "per_page": 2, "total_pages": 3}
        assert len(body["data"]) == 1

    def test_limit_is_an_alias_of_per_page(self, api, account):
        PlaceFactory.create_batch(3, account=account)
        body = api.get("/api/v1/places/?limit=2").json()
        assert body["meta"]["per_page"] == 2
        assert len(body["data"]) == 2

    def test_per_page_is_capped_at_500(self, api, account):
        body = api.get("/api/v1/places/?per_page=10000").json()
        assert body["meta"]["per_page"] == 500

    def test_page_past_the_last_is_empty(self, api, account):
        PlaceFactory.create_batch(2, account=account)
        body = api.get("/api/v1/places/?page=9").json()
        assert body["data"] == []
        assert body["meta"]["total"] == 2

    @pytest.mark.parametrize("query", ["page=0", "page=abc", "per_page=-1", "limit=x"])
    def test_invalid_pagination_is_a_400(self, api, query):
        response = api.get(f"/api/v1/places/?{query}")
        assert response.status_code == 400
        assert error_of(response)["code"] == "validation_error"

    def test_pages_do_not_overlap_when_ordering_by_a_repeated_value(self, api, account):
        for _ in range(6):
            PlaceFactory(account=account, city="Lyon")
        seen = []
        for page in (1, 2, 3):
            body = api.get(f"/api/v1/places/?ordering=city&per_page=2&page={page}").json()
            seen += [place["id"] for place in body["data"]]
        assert len(seen) == len(set(seen)) == 6


class TestListParameters:
    def test_search(self, api, account):
        PlaceFactory(account=account, name="Résidence des Tilleuls")
        PlaceFactory(account=account, name="Tour Horizon")
        body = api.get("/api/v1/places/?search=tilleuls").json()
        assert [place["name"] for place in body["data"]] == ["Résidence des Tilleuls"]

    def test_ordering_descending(self, api, account):
        for code in ("A", "C", "B"):
            PlaceFactory(account=account, code=code)
        body = api.get("/api/v1/places/?ordering=-code").json()
        assert [place["code"] for place in body["data"]] == ["C", "B", "A"]

    def test_unknown_ordering_field_is_a_400(self, api):
        response = api.get("/api/v1/places/?ordering=password")
        assert response.status_code == 400
        assert "ordering" in error_of(response)["details"]

    def test_unknown_filter_value_is_a_400_not_an_empty_list(self, api):
        response = api.get("/api/v1/meters/?meter_type=FOO")
        assert response.status_code == 400
        (message,) = error_of(response)["details"]["meter_type"]
        # The message lists what is valid, so an integrator can fix the call.
        assert message.startswith("FOO is not one of: ELECTRICITY, GAS, WATER,")

    @pytest.mark.parametrize("query", ["is_main_meter=maybe", "place_id=abc", "status=BROKEN"])
    def test_malformed_filters_are_a_400(self, api, query):
        response = api.get(f"/api/v1/meters/?{query}")
        assert response.status_code == 400

    def test_null_character_in_search_is_a_400(self, api):
        response = api.get("/api/v1/meters/?search=a%00b")
        assert response.status_code == 400
        assert error_of(response)["code"] == "validation_error"


class TestErrors:
    def test_unknown_route_is_a_json_404(self, api):
        response = api.get("/api/v1/no-such-thing/")
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"

    @pytest.mark.parametrize("header", ["", "Bearer mtr_not-a-key", "Bearer mtp_not-a-key"])
    def test_unknown_format_is_a_json_404_whatever_the_credentials(self, db, header):
        # Refused in content negotiation, before authentication: never a 500.
        response = APIClient().get("/api/v1/places/?format=xml", HTTP_AUTHORIZATION=header)
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"

    def test_unknown_object_is_a_404(self, api):
        response = api.get("/api/v1/places/999999/")
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"

    def test_huge_id_is_a_404(self, api):
        response = api.get("/api/v1/places/99999999999999999999999/")
        assert response.status_code == 404

    def test_method_not_allowed(self, api):
        response = api.put("/api/v1/account/", {}, format="json")
        assert response.status_code == 405
        assert error_of(response)["code"] == "method_not_allowed"

    def test_malformed_json_is_a_validation_error(self, api):
        response = api.post("/api/v1/places/", "{bad", content_type="application/json")
        assert response.status_code == 400
        assert error_of(response)["code"] == "validation_error"

    def test_json_that_is_not_an_object_is_a_validation_error(self, api):
        response = api.post("/api/v1/places/", "[1, 2]", content_type="application/json")
        assert response.status_code == 400
        assert error_of(response)["code"] == "validation_error"

    def test_unsupported_media_type(self, api):
        response = api.post("/api/v1/places/", "name=x", content_type="text/plain")
        assert response.status_code == 415
        assert error_of(response)["code"] == "unsupported_media_type"

    def test_unacceptable_accept_header_still_gets_json(self, api, account):
        response = api.get("/api/v1/places/", HTTP_ACCEPT="application/xml")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/json")

    def test_validation_error_details_map_fields_to_messages(self, api):
        response = api.post("/api/v1/places/", {"code": ""}, format="json")
        error = error_of(response)
        assert response.status_code == 400
        assert error["code"] == "validation_error"
        assert isinstance(error["details"]["name"], list)
        assert isinstance(error["details"]["code"], list)

    def test_uniqueness_violation_is_a_409_conflict(self, api, account):
        PlaceFactory(account=account, code="P1")
        response = api.post("/api/v1/places/", {"name": "x", "code": "P1"}, format="json")
        assert response.status_code == 409
        assert error_of(response)["code"] == "conflict"

    def test_null_character_in_a_body_is_a_400(self, api):
        response = api.post("/api/v1/places/", {"name": "a\x00b", "code": "X"}, format="json")
        assert response.status_code == 400

    def test_far_future_datetime_that_overflows_utc_is_a_400(self, api):
        body = {"name": "g", "identifier": "g1", "last_seen_at": "9999-12-31T23:59:59-05:00"}
        response = api.post("/api/v1/gateways/", body, format="json")
        assert response.status_code == 400
        assert "last_seen_at" in error_of(response)["details"]


class TestTrailingSlash:
    def test_paths_work_without_trailing_slash(self, api, account):
        PlaceFactory(account=account)
        assert api.get("/api/v1/places").status_code == 200
        response = api.post("/api/v1/places", {"name": "n", "code": "c"}, format="json")
        assert response.status_code == 201


class TestValues:
    def test_decimals_are_numbers_and_accept_numeric_strings(self, api, account):
        response = api.post(
            "/api/v1/places/",
            {"name": "n", "code": "c", "surface_m2": "1234.50", "latitude": 45.75},
            format="json",
        )
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert data["surface_m2"] == 1234.5
        assert data["latitude"] == 45.75

    def test_datetime_without_offset_is_read_in_the_account_time_zone(self, api, account):
        # Europe/Paris is UTC+1 in January.
        body = {"name": "g", "identifier": "g1", "last_seen_at": "2025-01-15T10:00:00"}
        response = api.post("/api/v1/gateways/", body, format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["data"]["last_seen_at"] == "2025-01-15T09:00:00Z"
        stored = Gateway.objects.get().last_seen_at
        assert stored == dt.datetime(2025, 1, 15, 9, tzinfo=dt.UTC)

    def test_datetime_with_offset_is_kept_and_output_in_utc(self, api, account):
        body = {"name": "g", "identifier": "g1", "last_seen_at": "2025-07-01T12:00:00+02:00"}
        response = api.post("/api/v1/gateways/", body, format="json")
        assert response.json()["data"]["last_seen_at"] == "2025-07-01T10:00:00Z"

    def test_null_for_optional_text_means_empty(self, api, account):
        response = api.post(
            "/api/v1/places/", {"name": "n", "code": "c", "city": None}, format="json"
        )
        assert response.status_code == 201
        assert response.json()["data"]["city"] == ""


def set_rates(settings, **rates) -> None:
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], **rates}
    settings.REST_FRAMEWORK = rest


def assert_rate_limited(response) -> None:
    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "rate_limited"
    assert error["details"] == {}
    assert 1 <= int(response["Retry-After"]) <= 60


class TestRateLimit:
    @pytest.fixture
    def three_per_minute(self, settings):
        set_rates(settings, account_key="3/min")

    def test_429_with_retry_after_past_the_key_rate(self, api, three_per_minute):
        statuses = [api.get("/api/v1/places/").status_code for _ in range(4)]
        response = api.get("/api/v1/places/")
        assert statuses == [200, 200, 200, 429]
        assert response.status_code == 429
        assert error_of(response)["code"] == "rate_limited"
        assert 1 <= int(response["Retry-After"]) <= 60

    def test_each_key_has_its_own_budget(self, account, make_client, three_per_minute):
        first, second = make_client(account), make_client(account)
        assert [first.get("/api/v1/places/").status_code for _ in range(4)][-1] == 429
        assert second.get("/api/v1/places/").status_code == 200

    def test_a_portal_key_has_its_own_budget_and_refusals_count(self, api, account, settings):
        """A portal key is refused on account routes (403); each refusal costs its budget."""
        set_rates(settings, portal_key="3/min")
        _, raw = create_portal_key(tenant=TenantFactory(account=account), name="flat 12")
        portal = APIClient()
        portal.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        statuses = [portal.get("/api/v1/meters/").status_code for _ in range(3)]
        assert statuses == [403, 403, 403]
        assert_rate_limited(portal.get("/api/v1/meters/"))
        # The account's own key counts on its own budget.
        assert api.get("/api/v1/meters/").status_code == 200

    def test_a_key_without_the_scope_still_spends_its_budget(self, account, make_client, settings):
        client = make_client(account, scopes=["readings:read"])
        set_rates(settings, account_key="2/min")
        assert [client.get("/api/v1/meters/").status_code for _ in range(2)] == [403, 403]
        assert_rate_limited(client.get("/api/v1/meters/"))

    def test_anonymous_budget_on_the_schema(self, settings):
        set_rates(settings, anonymous="2/min")
        client = APIClient()
        accept = "application/vnd.oai.openapi+json"
        assert [client.get("/api/schema/", HTTP_ACCEPT=accept).status_code for _ in range(2)] == [
            200,
            200,
        ]
        assert_rate_limited(client.get("/api/schema/", HTTP_ACCEPT=accept))
        # Requests without credentials to account routes (401) count on the same budget.
        assert_rate_limited(client.get("/api/v1/places/"))
        # Another address has its own.
        assert client.get("/api/v1/places/", REMOTE_ADDR="10.0.0.9").status_code == 401


class TestFailedAuthentication:
    """Invalid keys are counted per address; past the budget even a valid key is refused."""

    @pytest.fixture(autouse=True)
    def three_failures_per_minute(self, settings):
        set_rates(settings, auth_failures="3/min")

    def guess(self, client, n: int, **extra) -> list[int]:
        return [
            client.get(
                "/api/v1/places/", HTTP_AUTHORIZATION=f"Bearer mtr_guess{i}", **extra
            ).status_code
            for i in range(n)
        ]

    def test_429_past_the_budget_even_for_a_valid_key(self, api):
        assert self.guess(APIClient(), 3) == [401, 401, 401]
        assert_rate_limited(APIClient().get("/api/v1/places/", HTTP_AUTHORIZATION="Bearer mtr_x"))
        # Guessing teaches nothing: the right key from that address is refused too.
        assert_rate_limited(api.get("/api/v1/places/"))
        # Other addresses are not affected.
        assert api.get("/api/v1/places/", REMOTE_ADDR="10.0.0.9").status_code == 200

    def test_portal_key_guesses_count_too(self):
        # Keys are checked on every API route, whichever routes the kind of key opens.
        client = APIClient(HTTP_AUTHORIZATION="Bearer mtp_guess")
        assert [client.get("/api/v1/meters/").status_code for _ in range(3)] == [401] * 3
        assert_rate_limited(client.get("/api/v1/meters/"))

    def test_successful_authentications_do_not_count(self, api):
        assert [api.get("/api/v1/places/").status_code for _ in range(5)] == [200] * 5

    def test_x_forwarded_for_is_ignored_without_proxies(self, api):
        """API_NUM_PROXIES=0 (default): a client cannot pick a new address per guess."""
        statuses = [
            APIClient()
            .get(
                "/api/v1/places/",
                HTTP_AUTHORIZATION="Bearer mtr_guess",
                HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
            )
            .status_code
            for i in range(4)
        ]
        assert statuses == [401, 401, 401, 429]

    def test_the_proxys_address_for_the_client_with_one_proxy(self, api, settings):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
        assert self.guess(APIClient(), 3, HTTP_X_FORWARDED_FOR="203.0.113.5") == [401] * 3
        limited = api.get("/api/v1/places/", HTTP_X_FORWARDED_FOR="spoofed, 203.0.113.5")
        assert_rate_limited(limited)
        ok = api.get("/api/v1/places/", HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.7")
        assert ok.status_code == 200


def test_a_meter_lists_its_registers(api, account):
    meter = MeterFactory(account=account)
    data = api.get(f"/api/v1/meters/{meter.pk}/").json()["data"]
    assert [register["code"] for register in data["registers"]] == ["default"]
    assert data["registers"][0]["is_default"] is True


def test_unauthenticated_client_gets_401_with_bearer_challenge(db):
    response = APIClient().get("/api/v1/places/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["code"] == "not_authenticated"
