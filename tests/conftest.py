"""Fixtures shared by every test: accounts, keys, API clients (against PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from metering import domain, services
from metering.models import Account
from tests.factories import AccountFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters live in the cache: each test starts with a clean one."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def account(db) -> Account:
    return AccountFactory(slug="acme", name="Acme")


@pytest.fixture
def other_account(db) -> Account:
    return AccountFactory(slug="other", name="Other")


@pytest.fixture
def make_client(db) -> Callable[..., APIClient]:
    """``make_client(account, scopes=...)``: an API client holding a new account key."""

    def make(account: Account, scopes: tuple[str, ...] | list[str] = domain.SCOPES) -> APIClient:
        _, raw = services.create_api_key(account=account, name="test", scopes=list(scopes))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.raw_key = raw
        return client

    return make


@pytest.fixture
def api(account, make_client) -> APIClient:
    """A client with every scope on ``account``."""
    return make_client(account)


@pytest.fixture
def other_api(other_account, make_client) -> APIClient:
    """A client with every scope on ``other_account``."""
    return make_client(other_account)
