"""Tenancy and credentials on every route (CONTRACT §1), checked over the whole URL map."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import (
    AllocationRule,
    BillingPeriod,
    Charge,
    Lease,
    MeterShare,
    PortalKey,
    Tariff,
    Tenant,
)
from metering import domain, keys, services
from metering.models import ApiKey, Estate, Gateway, Meter, Place, Register, ServicePlace
from readings.models import PeriodReading, Reading
from tests.api_routes import Route, api_routes
from tests.factories import (
    MembershipFactory,
    MeterFactory,
    PlaceFactory,
    RegisterFactory,
    TenantFactory,
)

pytestmark = pytest.mark.django_db

ACCOUNT_ROUTES = [route for route in api_routes() if "/portal/" not in route.template]
READ_SCOPES = [scope for scope in domain.SCOPES if scope.endswith(":read")]


def fill(route: Route, world: dict) -> str:
    """The route's path with the ids of ``world``'s objects (tests/conftest.py)."""
    model = getattr(getattr(route.view_class, "queryset", None), "model", None)
    by_model = {
        Place: world["place"],
        Estate: world["estate"],
        ServicePlace: world["service_place"],
        Gateway: world["gateway"],
        Meter: world["meter"],
        Register: world["register"],
        Reading: world["reading"],
        PeriodReading: world["period_reading"],
        Tenant: world["tenant"],
        Lease: world["lease"],
        MeterShare: world["meter_share"],
        Tariff: world["tariff"],
        AllocationRule: world["allocation_rule"],
        BillingPeriod: world["billing_period"],
        Charge: world["charge"],
    }
    values = {}
    for param in route.params:
        if param == "pk":
            assert model in by_model, f"{route}: no test object for {model}"
            values[param] = by_model[model].pk
        else:
            name = param.removesuffix("_id")
            assert name in world, f"{route}: no test object for path parameter {param}"
            values[param] = world[name].pk
    return route.path(**values)


def snapshot(account) -> dict:
    """Every stored row of the account, to prove a request changed nothing."""
    rows = {}
    for model in (
        Place,
        Estate,
        ServicePlace,
        Gateway,
        Meter,
        ApiKey,
        Tenant,
        PortalKey,
        Lease,
        MeterShare,
        Tariff,
        AllocationRule,
        BillingPeriod,
        Charge,
    ):
        rows[model.__name__] = list(model.objects.filter(account=account).order_by("pk").values())
    rows["Register"] = list(Register.objects.filter(meter__account=account).order_by("pk").values())
    rows["PeriodReading"] = list(
        PeriodReading.objects.filter(account=account).order_by("pk").values()
    )
    for model_rows in rows.values():
        for row in model_rows:
            row.pop("last_used_at", None)
    return rows


def call(client: APIClient, method: str, path: str, body: dict | None = None, query: str = ""):
    url = f"{path}?{query}" if query else path
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, body or {}, format="json")


def writable_body(client: APIClient, path: str) -> dict:
    """The object as its owner reads it, with a changed name: a body that would be accepted."""
    response = client.get(path)
    if response.status_code != 200 or not isinstance(response.json().get("data"), dict):
        return {"name": "changed", "code": "changed"}
    body = dict(response.json()["data"])
    body.pop("account_id", None)
    body["name"] = "changed"
    return body


ID_ROUTES = [route for route in ACCOUNT_ROUTES if route.params]


@pytest.mark.parametrize("route", ID_ROUTES, ids=str)
def test_another_accounts_key_gets_404_on_every_method_and_changes_nothing(
    route, world, account, api, other_api
):
    before = snapshot(account)
    for method in route.methods:
        path = fill(route, world)
        body = writable_body(api, path) if method in ("put", "patch", "post") else None
        response = call(other_api, method, path, body)
        assert response.status_code == 404, (method, path, response.content[:300])
        assert response.json()["error"]["code"] == "not_found"
    assert snapshot(account) == before


def test_lists_of_another_account_show_nothing_of_this_one(world, other_api):
    for route in ACCOUNT_ROUTES:
        if route.params or "get" not in route.methods or route.template.endswith("account/"):
            continue
        body = other_api.get(route.template).json()
        assert body["meta"]["total"] == 0, route


@pytest.mark.parametrize("route", ACCOUNT_ROUTES, ids=str)
def test_account_id_of_another_account_is_403_and_changes_nothing(
    route, world, account, other_account, api
):
    before = snapshot(account)
    for method in route.methods:
        path = fill(route, world)
        if method in ("get", "delete"):
            response = call(api, method, path, query=f"account_id={other_account.pk}")
        else:
            body = {**writable_body(api, path), "account_id": str(other_account.pk)}
            response = call(api, method, path, body)
        assert response.status_code == 403, (method, path, response.content[:300])
        assert response.json()["error"]["code"] == "permission_denied"
    assert snapshot(account) == before


def test_own_account_id_is_accepted(world, account, api):
    response = api.get(f"/api/v1/meters/?account_id={account.pk}")
    assert response.status_code == 200
    body = {"name": "n", "code": "c", "account_id": str(account.pk)}
    assert api.post("/api/v1/places/", body, format="json").status_code == 201


def test_malformed_account_id_is_a_400(api):
    response = api.get("/api/v1/meters/?account_id=not-a-uuid")
    assert response.status_code == 400
    assert "account_id" in response.json()["error"]["details"]


@pytest.mark.parametrize("route", [r for r in ACCOUNT_ROUTES if set(r.methods) - {"get"}], ids=str)
def test_read_only_key_cannot_write(route, world, account, make_client):
    reader = make_client(account, scopes=READ_SCOPES)
    before = snapshot(account)
    for method in set(route.methods) - {"get"}:
        path = fill(route, world)
        body = writable_body(reader, path) if method != "delete" else None
        response = call(reader, method, path, body)
        assert response.status_code == 403, (method, path, response.content[:300])
        assert response.json()["error"]["code"] == "insufficient_scope"
    assert snapshot(account) == before


@pytest.mark.parametrize("route", ACCOUNT_ROUTES, ids=str)
def test_every_route_needs_its_scope(route, world, account, make_client):
    """A key holding every scope but the route's own gets 403 on every method."""
    area = route.view_class.scope
    if area is None:
        # Only the account's own description needs no scope: any valid key may read it.
        assert route.template == "/api/v1/account/"
        client = make_client(account, scopes=["billing:read"])
        assert client.get(route.template).status_code == 200
        return
    others = [scope for scope in domain.SCOPES if not scope.startswith(f"{area}:")]
    client = make_client(account, scopes=others)
    for method in route.methods:
        response = call(client, method, fill(route, world), {})
        assert response.status_code == 403, (method, route)
        assert response.json()["error"]["code"] == "insufficient_scope"


def test_write_scope_implies_read(account, make_client, world):
    client = make_client(account, scopes=["meters:write"])
    assert client.get("/api/v1/meters/").status_code == 200


class TestServerOwnedFields:
    def test_ids_account_and_read_only_fields_in_a_body_are_not_stored(
        self, api, account, other_account
    ):
        body = {
            "id": 424242,
            "name": "Main",
            "serial_number": "S-1",
            "meter_type": "ELECTRICITY",
            "last_reading_value": 99,
            "last_reading_at": "2020-01-01T00:00:00Z",
            "created_at": "2000-01-01T00:00:00Z",
            "updated_at": "2000-01-01T00:00:00Z",
            "registers": [{"code": "evil", "is_default": True}],
        }
        response = api.post("/api/v1/meters/", body, format="json")
        assert response.status_code == 201, response.json()
        meter = Meter.objects.get(serial_number="S-1")
        assert meter.pk != 424242
        assert meter.account == account
        assert meter.last_reading_value is None and meter.last_reading_at is None
        assert meter.created_at > timezone.now() - dt.timedelta(minutes=1)
        assert list(meter.registers.values_list("code", flat=True)) == ["default"]

    def test_id_in_an_update_body_is_ignored(self, api, account):
        place = PlaceFactory(account=account)
        response = api.patch(
            f"/api/v1/places/{place.pk}/", {"id": 777, "name": "New"}, format="json"
        )
        assert response.status_code == 200
        assert response.json()["data"]["id"] == place.pk
        assert Place.objects.get(pk=place.pk).name == "New"
        assert not Place.objects.filter(pk=777).exists()

    def test_register_meter_cannot_be_moved_through_the_body(self, api, account):
        meter, other_meter = MeterFactory(account=account), MeterFactory(account=account)
        register = RegisterFactory(meter=meter)
        response = api.patch(
            f"/api/v1/meters/{meter.pk}/registers/{register.pk}/",
            {"meter_id": other_meter.pk, "name": "HT"},
            format="json",
        )
        assert response.status_code == 200
        register.refresh_from_db()
        assert register.meter == meter and register.name == "HT"


@pytest.mark.parametrize(
    ("field", "factory_name"),
    [
        ("place_id", "place"),
        ("estate_id", "estate"),
        ("service_place_id", "service_place"),
        ("gateway_id", "gateway"),
        ("parent_meter_id", "meter"),
    ],
)
def test_reference_to_another_accounts_object_is_a_400_on_that_field(
    field, factory_name, api, world, other_api
):
    body = {
        "name": "m",
        "serial_number": "X-1",
        "meter_type": "ELECTRICITY",
        field: world[factory_name].pk,
    }
    response = other_api.post("/api/v1/meters/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["details"]
    assert not Meter.objects.filter(serial_number="X-1").exists()


class TestKeys:
    def test_key_is_stored_hashed_with_a_clear_prefix(self, account):
        api_key, raw = services.create_api_key(account=account, name="k", scopes=["meters:read"])
        stored = ApiKey.objects.get(pk=api_key.pk)
        assert raw.startswith(keys.ACCOUNT_KEY_PREFIX)
        assert stored.prefix == raw[:12]
        assert stored.key_hash == keys.digest(raw) != raw
        assert raw not in str(list(ApiKey.objects.values()))

    def test_last_used_at_is_recorded(self, api, account):
        assert ApiKey.objects.get().last_used_at is None
        api.get("/api/v1/places/")
        assert ApiKey.objects.get().last_used_at is not None

    def test_revoked_key_is_refused_at_once(self, api, account):
        assert api.get("/api/v1/places/").status_code == 200
        ApiKey.objects.update(revoked_at=timezone.now())
        response = api.get("/api/v1/places/")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"

    def test_expired_key_is_refused(self, api, account):
        ApiKey.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        assert api.get("/api/v1/places/").status_code == 401

    def test_key_with_future_expiry_works(self, api, account):
        ApiKey.objects.update(expires_at=timezone.now() + dt.timedelta(days=1))
        assert api.get("/api/v1/places/").status_code == 200

    @pytest.mark.parametrize(
        "header",
        [
            "Bearer mtr_not-a-real-key",
            "Bearer",
            "Bearer a b",
            "Bearer unknownprefix",
            "Basic dXNlcjpwdw==",
            "Bearer mtr_\u00e9",
        ],
    )
    def test_invalid_credentials_are_401_with_bearer_challenge(self, db, header):
        client = APIClient()
        response = client.get("/api/v1/places/", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "not_authenticated"

    def test_portal_key_cannot_open_account_routes(self, account, world, make_portal):
        client = make_portal(TenantFactory(account=account))
        for route in ACCOUNT_ROUTES:
            for method in route.methods:
                response = call(client, method, fill(route, world), {})
                assert response.status_code == 403, (method, route)
                assert response.json()["error"]["code"] == "permission_denied"

    def test_account_endpoint_describes_the_keys_account_and_scopes(self, account, make_client):
        client = make_client(account, scopes=["meters:write"])
        data = client.get("/api/v1/account/").json()["data"]
        assert data["id"] == str(account.pk)
        assert data["currency"] == "EUR" and data["timezone"] == "Europe/Paris"
        assert data["scopes"] == ["meters:read", "meters:write"]
        assert data["settings"]["anomaly_baseline_days"] == 365


class TestSessions:
    def test_member_of_one_account_acts_on_it(self, account, world):
        membership = MembershipFactory(account=account, role="VIEWER")
        client = APIClient()
        client.force_login(membership.user)
        body = client.get("/api/v1/meters/").json()
        assert body["meta"]["total"] == Meter.objects.filter(account=account).count() == 4

    def test_member_of_several_accounts_must_say_which(self, account, other_account, world):
        membership = MembershipFactory(account=account, role="MANAGER")
        MembershipFactory(account=other_account, user=membership.user, role="MANAGER")
        client = APIClient()
        client.force_login(membership.user)
        response = client.get("/api/v1/meters/")
        assert response.status_code == 400
        assert "account_id" in response.json()["error"]["details"]
        own = client.get(f"/api/v1/meters/?account_id={account.pk}").json()["meta"]["total"]
        assert own == Meter.objects.filter(account=account).count() == 4
        other = client.get(f"/api/v1/meters/?account_id={other_account.pk}").json()
        assert other["meta"]["total"] == 0

    def test_account_id_of_an_account_the_member_is_not_in_is_403(self, account, other_account):
        membership = MembershipFactory(account=account)
        client = APIClient()
        client.force_login(membership.user)
        response = client.get(f"/api/v1/meters/?account_id={other_account.pk}")
        assert response.status_code == 403

    def test_user_without_membership_is_403(self, account):
        membership = MembershipFactory(account=account)
        membership.delete()
        client = APIClient()
        client.force_login(membership.user)
        assert client.get("/api/v1/meters/").status_code == 403

    @pytest.mark.parametrize(
        ("role", "meters_write", "readings_read"),
        [
            ("ADMIN", True, True),
            ("MANAGER", True, True),
            ("OPERATOR", False, True),
            ("VIEWER", False, True),
        ],
    )
    def test_role_gives_its_scopes(self, account, role, meters_write, readings_read):
        membership = MembershipFactory(account=account, role=role)
        client = APIClient()
        client.force_login(membership.user)
        response = client.post("/api/v1/places/", {"name": "n", "code": "c"}, format="json")
        assert (response.status_code == 201) is meters_write
        if not meters_write:
            assert response.json()["error"]["code"] == "insufficient_scope"
        scopes = client.get("/api/v1/account/").json()["data"]["scopes"]
        assert ("readings:read" in scopes) is readings_read
