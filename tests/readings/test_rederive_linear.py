"""Re-deriving a series writes the changed rows in time linear in their number (issue 12).

A change of a meter's multiplier, or a reading inserted before a long series, re-derives many
readings. The engine writes them in one statement whose SQL text is the same whatever the
number of rows (their values travel as array parameters), so the statements of a re-derive of
50 readings and of 500 are the same ones, and only the readings whose derived fields change
are written (and get an audit event). A write in the middle of a long series loads only the
readings it can change: a baseline span on each side of it, not the rest of the series.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.db import connection
from django.http import HttpResponse

from metering.models import Meter, Register
from readings import selectors, services
from readings.models import Reading
from tests.factories import MeterFactory
from tests.readings.conftest import ACTOR, fresh_series, stored_series

pytestmark = pytest.mark.django_db

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
FIRST_VALUE = 1000


def hourly_meter(account, count: int):
    """A meter whose default register holds ``count`` hourly readings rising 1 an hour."""
    meter = MeterFactory(account=account)
    result = services.create_readings(
        meter=meter,
        items=[
            services.ReadingInput(reading_date=START + i * HOUR, value=Decimal(FIRST_VALUE + i))
            for i in range(count)
        ],
        actor=ACTOR,
    )
    assert not result.errors
    return meter


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL text of every statement run inside, as sent before its parameters are bound."""
    captured: list[str] = []

    def record(execute, sql, params, many, context):
        captured.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield captured


@pytest.fixture
def series(api, account) -> dict[int, Meter]:
    """Meters of 50 and of 500 hourly readings, by their count, then one request of ``api``
    (so that once-per-key work, ``last_used_at``, is not compared)."""
    meters = {count: hourly_meter(account, count) for count in (50, 500)}
    meter = MeterFactory(account=account)
    assert api.patch(f"/api/v1/meters/{meter.pk}/", {"name": "x"}, format="json").status_code == 200
    return meters


def assert_writes_run_the_same_statements(
    series: dict[int, Meter], write: Callable[[Meter], HttpResponse], status: int
) -> None:
    """``write(meter)`` answers ``status`` on each of ``series`` and runs the same statements on
    50 readings as on 500."""
    captured = {}
    for count, meter in series.items():
        with statements() as captured[count]:
            response = write(meter)
        assert response.status_code == status, response.json()
    assert_same_statements(captured[50], captured[500])


def assert_same_statements(small: list[str], large: list[str]) -> None:
    # Savepoint names count up through the test: not part of the comparison.
    small, large = ([SAVEPOINT.sub("s", sql) for sql in sqls] for sqls in (small, large))
    assert len(small) == len(large), (len(small), len(large))
    for few, many in zip(small, large, strict=True):
        # The text of a statement never grows with the rows it writes (no CASE WHEN per row).
        assert len(few) == len(many), (few[:300], many[:300])
    assert small == large


SAVEPOINT = re.compile(r'"s\d+_x\d+"')


def update_events(meter) -> list:
    return [e for e in selectors.reading_history(meter_id=meter.pk) if e.action == "update"]


class TestMultiplier:
    def test_statements_do_not_grow_with_the_readings(self, api, series):
        assert_writes_run_the_same_statements(
            series,
            lambda meter: api.patch(
                f"/api/v1/meters/{meter.pk}/", {"multiplier": 2}, format="json"
            ),
            200,
        )

    def test_derived_values_are_those_of_a_fresh_computation(self, api, account):
        meter = hourly_meter(account, 300)
        register = meter.registers.get(is_default=True)
        response = api.patch(f"/api/v1/meters/{meter.pk}/", {"multiplier": "2.5"}, format="json")
        assert response.status_code == 200, response.json()
        assert stored_series(register) == fresh_series(register)
        consumption = list(
            Reading.objects.filter(register=register)
            .order_by("reading_date")
            .values_list("consumption", flat=True)
        )
        assert consumption == [None] + [Decimal("2.5")] * 299
        listed = api.get(f"/api/v1/meters/{meter.pk}/readings/?per_page=500").json()["data"]
        assert {r["consumption"] for r in listed} == {None, 2.5}

    def test_only_changed_readings_are_written_and_each_is_in_the_history(self, api, account):
        meter = hourly_meter(account, 120)
        first = Reading.objects.get(meter=meter, reading_date=START)
        response = api.patch(f"/api/v1/meters/{meter.pk}/", {"multiplier": 3}, format="json")
        assert response.status_code == 200
        events = update_events(meter)
        # The first reading has no consumption: it is not rewritten.
        assert first.pk not in {e.reading_id for e in events}
        assert len(events) == 119 == len({e.reading_id for e in events})
        assert {e.changes["consumption"] for e in events} == {(Decimal(1), Decimal(3))}
        assert Reading.objects.get(pk=first.pk).updated_at == first.updated_at

        # The same multiplier again changes nothing: no row written, no event.
        response = api.patch(f"/api/v1/meters/{meter.pk}/", {"multiplier": 3}, format="json")
        assert response.status_code == 200
        assert len(update_events(meter)) == 119


class TestInsertBeforeTheSeries:
    """A reading one hour before a series, 1,000 below it: a huge first interval that enters the
    baseline of every later reading and flags it, so that every reading is re-derived."""

    def post_first(self, api, meter):
        body = {"reading_date": (START - HOUR).isoformat(), "value": 0}
        return api.post(f"/api/v1/meters/{meter.pk}/readings/", body, format="json")

    def test_statements_do_not_grow_with_the_readings(self, api, series):
        assert_writes_run_the_same_statements(
            series, lambda meter: self.post_first(api, meter), 201
        )
        for count, meter in series.items():
            # Most of the series changed (flags), so the write did carry many rows.
            assert Reading.objects.filter(meter=meter, flag_deviation=True).count() > count // 2

    def test_the_chain_is_that_of_a_fresh_computation(self, api, account):
        meter = hourly_meter(account, 400)
        register = meter.registers.get(is_default=True)
        assert self.post_first(api, meter).status_code == 201
        assert stored_series(register) == fresh_series(register)
        second = Reading.objects.get(meter=meter, reading_date=START)
        assert (second.previous_value, second.consumption) == (0, FIRST_VALUE)


class TestEditAReading:
    def test_statements_do_not_grow_with_the_readings(self, api, series):
        first = {
            meter.pk: Reading.objects.get(meter=meter, reading_date=START).pk
            for meter in series.values()
        }
        assert_writes_run_the_same_statements(
            series,
            lambda meter: api.patch(
                f"/api/v1/meters/{meter.pk}/readings/{first[meter.pk]}/",
                {"value": 0, "notes": "corrected"},
                format="json",
            ),
            200,
        )

    def test_the_edited_reading_and_its_neighbours_are_stored(self, api, account):
        meter = hourly_meter(account, 200)
        register = meter.registers.get(is_default=True)
        second = Reading.objects.get(meter=meter, reading_date=START + HOUR)
        response = api.patch(
            f"/api/v1/meters/{meter.pk}/readings/{second.pk}/",
            {"value": 1000.5, "notes": "corrected", "reading_date": (START + 2 * HOUR).isoformat()},
            format="json",
        )
        # The date of another reading: refused, nothing changed.
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "duplicate_reading"
        response = api.patch(
            f"/api/v1/meters/{meter.pk}/readings/{second.pk}/",
            {"value": 1000.5, "notes": "corrected", "reading_type": "ESTIMATED"},
            format="json",
        )
        assert response.status_code == 200, response.json()
        data = response.json()["data"]
        assert (data["value"], data["notes"], data["is_estimated"]) == (1000.5, "corrected", True)
        assert (data["previous_value"], data["consumption"]) == (1000, 0.5)
        stored = Reading.objects.get(pk=second.pk)
        assert (stored.value, stored.notes, stored.reading_type, stored.is_estimated) == (
            Decimal("1000.5"),
            "corrected",
            "ESTIMATED",
            True,
        )
        assert stored_series(register) == fresh_series(register)
        (event,) = [e for e in update_events(meter) if e.reading_id == second.pk]
        assert event.changes["value"] == (Decimal(1001), Decimal("1000.5"))
        assert event.changes["notes"] == ("", "corrected")


WINDOW_SELECT = 'SELECT "readings_reading"."id" AS "id", "readings_reading"."register_id"'


@contextlib.contextmanager
def loaded_rows() -> Iterator[list[int]]:
    """How many readings each load of a series window returned."""
    counts: list[int] = []

    def record(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith(WINDOW_SELECT):
            counts.append(context["cursor"].rowcount)
        return result

    with connection.execute_wrapper(record):
        yield counts


class TestAnEditInALongSeries:
    """A write loads and derives what it can change: a baseline span on each side of it."""

    @pytest.fixture
    def meter(self, account):
        account.anomaly_baseline_days = 10
        account.save()
        meter = MeterFactory(account=account)
        result = services.create_readings(
            meter=meter,
            items=[
                services.ReadingInput(
                    reading_date=START + dt.timedelta(days=i), value=Decimal(2 * i)
                )
                for i in range(400)
            ],
            actor=ACTOR,
        )
        assert not result.errors
        return meter

    def test_an_edit_loads_the_readings_it_can_change_only(self, api, meter):
        register = meter.registers.get(is_default=True)
        reading = Reading.objects.get(meter=meter, reading_date=START + dt.timedelta(days=100))
        with loaded_rows() as counts:
            response = api.patch(
                f"/api/v1/meters/{meter.pk}/readings/{reading.pk}/", {"value": 300}, format="json"
            )
        assert response.status_code == 200, response.json()
        # Days 89 (the interval into day 90) to 111 (10 days after day 101, whose interval
        # changed): 23 readings, not the 311 from day 89 to the end.
        assert counts == [23]
        assert stored_series(register) == fresh_series(register)
        # A spike into day 100, a fall into day 101: days 102 to 110 drop below a baseline that
        # holds the spike; day 111's baseline no longer reaches day 100.
        dropped = Reading.objects.filter(meter=meter, flag_drop=True).order_by("reading_date")
        days = [(r.reading_date - START).days for r in dropped]
        assert days == list(range(102, 111))

    @pytest.mark.parametrize("method", ["post", "delete"])
    def test_inserts_and_deletes_too(self, api, meter, method):
        register = meter.registers.get(is_default=True)
        readings = f"/api/v1/meters/{meter.pk}/readings/"
        with loaded_rows() as counts:
            if method == "post":
                at = (START + dt.timedelta(days=200, hours=12)).isoformat()
                response = api.post(readings, {"reading_date": at, "value": 450}, format="json")
            else:
                reading = Reading.objects.get(
                    meter=meter, reading_date=START + dt.timedelta(days=200)
                )
                response = api.delete(f"{readings}{reading.pk}/")
        assert response.status_code in (201, 204)
        assert counts[0] <= 23
        assert stored_series(register) == fresh_series(register)


@pytest.mark.parametrize("write_rows", [services.RECOMPUTE_WRITE_ROWS, 7])
def test_recompute_of_several_registers_matches_a_fresh_computation(
    account, monkeypatch, write_rows
):
    # However many readings one statement writes at most, the result is the same.
    monkeypatch.setattr(services, "RECOMPUTE_WRITE_ROWS", write_rows)
    meters = [hourly_meter(account, count) for count in (3, 40, 90)]
    Reading.objects.filter(meter__in=meters).update(consumption=None, flag_negative=True)
    registers = [meter.registers.get(is_default=True) for meter in meters]
    changed = services.recompute(
        registers=Register.objects.filter(pk__in=[r.pk for r in registers]).select_related(
            "meter__account"
        )
    )
    assert changed == 3 + 40 + 90
    for register in registers:
        assert stored_series(register) == fresh_series(register)
    assert services.recompute(registers=registers) == 0
