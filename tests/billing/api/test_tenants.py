"""Tenants and their portal keys (CONTRACT §5, §1)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import PortalKey, Tenant
from metering import keys
from tests.billing.api import assert_error
from tests.factories import LeaseFactory, TenantFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/tenants/"


class TestCrud:
    def test_create_read_update_delete(self, api, account):
        body = {
            "name": "Jeanne Martin",
            "email": "jeanne@example.org",
            "phone": "+33 6 12 34 56 78",
            "external_reference": "CRM-42",
        }
        response = api.post(URL, body, format="json")
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert {key: data[key] for key in body} == body
        assert data["account_id"] == str(account.pk)
        tenant = Tenant.objects.get(pk=data["id"])
        assert tenant.account == account and tenant.external_reference == "CRM-42"

        assert api.get(f"{URL}{tenant.pk}/").json()["data"] == data

        response = api.patch(f"{URL}{tenant.pk}/", {"phone": None}, format="json")
        assert response.status_code == 200
        assert response.json()["data"]["phone"] == ""
        body = {"name": "J. Martin", "email": "", "phone": "", "external_reference": ""}
        assert api.put(f"{URL}{tenant.pk}/", body, format="json").status_code == 200
        tenant.refresh_from_db()
        assert (tenant.name, tenant.email) == ("J. Martin", "")

        assert api.delete(f"{URL}{tenant.pk}/").status_code == 204
        assert not Tenant.objects.filter(pk=tenant.pk).exists()

    def test_name_is_required_and_email_checked(self, api):
        assert_error(api.post(URL, {}, format="json"), 400, "validation_error", "name")
        response = api.post(URL, {"name": "x", "email": "not-an-email"}, format="json")
        assert_error(response, 400, "validation_error", "email")
        assert not Tenant.objects.exists()

    def test_tenant_with_a_lease_cannot_be_deleted(self, api, account):
        lease = LeaseFactory(tenant=TenantFactory(account=account), estate__place__account=account)
        assert_error(api.delete(f"{URL}{lease.tenant_id}/"), 409, "conflict")
        assert Tenant.objects.filter(pk=lease.tenant_id).exists()

    def test_search_filters_and_ordering(self, api, account):
        TenantFactory(account=account, name="Zoé Bernard", email="zoe@example.org")
        TenantFactory(account=account, name="Adam Petit", external_reference="CRM-7")
        TenantFactory(account=account, name="Léa Roux", email="lea@example.org")

        def names(query: str) -> list[str]:
            response = api.get(f"{URL}?{query}")
            assert response.status_code == 200, response.json()
            return [tenant["name"] for tenant in response.json()["data"]]

        assert names("search=crm-7") == ["Adam Petit"]
        assert names("search=zoe@") == ["Zoé Bernard"]
        assert names("external_reference=CRM-7") == ["Adam Petit"]
        assert names("ordering=name") == ["Adam Petit", "Léa Roux", "Zoé Bernard"]
        assert names("ordering=-name")[0] == "Zoé Bernard"
        assert_error(api.get(f"{URL}?ordering=phone_hash"), 400, "validation_error", "ordering")

    def test_other_accounts_tenants_are_invisible(self, api, other_account):
        tenant = TenantFactory(account=other_account)
        assert api.get(URL).json()["meta"]["total"] == 0
        assert_error(api.get(f"{URL}{tenant.pk}/"), 404, "not_found")


class TestPortalKeys:
    def test_key_is_shown_once_and_opens_the_portal_only(self, api, account):
        tenant = TenantFactory(account=account)
        expires = (timezone.now() + dt.timedelta(days=30)).replace(microsecond=0)
        response = api.post(
            f"{URL}{tenant.pk}/portal-keys/",
            {"name": "mobile app", "expires_at": expires.isoformat()},
            format="json",
        )
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        raw = data["key"]
        assert raw.startswith(keys.PORTAL_KEY_PREFIX)
        assert data["tenant_id"] == tenant.pk
        assert data["name"] == "mobile app"
        assert data["prefix"] == raw[: len(data["prefix"])]
        assert data["expires_at"] == expires.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        assert data["revoked_at"] is None and data["last_used_at"] is None

        stored = PortalKey.objects.get(pk=data["id"])
        assert stored.tenant == tenant and stored.account == account
        assert stored.key_hash == keys.digest(raw)
        assert raw not in str(list(PortalKey.objects.values()))

        portal = APIClient()
        portal.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert_error(portal.get(URL), 403, "permission_denied")

    def test_name_is_not_blank_and_expiry_in_the_future(self, api, account):
        # No name at all gets a default one: tests/billing/api/test_portal_keys_empty_body.py.
        tenant = TenantFactory(account=account)
        path = f"{URL}{tenant.pk}/portal-keys/"
        assert_error(api.post(path, {"name": ""}, format="json"), 400, "validation_error", "name")
        past = (timezone.now() - dt.timedelta(days=1)).isoformat()
        response = api.post(path, {"name": "k", "expires_at": past}, format="json")
        assert_error(response, 400, "validation_error", "expires_at")
        assert not PortalKey.objects.exists()

    def test_tenant_of_another_account_is_a_404(self, api, other_account):
        tenant = TenantFactory(account=other_account)
        response = api.post(f"{URL}{tenant.pk}/portal-keys/", {"name": "k"}, format="json")
        assert_error(response, 404, "not_found")
        assert not PortalKey.objects.exists()

    def test_needs_billing_write(self, account, make_client):
        tenant = TenantFactory(account=account)
        reader = make_client(account, scopes=["billing:read"])
        response = reader.post(f"{URL}{tenant.pk}/portal-keys/", {"name": "k"}, format="json")
        assert_error(response, 403, "insufficient_scope")
