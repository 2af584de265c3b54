"""``Idempotency-Key`` is remembered per credential, never shared within an account (CONTRACT §2).

Two API keys, a portal key and a member's session of one account each have their own keys: a
key sent by one credential never replays, nor refuses (422), the request of another; the same
credential still gets its replay.
"""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from metering.models import IdempotencyRecord
from readings.models import Reading
from tests.factories import EstateFactory, LeaseFactory, MembershipFactory, MeterFactory

pytestmark = pytest.mark.django_db


def readings_url(meter) -> str:
    return f"/api/v1/meters/{meter.pk}/readings/"


def reading(day: int, value: int) -> dict:
    return {"reading_date": f"2024-03-{day:02d}T12:00:00Z", "value": value}


def post(client: APIClient, url: str, body: dict, key: str = "order-42"):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.fixture
def meter(account):
    return MeterFactory(account=account)


@pytest.fixture
def session(account) -> APIClient:
    """A member of the account (MANAGER) signed in with a session."""
    client = APIClient()
    client.force_login(MembershipFactory(account=account, role="MANAGER").user)
    return client


@pytest.fixture
def portal(account, meter, make_portal) -> APIClient:
    """A tenant of the account whose lease covers ``meter``, with a portal key."""
    estate = EstateFactory(place__account=account)
    meter.estate, meter.place = estate, estate.place
    meter.save()
    lease = LeaseFactory(estate=estate, start_date=dt.date(2023, 1, 1))
    return make_portal(lease.tenant)


class TestTwoCredentialsOfOneAccount:
    def test_two_api_keys_with_another_body_are_independent(self, api, make_client, account, meter):
        second_key = make_client(account)
        first = post(api, readings_url(meter), reading(1, 10))
        second = post(second_key, readings_url(meter), reading(2, 20))

        assert first.status_code == 201
        # Not 422 idempotency_key_reused: the other key never claimed it.
        assert second.status_code == 201, second.content
        assert "Idempotent-Replayed" not in second
        assert second.json()["data"]["value"] == 20
        assert sorted(Reading.objects.values_list("value", flat=True)) == [10, 20]

    def test_two_api_keys_with_the_same_body_are_not_a_replay(
        self, api, make_client, account, meter
    ):
        second_key = make_client(account)
        post(api, readings_url(meter), reading(1, 10))
        second = post(second_key, readings_url(meter), reading(1, 10))

        # The request runs: the reading exists already, which the second key learns as such.
        assert second.status_code == 409, second.content
        assert second.json()["error"]["code"] == "duplicate_reading"
        assert "Idempotent-Replayed" not in second
        assert Reading.objects.count() == 1

    def test_a_portal_key_cannot_pre_claim_the_account_keys_keys(self, api, portal, meter):
        claimed = post(portal, f"/api/v1/portal/meters/{meter.pk}/readings/", reading(1, 10))
        assert claimed.status_code == 201, claimed.content

        response = post(api, readings_url(meter), reading(2, 20))

        assert response.status_code == 201, response.content
        assert "Idempotent-Replayed" not in response
        assert response.json()["data"]["source"] == "API"
        assert Reading.objects.count() == 2

    def test_a_member_session_and_an_api_key_are_independent(self, api, session, meter):
        assert post(session, readings_url(meter), reading(1, 10)).status_code == 201
        response = post(api, readings_url(meter), reading(2, 20))
        assert response.status_code == 201, response.content
        assert "Idempotent-Replayed" not in response
        assert Reading.objects.count() == 2

    def test_each_credential_has_its_own_record(self, api, make_client, session, account, meter):
        post(api, readings_url(meter), reading(1, 10))
        post(make_client(account), readings_url(meter), reading(2, 20))
        post(session, readings_url(meter), reading(3, 30))
        records = IdempotencyRecord.objects.filter(account=account, key="order-42")
        assert records.count() == 3
        assert len(set(records.values_list("credential", flat=True))) == 3


class TestTheSameCredential:
    @pytest.mark.parametrize("who", ["api", "session"])
    def test_replays_its_first_response(self, who, request, meter):
        client = request.getfixturevalue(who)
        first = post(client, readings_url(meter), reading(1, 10))
        second = post(client, readings_url(meter), reading(1, 10))
        assert (first.status_code, second.status_code) == (201, 201)
        assert second.json() == first.json()
        assert second["Idempotent-Replayed"] == "true"
        assert Reading.objects.count() == 1

    def test_a_portal_key_replays_its_first_response(self, portal, meter):
        url = f"/api/v1/portal/meters/{meter.pk}/readings/"
        first = post(portal, url, reading(1, 10))
        second = post(portal, url, reading(1, 10))
        assert (first.status_code, second.status_code) == (201, 201)
        assert second["Idempotent-Replayed"] == "true"
        assert Reading.objects.count() == 1

    def test_another_body_is_still_422(self, api, meter):
        post(api, readings_url(meter), reading(1, 10))
        response = post(api, readings_url(meter), reading(2, 20))
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
        assert Reading.objects.count() == 1

    def test_another_session_of_the_same_member_replays(self, account, meter):
        user = MembershipFactory(account=account, role="MANAGER").user
        first_client, second_client = APIClient(), APIClient()
        first_client.force_login(user)
        second_client.force_login(user)
        first = post(first_client, readings_url(meter), reading(1, 10))
        second = post(second_client, readings_url(meter), reading(1, 10))
        assert second.status_code == 201 and second["Idempotent-Replayed"] == "true"
        assert second.json() == first.json()
