"""Fixtures shared by every test: accounts, keys, API and admin clients (on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from metering import domain, services
from metering.models import Account
from tests.factories import AccountFactory, MembershipFactory, UserFactory


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


# --- admin clients -------------------------------------------------------------------------


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def member(account):
    """``member(role, *accounts)``: a logged-in staff client with that role in each account."""

    def make(role: str = "MANAGER", *accounts: Account) -> Client:
        user = UserFactory(is_staff=True)
        for each in accounts or (account,):
            MembershipFactory(user=user, account=each, role=role)
        client = login(user)
        client.user = user
        return client

    return make


@pytest.fixture
def superuser_client(db) -> Client:
    return login(UserFactory(is_staff=True, is_superuser=True))
