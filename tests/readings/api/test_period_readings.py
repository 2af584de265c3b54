"""Period readings through the API (CONTRACT §4.4): fields, overlaps, flags, batch, locks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering.models import Meter
from readings import periods, selectors, services
from readings.domain import DEVIATION, SPIKE
from readings.models import PeriodReading
from tests.factories import AccountFactory, EstateFactory, MeterFactory, PlaceFactory
from tests.readings.test_periods import create, date, fresh_flags, item, stored_flags

pytestmark = pytest.mark.django_db

OUTPUT_FIELDS = {
    "id",
    "account_id",
    "meter_id",
    "start_date",
    "end_date",
    "consumption",
    "unit",
    "cost",
    "cost_currency",
    "demand_kw",
    "is_estimated",
    "notes",
    "anomaly_flags",
    "is_locked",
    "source",
    "created_by",
    "created_at",
    "updated_at",
}


def url(meter, suffix=""):
    return f"/api/v1/meters/{meter.pk}/period-readings/{suffix}"


def body(start: int, end: int, amount="30", **extra) -> dict:
    return {
        "start_date": date(start).isoformat(),
        "end_date": date(end).isoformat(),
        "consumption": amount,
        **extra,
    }


def post(api, meter, payload, **headers):
    return api.post(url(meter), payload, format="json", **headers)


def send(api, meter, items, **headers):
    return api.post(url(meter, "batch/"), {"readings": items}, format="json", **headers)


def error(response) -> dict:
    return response.json()["error"]


@pytest.fixture
def meter(account):
    return MeterFactory(account=account, meter_type="GAS", serial_number="G-1")


class TestCreate:
    def test_output_fields(self, api, meter, account):
        response = post(
            api,
            meter,
            body(0, 30, "412.5", cost="98.40", demand_kw=12, is_estimated=True, notes="bill 7"),
        )
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert set(data) == OUTPUT_FIELDS
        period = PeriodReading.objects.get()
        assert data["id"] == period.pk
        assert (data["account_id"], data["meter_id"]) == (str(account.pk), meter.pk)
        assert (data["start_date"], data["end_date"]) == ("2023-01-01", "2023-01-31")
        assert (data["consumption"], data["unit"]) == (412.5, "m3")
        assert (data["cost"], data["cost_currency"], data["demand_kw"]) == (98.4, "EUR", 12)
        assert (data["is_estimated"], data["notes"]) == (True, "bill 7")
        assert (data["anomaly_flags"], data["is_locked"]) == ([], False)
        assert (data["source"], data["created_by"]) == ("API", f"key:{api.raw_key[:12]}")
        assert data["created_at"].endswith("Z") and data["updated_at"].endswith("Z")
        assert (period.consumption, period.cost, period.source) == (D("412.5"), D("98.40"), "API")

    def test_defaults(self, api, meter):
        data = post(api, meter, body(0, 0)).json()["data"]
        assert (data["cost"], data["cost_currency"], data["demand_kw"]) == (None, "EUR", None)
        assert (data["is_estimated"], data["notes"]) == (False, "")

    def test_currency_is_the_accounts_by_default(self, make_client):
        account = AccountFactory(currency="CHF")
        meter = MeterFactory(account=account)
        client = make_client(account)
        assert post(client, meter, body(0, 9)).json()["data"]["cost_currency"] == "CHF"
        data = post(client, meter, body(10, 19, cost_currency=None)).json()["data"]
        assert data["cost_currency"] == "CHF"
        data = post(client, meter, body(20, 29, cost_currency="EUR", cost=5)).json()["data"]
        assert data["cost_currency"] == "EUR"

    def test_numeric_strings_and_negative_consumption(self, api, meter):
        data = post(api, meter, body(0, 9, "-2.5", cost="-10.00")).json()["data"]
        assert (data["consumption"], data["cost"], data["anomaly_flags"]) == (
            -2.5,
            -10,
            ["NEGATIVE"],
        )

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"end_date": "2023-01-31", "consumption": 1}, "start_date"),
            ({"start_date": "2023-01-01", "consumption": 1}, "end_date"),
            ({"start_date": "2023-01-01", "end_date": "2023-01-31"}, "consumption"),
            (body(5, 4), "end_date"),
            (body(0, 9, "abc"), "consumption"),
            (body(0, 9, "NaN"), "consumption"),
            (body(0, 9, "1.0000001"), "consumption"),
            (body(0, 9, "1" * 19), "consumption"),
            (body(0, 9, cost="1.001"), "cost"),
            (body(0, 9, cost_currency="XYZ"), "cost_currency"),
            (body(0, 9, demand_kw=-1), "demand_kw"),
            (body(0, 9, is_estimated="maybe"), "is_estimated"),
            ({**body(0, 9), "start_date": "2023-02-30"}, "start_date"),
            ({**body(0, 9), "end_date": "2999-01-01"}, "end_date"),
            ({**body(0, 9), "start_date": "1900-01-01"}, None),  # valid, far back
            ({**body(0, 9), "start_date": "1899-12-31"}, "start_date"),  # before the calendar
        ],
    )
    def test_invalid_fields(self, api, meter, payload, field):
        response = post(api, meter, payload)
        if field is None:
            assert response.status_code == 201, response.json()
            return
        assert response.status_code == 400, response.json()
        assert error(response)["code"] == "validation_error"
        assert field in error(response)["details"]
        assert not PeriodReading.objects.exists()

    def test_a_period_ending_today_is_fine_tomorrow_is_not(self, api, meter, account):
        today = account.today()
        payload = {"start_date": today.isoformat(), "end_date": today.isoformat(), "consumption": 1}
        assert post(api, meter, payload).status_code == 201
        tomorrow = (today + dt.timedelta(days=1)).isoformat()
        response = post(api, meter, {**payload, "start_date": tomorrow, "end_date": tomorrow})
        assert response.status_code == 400 and "end_date" in error(response)["details"]

    def test_overlap_is_409(self, api, meter):
        assert post(api, meter, body(10, 19)).status_code == 201
        for start, end in [(0, 10), (19, 30), (12, 14), (0, 40), (10, 19)]:
            response = post(api, meter, body(start, end))
            assert response.status_code == 409, (start, end)
            assert error(response)["code"] == "overlap"
        assert post(api, meter, body(20, 29)).status_code == 201
        assert PeriodReading.objects.count() == 2

    def test_same_days_on_another_meter(self, api, meter, account):
        post(api, meter, body(0, 9))
        assert post(api, MeterFactory(account=account), body(0, 9)).status_code == 201

    def test_decommissioned_meter_is_a_409_conflict(self, api, account):
        meter = MeterFactory(account=account, status="DECOMMISSIONED")
        response = post(api, meter, body(0, 9))
        assert response.status_code == 409
        assert error(response)["code"] == "conflict"
        assert not PeriodReading.objects.exists()

    def test_meter_of_another_account_is_404(self, api, other_account):
        theirs = MeterFactory(account=other_account)
        response = post(api, theirs, body(0, 9))
        assert response.status_code == 404 and error(response)["code"] == "not_found"
        assert send(api, theirs, [body(0, 9)]).status_code == 404
        assert not PeriodReading.objects.exists()

    def test_needs_readings_write(self, account, make_client, meter):
        client = make_client(account, scopes=["readings:read", "meters:write"])
        response = post(client, meter, body(0, 9))
        assert response.status_code == 403
        assert error(response)["code"] == "insufficient_scope"
        assert client.get(url(meter)).status_code == 200


class TestReadUpdateDelete:
    def test_detail_and_list(self, api, meter):
        first, second = create(meter, item(0, 9), item(10, 19))
        data = api.get(url(meter, f"{second.pk}/")).json()["data"]
        assert (data["id"], data["start_date"], data["unit"]) == (second.pk, "2023-01-11", "m3")
        listing = api.get(url(meter)).json()
        assert [r["id"] for r in listing["data"]] == [first.pk, second.pk]
        assert listing["meta"]["total"] == 2

    def test_another_accounts_period_is_404_and_unchanged(self, api, other_api, meter):
        (period,) = create(meter, item(0, 9))
        for method in ("get", "patch", "put", "delete"):
            response = getattr(other_api, method)(
                url(meter, f"{period.pk}/"), body(0, 9, "1"), format="json"
            )
            assert response.status_code == 404, method
            assert error(response)["code"] == "not_found"
        assert PeriodReading.objects.get().consumption == 30

    def test_patch_consumption(self, api, meter):
        (period,) = create(meter, item(0, 9))
        response = api.patch(url(meter, f"{period.pk}/"), {"consumption": "31.5"}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["data"]["consumption"] == 31.5
        assert PeriodReading.objects.get().consumption == D("31.5")

    def test_put_replaces_the_editable_fields(self, api, meter):
        (period,) = create(meter, item(0, 9, cost=D(5), notes="x", is_estimated=True))
        response = api.put(url(meter, f"{period.pk}/"), body(1, 9, "8"), format="json")
        assert response.status_code == 200, response.json()
        stored = PeriodReading.objects.get()
        assert (stored.start_date, stored.consumption, stored.is_estimated) == (date(1), 8, False)
        assert stored.cost == 5  # not sent: kept, as PUT does for every optional field

    def test_update_into_an_overlap_is_409_and_changes_nothing(self, api, meter):
        _, second = create(meter, item(0, 9), item(10, 19))
        response = api.patch(
            url(meter, f"{second.pk}/"), {"start_date": date(9).isoformat()}, format="json"
        )
        assert response.status_code == 409
        assert error(response)["code"] == "overlap"
        assert PeriodReading.objects.get(pk=second.pk).start_date == date(10)

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"end_date": "2022-12-01"}, "end_date"),
            ({"consumption": None}, "consumption"),
            ({"cost_currency": "EURO"}, "cost_currency"),
            ({"start_date": "yesterday"}, "start_date"),
        ],
    )
    def test_invalid_update_is_400(self, api, meter, payload, field):
        (period,) = create(meter, item(0, 9))
        response = api.patch(url(meter, f"{period.pk}/"), payload, format="json")
        assert response.status_code == 400, response.json()
        assert field in error(response)["details"]
        assert PeriodReading.objects.get().end_date == date(9)

    def test_read_only_fields_in_a_body_are_ignored(self, api, meter, account):
        (period,) = create(meter, item(0, 9))
        response = api.patch(
            url(meter, f"{period.pk}/"),
            {"id": 999, "source": "PORTAL", "anomaly_flags": ["SPIKE"], "unit": "kg"},
            format="json",
        )
        assert response.status_code == 200
        stored = PeriodReading.objects.get()
        assert (stored.pk, stored.source, stored.anomaly_flags) == (period.pk, "IMPORT", [])

    def test_delete(self, api, meter):
        (period,) = create(meter, item(0, 9))
        response = api.delete(url(meter, f"{period.pk}/"))
        assert response.status_code == 204 and not response.content
        assert not PeriodReading.objects.exists()
        assert api.get(url(meter, f"{period.pk}/")).status_code == 404

    def test_meter_with_period_readings_cannot_be_deleted(self, api, meter):
        create(meter, item(0, 9))
        response = api.delete(f"/api/v1/meters/{meter.pk}/")
        assert error(response)["code"] == "meter_has_readings"
        assert Meter.objects.filter(pk=meter.pk).exists()


class TestFlagsKeptCurrent:
    @pytest.fixture
    def series(self, meter):
        return create(meter, *[item(30 * k, 30 * k + 29) for k in (0, 1, 2, 4)])

    def test_after_an_insert_in_the_middle(self, api, meter, series):
        assert post(api, meter, body(150, 179, "100")).json()["data"]["anomaly_flags"] == [
            DEVIATION,
            SPIKE,
        ]
        response = post(api, meter, body(90, 119, "300"))
        assert response.json()["data"]["anomaly_flags"] == [DEVIATION, SPIKE]
        assert stored_flags(meter) == fresh_flags(meter)
        data = api.get(url(meter, "?start_date=2023-05-31")).json()["data"]
        assert data[0]["anomaly_flags"] == []  # the later spike is no longer one

    def test_after_an_update(self, api, meter, series):
        api.patch(url(meter, f"{series[1].pk}/"), {"consumption": 300}, format="json")
        assert stored_flags(meter) == fresh_flags(meter)
        api.patch(
            url(meter, f"{series[0].pk}/"),
            {"start_date": date(90).isoformat(), "end_date": date(119).isoformat()},
            format="json",
        )
        assert stored_flags(meter) == fresh_flags(meter)

    def test_after_a_delete(self, api, meter, series):
        post(api, meter, body(150, 179, "95"))
        api.delete(url(meter, f"{series[0].pk}/"))
        assert stored_flags(meter) == fresh_flags(meter)


class TestBatch:
    def test_valid_and_invalid_items(self, api, meter):
        create(meter, item(10, 19))
        items = [
            body(0, 9),
            body(15, 25),  # overlaps the stored period
            body(20, 29),
            body(25, 35),  # overlaps item 2
            body(40, 30),  # ends before it starts
            {"start_date": date(50).isoformat()},  # no end, no consumption
            "not an object",
            body(50, 59, cost_currency="ZZZ"),
            body(60, 69, "90"),
        ]
        response = send(api, meter, items)
        assert response.status_code == 201, response.json()
        data = response.json()["data"]
        assert (data["accepted"], data["rejected"]) == (3, 6)
        assert [r["start_date"] for r in data["readings"]] == [
            date(0).isoformat(),
            date(20).isoformat(),
            date(60).isoformat(),
        ]
        assert all(set(r) == OUTPUT_FIELDS for r in data["readings"])
        assert data["readings"][-1]["anomaly_flags"] == [DEVIATION, SPIKE]
        assert [(e["index"], e["code"]) for e in data["errors"]] == [
            (1, "overlap"),
            (3, "overlap"),
            (4, "validation_error"),
            (5, "validation_error"),
            (6, "validation_error"),
            (7, "validation_error"),
        ]
        errors = {e["index"]: e for e in data["errors"]}
        assert errors[1]["message"] == "This period overlaps another period reading of the meter."
        assert errors[3]["message"] == "This period overlaps an earlier item of this batch."
        assert "end_date" in errors[4]["details"]
        assert {"end_date", "consumption"} <= set(errors[5]["details"])
        assert "non_field_errors" in errors[6]["details"]
        assert "cost_currency" in errors[7]["details"]
        assert PeriodReading.objects.count() == 4
        assert stored_flags(meter) == fresh_flags(meter)

    def test_more_than_500_items_store_nothing(self, api, meter):
        response = send(api, meter, [body(n, n) for n in range(501)])
        assert response.status_code == 400
        assert error(response)["code"] == "batch_too_large"
        assert not PeriodReading.objects.exists()

    def test_500_items_are_accepted(self, api, meter):
        response = send(api, meter, [body(n, n) for n in range(500)])
        assert response.json()["data"]["accepted"] == 500

    @pytest.mark.parametrize("payload", [{"readings": []}, {"readings": "x"}, {}, [1]])
    def test_empty_or_malformed_batch(self, api, meter, payload):
        response = api.post(url(meter, "batch/"), payload, format="json")
        assert response.status_code == 400
        assert error(response)["code"] == "validation_error"

    def test_decommissioned_meter(self, api, account):
        meter = MeterFactory(account=account, status="DECOMMISSIONED")
        response = send(api, meter, [body(0, 9)])
        assert response.status_code == 409 and error(response)["code"] == "conflict"

    def test_same_number_of_queries_for_1_and_50_items(self, api, account):
        counts = {}
        for history in (5, 200):
            for size in (1, 50):
                meter = MeterFactory(account=account)
                create(meter, *[item(2 * k, 2 * k, "10") for k in range(history)])
                api.get("/api/v1/account/")  # first use of the key: caches warmed
                items = [body(2 * k + 7, 2 * k + 7, "100") for k in range(size)]
                with CaptureQueriesContext(connection) as queries:
                    response = send(api, meter, items)
                assert response.json()["data"]["accepted"] == size
                counts[(history, size)] = len(queries)
        assert len(set(counts.values())) == 1, counts


class TestIdempotency:
    def test_single_create_replays(self, api, meter):
        first = post(api, meter, body(0, 9), HTTP_IDEMPOTENCY_KEY="bill-1")
        second = post(api, meter, body(0, 9), HTTP_IDEMPOTENCY_KEY="bill-1")
        assert (first.status_code, second.status_code) == (201, 201)
        assert second.json() == first.json()
        assert second["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
        assert PeriodReading.objects.count() == 1

    def test_batch_replays(self, api, meter):
        first = send(api, meter, [body(0, 9), body(10, 19)], HTTP_IDEMPOTENCY_KEY="b-1")
        second = send(api, meter, [body(0, 9), body(10, 19)], HTTP_IDEMPOTENCY_KEY="b-1")
        assert second.json() == first.json() and second["Idempotent-Replayed"] == "true"
        assert PeriodReading.objects.count() == 2

    def test_same_key_with_another_body_is_422(self, api, meter):
        post(api, meter, body(0, 9), HTTP_IDEMPOTENCY_KEY="k")
        response = post(api, meter, body(0, 9, "31"), HTTP_IDEMPOTENCY_KEY="k")
        assert response.status_code == 422
        assert error(response)["code"] == "idempotency_key_reused"
        assert PeriodReading.objects.get().consumption == 30

    def test_a_refused_request_is_not_remembered(self, api, meter):
        create(meter, item(0, 9))
        assert post(api, meter, body(5, 12), HTTP_IDEMPOTENCY_KEY="retry").status_code == 409
        assert post(api, meter, body(10, 12), HTTP_IDEMPOTENCY_KEY="retry").status_code == 201


class TestLocks:
    @pytest.fixture
    def locked(self, meter):
        rows = create(meter, item(0, 30), item(31, 58), item(59, 89))
        periods.lock_period_readings(periods=PeriodReading.objects.filter(pk__in=[rows[0].pk]))
        return rows

    @pytest.mark.parametrize("method", ["patch", "put", "delete"])
    def test_a_locked_period_cannot_change(self, api, meter, locked, method):
        response = getattr(api, method)(
            url(meter, f"{locked[0].pk}/"), body(0, 30, "1"), format="json"
        )
        assert response.status_code == 403
        assert error(response)["code"] == "reading_locked"
        assert PeriodReading.objects.get(pk=locked[0].pk).consumption == 30

    def test_no_new_period_before_the_lock(self, api, meter, locked):
        PeriodReading.objects.filter(pk=locked[0].pk).delete()  # a gap in the closed range
        response = post(api, meter, body(0, 10))
        assert response.status_code == 403 and error(response)["code"] == "reading_locked"
        data = send(api, meter, [body(0, 10), body(90, 99)]).json()["data"]
        assert [(e["index"], e["code"]) for e in data["errors"]] == [(0, "reading_locked")]
        assert data["accepted"] == 1

    def test_no_period_moved_into_the_closed_range(self, api, meter, locked):
        response = api.patch(
            url(meter, f"{locked[1].pk}/"), {"start_date": date(30).isoformat()}, format="json"
        )
        assert response.status_code == 403
        assert PeriodReading.objects.get(pk=locked[1].pk).start_date == date(31)

    def test_after_the_lock_everything_is_allowed(self, api, meter, locked):
        free = locked[1]
        assert api.patch(url(meter, f"{free.pk}/"), {"notes": "ok"}, format="json").status_code == (
            200
        )
        assert api.delete(url(meter, f"{free.pk}/")).status_code == 204

    def test_output_says_is_locked(self, api, meter, locked):
        data = api.get(url(meter)).json()["data"]
        assert [r["is_locked"] for r in data] == [True, False, False]
        assert api.get(url(meter, f"{locked[0].pk}/")).json()["data"]["is_locked"] is True
        across = api.get("/api/v1/period-readings/").json()["data"]
        assert [r["is_locked"] for r in across] == [True, False, False]


def test_every_api_write_is_in_the_history_with_its_key(api, meter):
    response = post(api, meter, body(0, 9))
    period_id = response.json()["data"]["id"]
    api.patch(url(meter, f"{period_id}/"), {"consumption": 12}, format="json")
    send(api, meter, [body(10, 19)])
    api.delete(url(meter, f"{period_id}/"))
    history = selectors.period_reading_history(meter_id=meter.pk)
    actor = f"key:{api.raw_key[:12]}"
    assert [(e.action, e.reading_id) for e in history][-3:] == [
        ("insert", history[1].reading_id),
        ("update", period_id),
        ("insert", period_id),
    ]
    assert {(e.actor, e.source) for e in history} == {(actor, "API")}
    assert history[0].action == "delete" and history[0].changes["consumption"] == (D(12), None)


class TestFilters:
    @pytest.fixture
    def series(self, meter):
        rows = create(
            meter,
            *[item(30 * k, 30 * k + 29) for k in range(4)],
            item(120, 149, "100", is_estimated=True),
        )
        services_actor = services.Actor("user:ann", "ADMIN")
        create(meter, item(150, 179), actor=services_actor)
        return rows

    @pytest.mark.parametrize(
        ("query", "expected_starts"),
        [
            ("start_date=2023-03-02", [60, 90, 120, 150]),  # starts on or after
            ("end_date=2023-03-30", [0, 30]),  # ends on or before (day 89 is 31 March)
            ("end_date=2023-03-31", [0, 30, 60]),
            ("start_date=2023-01-31&end_date=2023-04-30", [30, 60, 90]),
            ("is_estimated=true", [120]),
            ("anomaly=SPIKE", [120]),
            ("anomaly=DROP", []),
            ("has_anomaly=true", [120]),
            ("has_anomaly=false", [0, 30, 60, 90, 150]),
            ("source=ADMIN", [150]),
            ("search=nothing", []),
            ("ordering=-start_date", [150, 120, 90, 60, 30, 0]),
            ("ordering=consumption&per_page=2", [0, 30]),
        ],
    )
    def test_filter(self, api, meter, series, query, expected_starts):
        response = api.get(url(meter, f"?{query}"))
        assert response.status_code == 200, response.json()
        assert [r["start_date"] for r in response.json()["data"]] == [
            date(n).isoformat() for n in expected_starts
        ]

    @pytest.mark.parametrize(
        "query",
        [
            "anomaly=WEIRD",
            "has_anomaly=1",
            "start_date=yesterday",
            "is_estimated=yes",
            "source=MAIL",
            "ordering=value",
        ],
    )
    def test_invalid_filter_is_a_400(self, api, meter, query):
        response = api.get(url(meter, f"?{query}"))
        assert response.status_code == 400
        assert error(response)["code"] == "validation_error"


class TestAccountList:
    def test_period_readings_across_the_account_with_filters(self, api, account, other_account):
        place = PlaceFactory(account=account)
        estate = EstateFactory(place=place)
        in_estate = MeterFactory(account=account, estate=estate)
        elsewhere = MeterFactory(account=account)
        create(in_estate, item(0, 9))
        create(elsewhere, item(0, 9), item(10, 19))
        create(MeterFactory(account=other_account), item(0, 9))
        assert api.get("/api/v1/period-readings/").json()["meta"]["total"] == 3
        for query, total in [
            (f"meter_id={elsewhere.pk}", 2),
            (f"place_id={place.pk}", 1),
            (f"estate_id={estate.pk}", 1),
            ("start_date=2023-01-05", 1),
            ("anomaly=SPIKE", 0),
        ]:
            assert api.get(f"/api/v1/period-readings/?{query}").json()["meta"]["total"] == total
        assert api.get("/api/v1/period-readings/?meter_id=x").status_code == 400

    def test_needs_the_readings_scope(self, account, make_client):
        client = make_client(account, scopes=["meters:write"])
        response = client.get("/api/v1/period-readings/")
        assert response.status_code == 403
        assert error(response)["code"] == "insufficient_scope"
