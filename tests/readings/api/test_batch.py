"""Batch creation of readings (CONTRACT §4.3) and Idempotency-Key (§2)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metering.models import IdempotencyRecord
from readings import services
from readings.models import Reading
from tests.factories import MeterFactory, RegisterFactory
from tests.readings.conftest import add, day, fresh_series, stored_series

pytestmark = pytest.mark.django_db


def batch_url(meter):
    return f"/api/v1/meters/{meter.pk}/readings/batch/"


def item(n, value, **extra):
    return {"reading_date": day(n).isoformat(), "value": value, **extra}


def send(api, meter, items, **headers):
    return api.post(batch_url(meter), {"readings": items}, format="json", **headers)


class TestBatch:
    def test_valid_and_invalid_items(self, api, meter, register):
        add(meter, (0, 100))
        items = [
            item(1, 110),
            item(2, -5),  # invalid value
            item(0, 101),  # duplicate of a stored reading
            item(3, 130),
            item(3, 131),  # duplicate of item 3
            {"value": 1},  # no date
            item(4, 140, register="9.9.9"),  # unknown register
            "not an object",
        ]
        response = send(api, meter, items)
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert (data["accepted"], data["rejected"]) == (2, 6)
        assert [r["value"] for r in data["readings"]] == [110, 130]
        assert [(e["index"], e["code"]) for e in data["errors"]] == [
            (1, "validation_error"),
            (2, "duplicate_reading"),
            (4, "duplicate_reading"),
            (5, "validation_error"),
            (6, "validation_error"),
            (7, "validation_error"),
        ]
        errors = {e["index"]: e for e in data["errors"]}
        assert "value" in errors[1]["details"]
        assert "reading_date" in errors[5]["details"]
        assert "register" in errors[6]["details"]
        assert all(e["message"] for e in data["errors"])
        assert stored_series(register) == fresh_series(register)
        assert Reading.objects.count() == 3

    def test_items_out_of_order_give_the_in_order_chain(self, api, meter, register):
        response = send(api, meter, [item(3, 40), item(0, 10), item(2, 30), item(1, 20)])
        assert response.json()["data"]["accepted"] == 4
        assert [row[3] for row in stored_series(register)] == [None, 10, 10, 10]

    def test_the_hour_repeated_by_the_change_to_winter_time(self, api, meter, register):
        # Europe/Paris, 2024-10-27: 02:00-03:00 happens twice, first at +02:00, then at +01:00.
        assert meter.account.timezone == "Europe/Paris"
        items = [
            {"reading_date": "2024-10-27T02:30:00+02:00", "value": 10},
            {"reading_date": "2024-10-27T02:30:00+01:00", "value": 11},
            {"reading_date": "2024-10-27T02:45:00", "value": 12},  # no offset: the first one
        ]
        data = send(api, meter, items).json()["data"]
        assert (data["accepted"], data["rejected"]) == (3, 0), data["errors"]
        assert [r["reading_date"] for r in data["readings"]] == [
            "2024-10-27T00:30:00Z",
            "2024-10-27T01:30:00Z",
            "2024-10-27T00:45:00Z",
        ]
        stored = Reading.objects.filter(register=register).order_by("reading_date")
        assert [r.value for r in stored] == [10, 12, 11]

    def test_readings_on_several_registers(self, api, meter):
        nt = RegisterFactory(meter=meter, code="1.8.2", unit="m3")
        response = send(
            api,
            meter,
            [item(0, 1), item(0, 5, register="1.8.2"), item(1, 2), item(1, 7, register_id=nt.pk)],
        )
        assert response.json()["data"]["accepted"] == 4
        assert Reading.objects.get(register=nt, reading_date=day(1)).consumption == 2

    def test_more_than_500_items_stores_nothing(self, api, meter):
        response = send(api, meter, [item(n, n) for n in range(501)])
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "batch_too_large"
        assert not Reading.objects.exists()

    def test_500_items_are_accepted(self, api, meter):
        response = send(api, meter, [item(n, n) for n in range(500)])
        assert response.json()["data"]["accepted"] == 500

    @pytest.mark.parametrize("body", [{"readings": []}, {"readings": "x"}, {}, [1]])
    def test_empty_or_malformed_batch(self, api, meter, body):
        response = api.post(batch_url(meter), body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"

    def test_locked_item_is_reported(self, api, meter, register):
        add(meter, (0, 1), (5, 2))
        services.lock_readings(readings=Reading.objects.filter(reading_date=day(5)))
        data = send(api, meter, [item(3, 1), item(6, 3)]).json()["data"]
        assert [(e["index"], e["code"]) for e in data["errors"]] == [(0, "reading_locked")]
        assert data["accepted"] == 1

    def test_needs_readings_write(self, account, make_client, meter):
        client = make_client(account, scopes=["readings:read", "meters:write"])
        response = send(client, meter, [item(0, 1)])
        assert response.status_code == 403
        assert not Reading.objects.exists()


class TestBatchQueries:
    """A constant number of queries whatever the batch size and the history length."""

    def count(self, api, meter, items) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = send(api, meter, items)
        assert response.json()["data"]["accepted"] == len(items)
        return len(queries)

    def test_constant_queries(self, api, account):
        counts = {}
        for history in (10, 500):
            for size in (1, 50):
                meter = MeterFactory(account=account)
                add(meter, *[(n, n) for n in range(history)])
                api.get("/api/v1/account/")  # first use of the key: caches warmed
                items = [item(history + n, history + n) for n in range(size)]
                counts[(history, size)] = self.count(api, meter, items)
        assert len(set(counts.values())) == 1, counts

    def test_constant_queries_when_inserting_among_existing_readings(self, api, account):
        counts = []
        for size in (1, 40):
            meter = MeterFactory(account=account)
            add(meter, *[(2 * n, 2 * n) for n in range(100)])
            items = [item(2 * n + 1, 2 * n + 1) for n in range(size)]
            counts.append(self.count(api, meter, items))
        assert counts[0] == counts[1], counts


class TestIdempotency:
    def test_same_key_and_body_replays_and_writes_nothing(self, api, meter):
        first = send(api, meter, [item(0, 1)], HTTP_IDEMPOTENCY_KEY="k-1")
        second = send(api, meter, [item(0, 1)], HTTP_IDEMPOTENCY_KEY="k-1")
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first
        assert Reading.objects.count() == 1

    def test_single_create_is_idempotent_too(self, api, meter):
        body = item(0, 1)
        url = f"/api/v1/meters/{meter.pk}/readings/"
        first = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="abc")
        second = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="abc")
        assert (first.status_code, second.status_code) == (201, 201)
        assert first.json() == second.json()
        assert Reading.objects.count() == 1

    def test_same_key_with_another_body_is_422(self, api, meter):
        send(api, meter, [item(0, 1)], HTTP_IDEMPOTENCY_KEY="k-2")
        response = send(api, meter, [item(0, 2)], HTTP_IDEMPOTENCY_KEY="k-2")
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
        assert Reading.objects.count() == 1

    def test_same_key_on_another_route_is_422(self, api, meter):
        send(api, meter, [item(0, 1)], HTTP_IDEMPOTENCY_KEY="k-3")
        response = api.post(
            f"/api/v1/meters/{meter.pk}/readings/",
            item(0, 1),
            format="json",
            HTTP_IDEMPOTENCY_KEY="k-3",
        )
        assert response.status_code == 422

    def test_keys_are_per_account(self, api, other_api, meter, other_account):
        other_meter = MeterFactory(account=other_account)
        send(api, meter, [item(0, 1)], HTTP_IDEMPOTENCY_KEY="shared")
        response = send(other_api, other_meter, [item(0, 1)], HTTP_IDEMPOTENCY_KEY="shared")
        assert response.status_code == 201 and "Idempotent-Replayed" not in response
        assert Reading.objects.count() == 2

    def test_after_24_hours_the_key_is_free_again(self, api, meter):
        send(api, meter, [item(0, 1)], HTTP_IDEMPOTENCY_KEY="old")
        IdempotencyRecord.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
        response = send(api, meter, [item(1, 2)], HTTP_IDEMPOTENCY_KEY="old")
        assert response.status_code == 201 and "Idempotent-Replayed" not in response
        assert Reading.objects.count() == 2

    def test_expired_records_are_purged(self, api, meter):
        send(api, meter, [item(0, 1)], HTTP_IDEMPOTENCY_KEY="first")
        IdempotencyRecord.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
        send(api, meter, [item(1, 2)], HTTP_IDEMPOTENCY_KEY="second")
        assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["second"]

    def test_a_failed_request_is_not_remembered(self, api, meter):
        url = f"/api/v1/meters/{meter.pk}/readings/"
        assert (
            api.post(url, {"value": 1}, format="json", HTTP_IDEMPOTENCY_KEY="retry").status_code
            == 400
        )
        assert (
            api.post(url, item(0, 1), format="json", HTTP_IDEMPOTENCY_KEY="retry").status_code
            == 201
        )

    @pytest.mark.parametrize("key", ["", "x" * 256])
    def test_invalid_key_is_a_400(self, api, meter, key):
        response = send(api, meter, [item(0, 1)], HTTP_IDEMPOTENCY_KEY=key)
        assert response.status_code == 400
        assert not Reading.objects.exists()
