"""Every request has a time limit, enforced in PostgreSQL too (CONTRACT §2 ``timeout``).

Another connection holds an exclusive lock on the readings table, so the request's first
statement on it waits: at the limit the statement is cancelled, the request is rolled back
and answered 503 ``timeout``, and no statement of it is left running in the database.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory

from metering.errors import RequestTimeout
from metering.models import IdempotencyRecord
from metering.time_limit import RequestTimeLimitMiddleware
from readings.models import Reading
from tests.factories import MeterFactory

LIMIT = 0.5


@pytest.fixture
def lock_readings(db):
    """``lock_readings()``: another session takes the readings table for at most 5 s (so that,
    without the limit, a request waits, then succeeds, and the test fails instead of hanging)."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    holders: list[psycopg.Connection] = []

    def take() -> psycopg.Connection:
        holder = psycopg.connect(**params)
        holder.execute("LOCK TABLE readings_reading IN ACCESS EXCLUSIVE MODE")
        release = threading.Timer(5, holder.rollback)
        release.start()
        holders.append((holder, release))
        return holder

    yield take
    for holder, release in holders:
        release.cancel()
        release.join()
        holder.close()


def running_statements(exclude_pids: set[int]) -> list[str]:
    """Statements of the test database still active, apart from the given sessions."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params) as watcher:
        rows = watcher.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [query for pid, query in rows if pid not in exclude_pids]


@pytest.fixture
def short_limit(settings):
    settings.REQUEST_TIME_LIMIT_SECONDS = LIMIT


@pytest.mark.django_db(transaction=True)
def test_a_request_past_the_limit_is_cancelled_rolled_back_and_answered_503(
    account, make_client, lock_readings, short_limit
):
    meter = MeterFactory(account=account)
    api = make_client(account)
    lock_readings()

    started = time.monotonic()
    response = api.post(
        f"/api/v1/meters/{meter.pk}/readings/",
        {"reading_date": "2026-01-15", "value": "12.5"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="first-try",
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.content
    body = response.json()
    assert body["error"]["code"] == "timeout"
    assert f"({LIMIT:g} s)" in body["error"]["message"]
    assert elapsed < LIMIT + 3
    # The answer left after the statement stopped: nothing of the request runs any more.
    assert running_statements({connection.connection.info.backend_pid}) == []
    # Rolled back: the idempotency key claimed before the wait is free again.
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_after_a_timeout_nothing_is_stored_and_the_next_request_works(
    account, make_client, lock_readings, short_limit
):
    meter = MeterFactory(account=account)
    api = make_client(account)
    holder = lock_readings()
    batch = {"readings": [{"reading_date": f"2026-01-{d:02}", "value": d} for d in (1, 2, 3)]}
    url = f"/api/v1/meters/{meter.pk}/readings/batch/"

    assert api.post(url, batch, format="json").status_code == 503
    holder.rollback()  # the lock goes

    assert Reading.objects.count() == 0
    response = api.post(url, batch, format="json")
    assert response.status_code == 201, response.content
    assert Reading.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_an_admin_page_past_the_limit_gets_a_503_page(account, member, lock_readings, short_limit):
    client = member("MANAGER", account)
    lock_readings()
    response = client.get("/admin/readings/reading/")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert b"time limit" in response.content


def test_the_database_holds_the_limit_while_the_request_runs_and_forgets_it_after(db, settings):
    settings.REQUEST_TIME_LIMIT_SECONDS = 7
    seen = {}

    def view(request):
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            seen["during"] = cursor.fetchone()[0]
        return HttpResponse("ok")

    RequestTimeLimitMiddleware(view)(RequestFactory().get("/api/v1/meters/"))
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        after = cursor.fetchone()[0]
    assert seen["during"] == "7s"
    assert after == "0"


def test_no_statement_starts_past_the_deadline(db, settings):
    settings.REQUEST_TIME_LIMIT_SECONDS = 0.2

    def slow_view(request):
        time.sleep(0.3)  # Python work past the limit: the next statement is refused
        Reading.objects.count()
        return HttpResponse("ok")

    with pytest.raises(RequestTimeout):
        RequestTimeLimitMiddleware(slow_view)(RequestFactory().get("/api/v1/meters/"))


def test_the_limit_is_a_documented_setting():
    assert settings.REQUEST_TIME_LIMIT_SECONDS == 30
