"""``POST /tenants/{id}/portal-keys/`` with no body or ``{}``: a key with a default name."""

from __future__ import annotations

import pytest

from billing.models import PortalKey
from metering import keys
from tests.billing.api import assert_error
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/tenants/{}/portal-keys/"


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda api, path: api.post(path), id="no body"),
        pytest.param(lambda api, path: api.post(path, {}, format="json"), id="empty object"),
        pytest.param(
            lambda api, path: api.post(path, b"", content_type="application/json"),
            id="empty JSON body",
        ),
    ],
)
def test_an_empty_body_gives_a_key_named_after_today(send, api, account):
    tenant = TenantFactory(account=account)
    response = send(api, URL.format(tenant.pk))
    assert response.status_code == 201, response.content[:500]
    data = response.json()["data"]
    name = f"Portal key {account.today().isoformat()}"
    assert data["name"] == name
    assert data["key"].startswith(keys.PORTAL_KEY_PREFIX)
    assert data["expires_at"] is None
    stored = PortalKey.objects.get(pk=data["id"])
    assert (stored.tenant, stored.name, stored.key_hash) == (tenant, name, keys.digest(data["key"]))


def test_a_given_name_is_kept_and_a_blank_one_refused(api, account):
    tenant = TenantFactory(account=account)
    response = api.post(URL.format(tenant.pk), {"name": "mobile app"}, format="json")
    assert response.status_code == 201, response.content[:500]
    assert response.json()["data"]["name"] == "mobile app"
    # A name sent must say something: "" or spaces are a mistake, not a request for a default.
    assert_error(
        api.post(URL.format(tenant.pk), {"name": "  "}, format="json"),
        400,
        "validation_error",
        "name",
    )
    assert PortalKey.objects.count() == 1


def test_a_body_that_is_not_an_object_is_a_400(api, account):
    tenant = TenantFactory(account=account)
    response = api.post(URL.format(tenant.pk), [], format="json")
    assert_error(response, 400, "validation_error")
    assert not PortalKey.objects.exists()
