"""create_account and create_api_key (CONTRACT §7): last line, clear errors."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from billing.models import PortalKey
from metering.models import Account, ApiKey
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_account_prints_its_id_last(db):
    lines = run(
        "create_account",
        "Régie Dupont",
        "--slug",
        "dupont",
        "--currency",
        "CHF",
        "--timezone",
        "Europe/Zurich",
    )
    account = Account.objects.get(slug="dupont")
    assert lines[-1] == str(account.pk)
    assert (account.name, account.currency, account.timezone) == (
        "Régie Dupont",
        "CHF",
        "Europe/Zurich",
    )


def test_create_account_defaults(db):
    run("create_account", "A", "--slug", "a")
    account = Account.objects.get(slug="a")
    assert (account.currency, account.timezone) == ("EUR", "Europe/Paris")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slug", "x", "--currency", "EURO"], "currency"),
        (["--slug", "x", "--timezone", "Mars/Olympus"], "timezone"),
        (["--slug", "not a slug"], "slug"),
    ],
)
def test_create_account_rejects_bad_values(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_account", "A", *args)
    assert not Account.objects.exists()


def test_create_account_refuses_a_taken_slug(account):
    with pytest.raises(CommandError, match="already exists"):
        run("create_account", "B", "--slug", account.slug)


def test_create_api_key_prints_a_working_key_last(account):
    lines = run(
        "create_api_key",
        "--account",
        account.slug,
        "--name",
        "gateway",
        "--scopes",
        "meters:read,readings:write",
    )
    key = lines[-1]
    stored = ApiKey.objects.get()
    assert stored.scopes == ["meters:read", "readings:write"]
    assert key not in str(list(ApiKey.objects.values()))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/meters/").status_code == 200
    assert (
        client.post("/api/v1/places/", {"name": "x", "code": "x"}, format="json").status_code == 403
    )


def test_create_api_key_all_scopes(account):
    run("create_api_key", "--account", account.slug, "--scopes", "all")
    assert len(ApiKey.objects.get().scopes) == 6


def test_create_portal_key_for_a_tenant(account):
    tenant = TenantFactory(account=account)
    key = run("create_api_key", "--tenant", str(tenant.pk))[-1]
    assert key.startswith("mtp_")
    assert PortalKey.objects.get().tenant == tenant


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "nope", "--scopes", "all"], "No account"),
        (["--account", "acme", "--scopes", "meters:delete"], "Unknown scope"),
        (["--account", "acme"], "--scopes"),
        (["--tenant", "999999"], "No tenant"),
        ([], "--account"),
        (["--account", "acme", "--scopes", "all", "--expires-at", "tomorrow"], "ISO 8601"),
        (["--account", "acme", "--scopes", "all", "--expires-at", "2001-01-01"], "past"),
    ],
)
def test_create_api_key_errors_are_clear(account, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ApiKey.objects.exists() and not PortalKey.objects.exists()


def test_create_api_key_with_expiry(account):
    run("create_api_key", "--account", "acme", "--scopes", "all", "--expires-at", "2099-01-01")
    assert ApiKey.objects.get().expires_at.year == 2099
