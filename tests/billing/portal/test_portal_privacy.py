"""What a tenant may see and write through the portal, and nothing more (CONTRACT §6).

- ``allowed-range`` comes from readings of the tenant's own lease only: no former occupant's
  value, date or baseline;
- a tenant writes readings only on the ``INDIVIDUAL`` meters of its own estate;
- on meters it shares with others, it sees values and dates, never who took another's reading.

The lease of the ``portal`` tenant starts on 2023-06-01 (00:00 in Paris: 2023-05-31T22:00Z).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import PortalKey
from metering import services as metering_services
from metering.models import IdempotencyRecord
from readings import services as readings_services
from readings.models import Reading
from tests.billing.api import assert_error
from tests.billing.portal.conftest import image_bytes, photo_file, shared_meter, stored_files
from tests.factories import MeterFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

LEASE_START = "2023-05-31T22:00:00Z"  # 2023-06-01 00:00 in Paris
PNG = image_bytes("PNG")


def at(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


def add(meter, actor: readings_services.Actor, *rows, **fields) -> list[Reading]:
    """Readings ``(ISO instant, value)`` on ``meter`` through the engine, written by ``actor``."""
    items = [
        readings_services.ReadingInput(reading_date=at(moment), value=Decimal(value), **fields)
        for moment, value in rows
    ]
    result = readings_services.create_readings(meter=meter, items=items, actor=actor)
    assert not result.errors, result.errors
    return result.accepted


def with_photo(reading: Reading) -> Reading:
    name = default_storage.save(f"reading-photos/test/{reading.pk}.png", ContentFile(PNG))
    Reading.objects.filter(pk=reading.pk).update(photo=name)
    return reading


def key_actor(client) -> readings_services.Actor:
    """The actor the portal records for a reading sent with ``client``'s portal key."""
    return readings_services.Actor(f"key:{client.portal_key.prefix}", "PORTAL")


FORMER = readings_services.Actor("key:mtp_former00", "PORTAL")  # the former occupant's key
MANAGER = readings_services.Actor("user:manager", "API")


# --- allowed-range: nothing from before the lease ------------------------------------------


# The former occupant's series: 100 every 10 days (10 a day), the last one ten days before
# the lease; enough intervals for a baseline.
FORMER_SERIES = [
    ("2023-04-01T12:00:00Z", 100),
    ("2023-04-11T12:00:00Z", 200),
    ("2023-04-21T12:00:00Z", 300),
    ("2023-05-01T12:00:00Z", 400),
    ("2023-05-11T12:00:00Z", 500),
    ("2023-05-21T12:00:00Z", 600),
]


def allowed_range(client, meter, moment: str):
    return client.get(f"/api/v1/portal/meters/{meter.pk}/allowed-range/?reading_date={moment}")


class TestAllowedRange:
    def test_without_a_reading_of_its_own_nothing_earlier_is_shown(self, portal, meter):
        add(meter, FORMER, *FORMER_SERIES)
        response = allowed_range(portal, meter, "2023-06-10T12:00:00Z")
        assert response.status_code == 200, response.content[:300]
        data = response.json()["data"]
        assert data | {"register_id": None} == {
            "reading_date": "2023-06-10T12:00:00Z",
            "register_id": None,
            "register": "default",
            "min_value": 0.0,
            "max_value": None,
            "previous_value": None,
            "previous_reading_date": None,
            "next_value": None,
            "next_reading_date": None,
            "baseline_intervals": 0,
            "baseline_daily_consumption": None,
            "is_locked": False,
        }

    def test_the_reading_at_the_lease_start_is_the_lower_bound_and_no_baseline(self, portal, meter):
        add(meter, FORMER, *FORMER_SERIES)
        add(meter, MANAGER, (LEASE_START, 650))  # the move-in reading
        data = allowed_range(portal, meter, "2023-06-11T22:00:00Z").json()["data"]
        assert data["previous_value"] == 650
        assert data["previous_reading_date"] == LEASE_START
        assert (data["min_value"], data["max_value"]) == (650, None)
        # The interval ending at the move-in reading is the former occupant's.
        assert data["baseline_intervals"] == 0
        assert data["baseline_daily_consumption"] is None

    def test_the_baseline_is_the_tenants_own(self, portal, meter):
        # The tenant uses 50 every 10 days (5 a day), half the former occupant's use: ten days
        # after its last reading (800) the band is 800 + 0.5 × 50 .. 800 + 1.5 × 50.
        add(meter, FORMER, *FORMER_SERIES)
        add(meter, MANAGER, (LEASE_START, 650))
        add(
            meter,
            key_actor(portal),
            ("2023-06-10T22:00:00Z", 700),
            ("2023-06-20T22:00:00Z", 750),
            ("2023-06-30T22:00:00Z", 800),
        )
        data = allowed_range(portal, meter, "2023-07-10T22:00:00Z").json()["data"]
        assert (data["min_value"], data["max_value"]) == (825, 875)
        assert data["baseline_intervals"] == 3
        assert data["baseline_daily_consumption"] == 5

    def test_a_date_before_the_lease_is_400_and_shows_nothing(self, portal, meter):
        add(meter, FORMER, *FORMER_SERIES)
        response = allowed_range(portal, meter, "2023-05-25T12:00:00Z")
        error = assert_error(response, 400, "validation_error", "reading_date")
        assert error["details"] == {
            "reading_date": ["Your lease of this meter starts on 2023-06-01."]
        }
        assert "600" not in response.content.decode()


# --- readings from before the lease --------------------------------------------------------


class TestBeforeTheLease:
    def test_the_first_reading_of_the_lease_shows_no_earlier_value(self, portal, meter):
        add(meter, FORMER, ("2023-05-15T12:00:00Z", 100))
        add(meter, MANAGER, ("2023-06-15T12:00:00Z", 150), ("2023-07-15T12:00:00Z", 200))
        rows = portal.get(f"/api/v1/portal/meters/{meter.pk}/readings/").json()["data"]
        assert [(r["value"], r["previous_value"], r["consumption"]) for r in rows] == [
            (150, None, None),  # it counts from the former occupant's 100: not shown
            (200, 150, 50),
        ]
        # The stored chain is the engine's, unchanged.
        assert Reading.objects.get(value=150).previous_value == 100

    def test_ordering_by_consumption_tells_nothing_of_the_hidden_one(self, portal, meter):
        # The first reading of the lease counts 5 from the former occupant's reading: it
        # sorts as a reading without consumption (Postgres: nulls last ascending, first
        # descending), not by its hidden 5.
        add(meter, FORMER, ("2023-05-15T12:00:00Z", 100))
        add(
            meter,
            MANAGER,
            ("2023-06-15T12:00:00Z", 105),
            ("2023-07-15T12:00:00Z", 1105),
            ("2023-08-15T12:00:00Z", 1155),
        )
        for ordering, values in (
            ("consumption", [1155, 1105, 105]),
            ("-consumption", [105, 1105, 1155]),
        ):
            rows = portal.get(readings_url(meter), {"ordering": ordering}).json()["data"]
            assert [row["value"] for row in rows] == values, ordering

    def test_a_tenants_first_reading_answers_no_earlier_value(self, portal, meter):
        add(meter, FORMER, ("2023-05-15T12:00:00Z", 100))
        response = portal.post(
            f"/api/v1/portal/meters/{meter.pk}/readings/",
            {"reading_date": "2023-06-15T12:00:00Z", "value": 150},
            format="json",
        )
        assert response.status_code == 201, response.content[:300]
        data = response.json()["data"]
        assert (data["previous_value"], data["consumption"]) == (None, None)
        assert data["created_by"] == f"key:{portal.portal_key.prefix}"

    def test_the_meters_last_reading_before_the_lease_is_not_shown(self, portal, meter):
        add(meter, FORMER, ("2023-05-15T12:00:00Z", 100))
        meter.refresh_from_db()
        assert meter.last_reading_value == 100  # kept by the engine
        for path in ("/api/v1/portal/meters/", f"/api/v1/portal/meters/{meter.pk}/"):
            body = portal.get(path).json()["data"]
            data = body[0] if isinstance(body, list) else body
            assert (data["last_reading_value"], data["last_reading_at"]) == (None, None)
        add(meter, MANAGER, ("2023-06-15T12:00:00Z", 150))
        data = portal.get(f"/api/v1/portal/meters/{meter.pk}/").json()["data"]
        assert (data["last_reading_value"], data["last_reading_at"]) == (
            150,
            "2023-06-15T12:00:00Z",
        )


# --- writes: only the INDIVIDUAL meters of its own estate ----------------------------------


@pytest.fixture(params=["COLLECTIVE", "SHARED", "INCLUDED"])
def not_its_own(request, account, place, estate, lease, neighbour):
    """A meter the tenant sees but whose readings are the manager's."""
    if request.param == "COLLECTIVE":
        return MeterFactory(account=account, place=place, billing_type="COLLECTIVE")
    if request.param == "SHARED":
        return shared_meter(account, place, estate, neighbour["estate"])
    return MeterFactory(account=account, estate=estate, billing_type="INCLUDED")


def readings_url(meter, suffix: str = "") -> str:
    return f"/api/v1/portal/meters/{meter.pk}/readings/{suffix}"


class TestWrites:
    def test_the_meter_is_shown_but_a_reading_is_403(self, portal, not_its_own):
        assert portal.get(readings_url(not_its_own)).status_code == 200
        response = portal.post(
            readings_url(not_its_own), {"reading_date": "2024-03-01", "value": 1}, format="json"
        )
        assert_error(response, 403, "permission_denied")
        assert not Reading.objects.exists()

    def test_a_photo_is_403_and_nothing_is_stored(self, portal, not_its_own, media_root):
        body = {"reading_date": "2024-03-01", "value": 1, "photo": photo_file()}
        response = portal.post(
            readings_url(not_its_own), body, format="multipart", HTTP_IDEMPOTENCY_KEY="p-1"
        )
        assert_error(response, 403, "permission_denied")
        assert not Reading.objects.exists()
        assert stored_files(media_root) == []
        assert not IdempotencyRecord.objects.filter(key="p-1", status_code__isnull=False).exists()

    def test_an_invalid_body_is_403_too(self, portal, not_its_own):
        """The refusal does not depend on the body: no hint about the meter's readings."""
        response = portal.post(readings_url(not_its_own), {"value": -1}, format="json")
        assert_error(response, 403, "permission_denied")

    def test_an_automatic_collective_meter_is_403(self, portal, account, place, lease):
        meter = MeterFactory(
            account=account, place=place, billing_type="COLLECTIVE", communication_type="LORAWAN"
        )
        response = portal.post(
            readings_url(meter), {"reading_date": "2024-03-01", "value": 1}, format="json"
        )
        assert_error(response, 403, "permission_denied")

    def test_its_individual_meter_takes_readings(self, portal, meter):
        response = portal.post(
            readings_url(meter), {"reading_date": "2024-03-01", "value": 1}, format="json"
        )
        assert response.status_code == 201

    def test_null_notes_and_reader_are_stored_empty(self, portal, meter):
        """Shown as null for others' readings, they are accepted as null and stored empty."""
        body = {"reading_date": "2024-03-01", "value": 1, "notes": None, "reader_name": None}
        response = portal.post(readings_url(meter), body, format="json")
        assert response.status_code == 201, response.content[:300]
        assert response.json()["data"]["notes"] == "" == Reading.objects.get().notes
        assert Reading.objects.get().reader_name == ""

    def test_the_neighbours_meter_stays_404(self, portal, neighbour):
        response = portal.post(
            readings_url(neighbour["meter"]),
            {"reading_date": "2024-03-01", "value": 1},
            format="json",
        )
        assert_error(response, 404, "not_found")


# --- shared meters: values and dates only --------------------------------------------------

PRIVATE = ("photo_url", "reader_name", "notes", "created_by", "lease_id")


@pytest.fixture
def shared(account, place, estate, neighbour):
    return shared_meter(account, place, estate, neighbour["estate"])


@pytest.fixture
def shared_history(shared, portal, make_portal, neighbour, lease):
    """On the shared meter: the neighbour's readings (one before the tenant's lease), the
    manager's, and one the tenant sent itself with its portal key (before the rule that
    keeps tenants off shared meters)."""
    other = make_portal(neighbour["tenant"])
    (early,) = add(
        shared,
        key_actor(other),
        ("2023-05-01T12:00:00Z", 5),
        reader_name="Paul",
        notes="before",
    )
    (theirs,) = add(
        shared,
        key_actor(other),
        ("2023-07-01T12:00:00Z", 10),
        reader_name="Paul Durand",
        notes="Paul's flat, door code 1234",
        lease=neighbour["lease"],
    )
    (managers,) = add(
        shared,
        MANAGER,
        ("2023-08-01T12:00:00Z", 20),
        reader_name="Technician",
        notes="met Paul",
        photo_url="https://example.org/manager.jpg",
    )
    (own,) = add(
        shared,
        key_actor(portal),
        ("2023-09-01T12:00:00Z", 30),
        reader_name="Jeanne",
        notes="mine",
        lease=lease,
    )
    for reading in (early, theirs, own):
        with_photo(reading)
    return {"early": early, "theirs": theirs, "managers": managers, "own": own}


class TestSharedMeters:
    def test_another_persons_reading_shows_its_value_and_date_only(
        self, portal, shared, shared_history, lease
    ):
        rows = portal.get(readings_url(shared)).json()["data"]
        by_id = {row["id"]: row for row in rows}
        history = shared_history
        assert list(by_id) == [history["theirs"].pk, history["managers"].pk, history["own"].pk]
        for name in ("theirs", "managers"):
            row = by_id[history[name].pk]
            assert {field: row[field] for field in PRIVATE} == dict.fromkeys(PRIVATE)
            assert row["value"] is not None and row["reading_date"] is not None
            assert "Paul" not in str(row) and "manager" not in str(row)
        own = by_id[history["own"].pk]
        assert own["reader_name"] == "Jeanne" and own["notes"] == "mine"
        assert own["created_by"] == f"key:{portal.portal_key.prefix}"
        assert own["lease_id"] == lease.pk
        assert own["photo_url"].endswith(readings_url(shared, f"{history['own'].pk}/photo/"))

    def test_another_persons_photo_is_404(self, portal, shared, shared_history):
        theirs = readings_url(shared, f"{shared_history['theirs'].pk}/photo/")
        early = readings_url(shared, f"{shared_history['early'].pk}/photo/")
        own = readings_url(shared, f"{shared_history['own'].pk}/photo/")
        assert_error(portal.get(theirs), 404, "not_found")
        assert_error(portal.get(early), 404, "not_found")
        response = portal.get(own)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == PNG

    def test_any_of_the_tenants_keys_is_its_own(
        self, portal, shared, shared_history, tenant, make_portal
    ):
        second = make_portal(tenant)
        row = next(
            r
            for r in second.get(readings_url(shared)).json()["data"]
            if r["id"] == shared_history["own"].pk
        )
        assert row["notes"] == "mine" and row["created_by"] == f"key:{portal.portal_key.prefix}"
        assert (
            second.get(readings_url(shared, f"{shared_history['own'].pk}/photo/")).status_code
            == 200
        )

    def test_a_revoked_key_still_names_its_own_readings(
        self, portal, shared, shared_history, tenant, make_portal
    ):
        metering_services.revoke_keys(keys=PortalKey.objects.filter(pk=portal.portal_key.pk))
        second = make_portal(tenant)
        own = [r for r in second.get(readings_url(shared)).json()["data"] if r["notes"]]
        assert [r["id"] for r in own] == [shared_history["own"].pk]

    def test_the_neighbour_does_not_see_the_tenants_details(
        self, shared, shared_history, neighbour, make_portal
    ):
        other = make_portal(neighbour["tenant"])
        rows = {r["id"]: r for r in other.get(readings_url(shared)).json()["data"]}
        own = rows[shared_history["own"].pk]
        assert {field: own[field] for field in PRIVATE} == dict.fromkeys(PRIVATE)
        # ... and its own readings, sent with another of its keys, are its own.
        assert rows[shared_history["theirs"].pk]["notes"] == "Paul's flat, door code 1234"

    def test_a_search_finds_no_one_elses_notes(self, portal, shared, shared_history):
        def found(term: str) -> list[int]:
            response = portal.get(readings_url(shared), {"search": term})
            assert response.status_code == 200
            return [row["id"] for row in response.json()["data"]]

        assert found("door code") == []
        assert found("Technician") == []
        assert found("Paul") == []
        assert found("mine") == [shared_history["own"].pk]
        assert found("Jeanne") == [shared_history["own"].pk]

    def test_on_a_collective_meter_too(self, portal, account, place, lease):
        collective = MeterFactory(account=account, place=place, billing_type="COLLECTIVE")
        (reading,) = add(
            collective, MANAGER, ("2023-08-01T12:00:00Z", 20), reader_name="Technician"
        )
        with_photo(reading)
        (row,) = portal.get(readings_url(collective)).json()["data"]
        assert {field: row[field] for field in PRIVATE} == dict.fromkeys(PRIVATE)
        assert_error(portal.get(readings_url(collective, f"{reading.pk}/photo/")), 404, "not_found")

    def test_its_own_estates_meter_shows_the_managers_reading(self, portal, meter):
        """§6 keeps other people's details off the meters a tenant shares with others; the
        meter of its own estate serves it alone (within its lease)."""
        (reading,) = add(
            meter, MANAGER, ("2023-08-01T12:00:00Z", 20), reader_name="Technician", notes="ok"
        )
        with_photo(reading)
        (row,) = portal.get(readings_url(meter)).json()["data"]
        assert (row["reader_name"], row["notes"], row["created_by"]) == (
            "Technician",
            "ok",
            "user:manager",
        )
        assert portal.get(readings_url(meter, f"{reading.pk}/photo/")).status_code == 200

    def test_same_number_of_queries_for_1_and_50_rows(
        self, portal, lease, shared, make_portal, neighbour
    ):
        other = make_portal(neighbour["tenant"])
        start = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)

        def populate(first: int, n: int) -> None:
            for i in range(first, first + n):
                actor = key_actor(portal) if i % 2 else key_actor(other)
                moment = (start + dt.timedelta(days=i)).isoformat()
                add(shared, actor, (moment, 10 * i), notes=f"n{i}")

        def count() -> tuple[int, int]:
            with CaptureQueriesContext(connection) as queries:
                response = portal.get(readings_url(shared))
            assert response.status_code == 200
            return len(queries), response.json()["meta"]["total"]

        populate(0, 1)
        portal.get(readings_url(shared))  # warm per-process caches
        few_queries, few = count()
        populate(1, 49)
        many_queries, many = count()
        assert (few, many) == (1, 50)
        assert many_queries == few_queries
