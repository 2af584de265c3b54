"""Who reaches the portal, and what a tenant sees of the account (CONTRACT §1, §6).

Over the whole URL map: a portal key opens no account route, an account key (or a member's
session) no portal route; a tenant's key on another tenant's meter, reading, photo or
statement is a 404; a revoked or expired key is refused at once.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import BillingPeriod, Charge, Lease, PortalKey, Tenant
from metering.models import Estate, Meter, Place, Register
from readings import services as readings_services
from readings.models import Reading
from tests.api_routes import Route, api_routes
from tests.billing.api import assert_error
from tests.billing.portal.conftest import charge, photo_file
from tests.factories import LeaseFactory, MembershipFactory, MeterFactory

pytestmark = pytest.mark.django_db

PORTAL_ROUTES = [route for route in api_routes() if "/portal/" in route.template]
ACCOUNT_ROUTES = [route for route in api_routes() if "/portal/" not in route.template]
ACTOR = readings_services.Actor("test", "API")


def reading_of(meter: Meter, value: int = 5) -> Reading:
    item = readings_services.ReadingInput(
        reading_date=dt.datetime(2024, 2, 1, tzinfo=dt.UTC), value=Decimal(value)
    )
    return readings_services.create_readings(meter=meter, items=[item], actor=ACTOR).accepted[0]


@pytest.fixture
def world(account, place, estate, lease, meter, closed_period):
    """The tenant's objects, each kind that a route's path names."""
    charge(closed_period, meter, lease, "10.00", "2.00")
    return {
        Place: place,
        Estate: estate,
        Meter: meter,
        Register: meter.registers.get(is_default=True),
        Reading: reading_of(meter),
        Lease: lease,
        Tenant: lease.tenant,
        BillingPeriod: closed_period,
        Charge: Charge.objects.get(),
    }


# A path parameter named ``<name>_id`` names an object of this model.
PARAM_MODELS = {
    "meter_id": Meter,
    "place_id": Place,
    "estate_id": Estate,
    "lease_id": Lease,
    "billing_period_id": BillingPeriod,
}


def fill(route: Route, world: dict) -> str:
    """The route's path with ids of ``world``'s objects; ``pk`` by the view's model. A model
    the world lacks takes the id of the tenant's meter: the credential is refused before any
    object is looked up, so the id only needs to be well formed."""
    model = getattr(getattr(route.view_class, "queryset", None), "model", None)
    values = {}
    for param in route.params:
        named = model if param == "pk" else PARAM_MODELS.get(param)
        assert param == "pk" or named is not None, f"{route}: unknown path parameter {param}"
        values[param] = world.get(named, world[Meter]).pk
    return route.path(**values)


def call(client: APIClient, method: str, path: str):
    if method in ("get", "delete"):
        return getattr(client, method)(path)
    return getattr(client, method)(path, {}, format="json")


def test_the_portal_has_the_routes_of_the_contract():
    assert {(route.template, route.methods) for route in PORTAL_ROUTES} == {
        ("/api/v1/portal/me/", ("get",)),
        ("/api/v1/portal/meters/", ("get",)),
        ("/api/v1/portal/meters/{pk}/", ("get",)),
        ("/api/v1/portal/meters/{meter_id}/readings/", ("get", "post")),
        ("/api/v1/portal/meters/{meter_id}/readings/{pk}/photo/", ("get",)),
        ("/api/v1/portal/meters/{meter_id}/consumption/", ("get",)),
        ("/api/v1/portal/meters/{meter_id}/allowed-range/", ("get",)),
        ("/api/v1/portal/statements/", ("get",)),
        ("/api/v1/portal/statements/{billing_period_id}/{lease_id}/", ("get",)),
    }


@pytest.mark.parametrize("route", PORTAL_ROUTES, ids=str)
def test_an_account_key_opens_no_portal_route(route, world, api):
    for method in route.methods:
        response = call(api, method, fill(route, world))
        assert_error(response, 403, "permission_denied")
    assert Reading.objects.count() == 1


@pytest.mark.parametrize("route", PORTAL_ROUTES, ids=str)
def test_a_members_session_opens_no_portal_route(route, world, account):
    client = APIClient()
    client.force_login(MembershipFactory(account=account, role="ADMIN").user)
    for method in route.methods:
        assert_error(call(client, method, fill(route, world)), 403, "permission_denied")


@pytest.mark.parametrize("route", PORTAL_ROUTES, ids=str)
def test_no_credentials_is_401(route, world):
    for method in route.methods:
        response = call(APIClient(), method, fill(route, world))
        assert_error(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("route", ACCOUNT_ROUTES, ids=str)
def test_a_portal_key_opens_no_account_route(route, world, portal):
    """(tests/metering/api/test_access.py does the same with an object of every kind.)"""
    for method in route.methods:
        response = call(portal, method, fill(route, world))
        assert_error(response, 403, "permission_denied")
    assert Reading.objects.count() == 1


@pytest.mark.parametrize("route", PORTAL_ROUTES, ids=str)
def test_the_tenants_own_key_opens_every_portal_route(route, world, portal):
    if route.template.endswith("/photo/"):
        return  # the world's reading has no photo: tests/billing/portal/test_photos.py
    for method in route.methods:
        if method == "get":
            query = "start=2024-01-01&end=2024-03-31" if "consumption" in route.template else ""
            if "allowed-range" in route.template:
                query = "reading_date=2024-03-01"
            response = portal.get(f"{fill(route, world)}?{query}")
            assert response.status_code == 200, (route, response.content[:300])


class TestAnotherTenant:
    """A tenant's key on another tenant's objects of the same account: 404, nothing changes."""

    def test_meter(self, portal, meter, neighbour):
        other = neighbour["meter"]
        for path in (
            f"/api/v1/portal/meters/{other.pk}/",
            f"/api/v1/portal/meters/{other.pk}/readings/",
            f"/api/v1/portal/meters/{other.pk}/consumption/?start=2024-01-01&end=2024-01-31",
            f"/api/v1/portal/meters/{other.pk}/allowed-range/?reading_date=2024-01-01",
        ):
            assert_error(portal.get(path), 404, "not_found")
        body = {"reading_date": "2024-01-01", "value": 1}
        response = portal.post(f"/api/v1/portal/meters/{other.pk}/readings/", body, format="json")
        assert_error(response, 404, "not_found")
        assert not Reading.objects.exists()
        listed = portal.get("/api/v1/portal/meters/").json()["data"]
        assert [row["id"] for row in listed] == [meter.pk]

    def test_reading_and_photo(self, portal, meter, neighbour, make_portal):
        other = make_portal(neighbour["tenant"])
        upload = {"reading_date": "2024-01-01", "value": "3", "photo": photo_file()}
        path = f"/api/v1/portal/meters/{neighbour['meter'].pk}/readings/"
        response = other.post(path, upload, format="multipart")
        assert response.status_code == 201, response.content
        reading_id = response.json()["data"]["id"]
        assert other.get(f"{path}{reading_id}/photo/").status_code == 200
        # The photo route of the neighbour's reading, through either meter's path.
        for meter_id in (neighbour["meter"].pk, meter.pk):
            photo = f"/api/v1/portal/meters/{meter_id}/readings/{reading_id}/photo/"
            assert_error(portal.get(photo), 404, "not_found")
        mine = portal.get(f"/api/v1/portal/meters/{meter.pk}/readings/").json()
        assert mine["meta"]["total"] == 0

    def test_statement(self, portal, neighbour, closed_period, lease, meter):
        charge(closed_period, neighbour["meter"], neighbour["lease"], "50.00", "10.00")
        charge(closed_period, meter, lease, "10.00", "2.00")
        path = f"/api/v1/portal/statements/{closed_period.pk}/{neighbour['lease'].pk}/"
        for query in ("", "?format=csv", "?format=html"):
            assert_error(portal.get(path + query), 404, "not_found")
        listed = portal.get("/api/v1/portal/statements/").json()["data"]
        assert [row["lease"]["id"] for row in listed] == [lease.pk]

    def test_a_tenant_with_no_current_lease_sees_no_meter(
        self, account, estate, make_portal, meter
    ):
        former = LeaseFactory(
            estate=estate,
            tenant__account=account,
            start_date=dt.date(2020, 1, 1),
            end_date=dt.date(2023, 5, 31),
        )
        client = make_portal(former.tenant)
        assert client.get("/api/v1/portal/meters/").json()["meta"]["total"] == 0
        assert_error(client.get(f"/api/v1/portal/meters/{meter.pk}/"), 404, "not_found")
        me = client.get("/api/v1/portal/me/").json()["data"]
        assert [(row["id"], row["is_current"]) for row in me["leases"]] == [(former.pk, False)]


def test_another_accounts_meter_is_404(portal, other_account):
    meter = MeterFactory(account=other_account)
    assert_error(portal.get(f"/api/v1/portal/meters/{meter.pk}/"), 404, "not_found")


class TestKeys:
    def test_revoked_key_is_refused_at_once(self, portal, meter):
        assert portal.get("/api/v1/portal/meters/").status_code == 200
        PortalKey.objects.update(revoked_at=timezone.now())
        assert_error(portal.get("/api/v1/portal/meters/"), 401, "not_authenticated")

    def test_expired_key_is_refused(self, portal, meter):
        PortalKey.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        assert_error(portal.get("/api/v1/portal/me/"), 401, "not_authenticated")

    def test_unknown_portal_key_is_401(self, db):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer mtp_not-a-real-key")
        assert_error(client.get("/api/v1/portal/me/"), 401, "not_authenticated")

    def test_last_used_at_is_recorded(self, portal, tenant):
        portal.get("/api/v1/portal/me/")
        assert PortalKey.objects.get().last_used_at is not None
