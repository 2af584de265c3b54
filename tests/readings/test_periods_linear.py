"""Re-deriving period flags writes the changed rows in time linear in their number (issue 12).

A change of an account's thresholds re-derives every period series of the account, and a
period inserted before a long series changes the flags of the periods whose baseline it enters.
The changed rows are written by the engine's linear writer, one statement whose SQL text is the
same whatever the number of rows (no ``CASE WHEN`` per row as Django's ``bulk_update``), so the
statements for 50 period readings and for 500 are the same ones.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from metering import services as metering_services
from metering.models import Meter
from readings import periods, selectors
from readings.domain import DEVIATION, DROP
from readings.models import PeriodReading
from tests.factories import AccountFactory, MeterFactory
from tests.readings.test_periods import create, date, fresh_flags, item, stored_flags
from tests.readings.test_rederive_linear import (
    assert_same_statements,
    assert_writes_run_the_same_statements,
    statements,
)

pytestmark = pytest.mark.django_db

SIZES = (50, 500)
STRICT = {"anomaly_deviation_ratio": D("0.1")}


def daily_meter(account, count: int):
    """A meter with ``count`` one-day periods from D0, alternating 10 and 16: within the
    default deviation ratio (0.5) of their baseline (13), outside a ratio of 0.1."""
    meter = MeterFactory(account=account)
    create(meter, *[item(k, k, "16" if k % 2 else "10") for k in range(count)])
    assert not PeriodReading.objects.filter(meter=meter).exclude(flag_deviation=False).exists()
    return meter


def update_events(meter) -> list:
    history = selectors.period_reading_history(meter_id=meter.pk, limit=10_000)
    return [entry for entry in history if entry.action == "update"]


class TestThresholdChange:
    def test_statements_do_not_grow_with_the_period_readings(self):
        # One account each: the thresholds are an account's.
        accounts = {count: AccountFactory() for count in SIZES}
        meters = {count: daily_meter(account, count) for count, account in accounts.items()}
        captured = {}
        for count, account in accounts.items():
            with statements() as captured[count]:
                metering_services.update_account(account=account, values=STRICT)
        assert_same_statements(captured[50], captured[500])
        for count, meter in meters.items():
            # Every period from the fourth (three earlier ones make a baseline) changed.
            flagged = PeriodReading.objects.filter(meter=meter, flag_deviation=True)
            assert flagged.count() == count - 3

    def test_stored_flags_are_those_of_a_fresh_computation(self, account):
        meter = daily_meter(account, 300)
        before = dict(PeriodReading.objects.filter(meter=meter).values_list("pk", "updated_at"))
        metering_services.update_account(account=account, values=STRICT)
        stored = stored_flags(meter)
        assert stored == fresh_flags(meter)
        assert [flags for *_, flags in stored] == [frozenset()] * 3 + [{DEVIATION}] * 297
        # The three first periods did not change: not written, no event.
        rows = list(PeriodReading.objects.filter(meter=meter).order_by("start_date"))
        assert [row.updated_at == before[row.pk] for row in rows] == [True] * 3 + [False] * 297
        assert len({row.updated_at for row in rows[3:]}) == 1
        events = update_events(meter)
        assert len(events) == 297 == len({event.reading_id for event in events})
        assert {event.changes["flag_deviation"] for event in events} == {(False, True)}
        assert {row.pk for row in rows[:3]}.isdisjoint(event.reading_id for event in events)

        # Back to the default ratio: every flag goes again, nothing else is written.
        metering_services.update_account(
            account=account, values={"anomaly_deviation_ratio": D("0.5")}
        )
        assert stored_flags(meter) == fresh_flags(meter)
        assert {flags for *_, flags in stored_flags(meter)} == {frozenset()}
        assert len(update_events(meter)) == 2 * 297


class TestInsertBeforeTheSeries:
    """A one-day period of 100,000 before the series enters the baseline of every later period
    within the year and makes it a DROP (and a DEVIATION)."""

    def post_first(self, api, meter):
        body = {
            "start_date": date(-1).isoformat(),
            "end_date": date(-1).isoformat(),
            "consumption": "100000",
        }
        return api.post(f"/api/v1/meters/{meter.pk}/period-readings/", body, format="json")

    def test_statements_do_not_grow_with_the_period_readings(self, api, account):
        meters = {count: daily_meter(account, count) for count in SIZES}
        # A first request, so that once-per-key work (``last_used_at``) is not compared.
        assert api.get("/api/v1/account/").status_code == 200
        assert_writes_run_the_same_statements(
            meters, lambda meter: self.post_first(api, meter), 201
        )
        for count, meter in meters.items():
            dropped = PeriodReading.objects.filter(meter=meter, flag_drop=True)
            assert dropped.count() > min(count, 365) // 2

    def test_stored_flags_are_those_of_a_fresh_computation(self, api, account):
        meter = daily_meter(account, 400)
        assert self.post_first(api, meter).status_code == 201
        stored = stored_flags(meter)
        assert stored == fresh_flags(meter)
        assert stored[0][:3] == (date(-1), date(-1), D(100000))
        # From the fourth period after it to the last one whose year still holds it.
        dropped = [start for start, _, _, flags in stored if DROP in flags]
        assert dropped == [date(k) for k in range(2, 365)]


@pytest.mark.parametrize("write_rows", [None, 7])
def test_a_change_of_several_meters_matches_a_fresh_computation(account, monkeypatch, write_rows):
    # However many periods one statement writes at most (None: as configured), the result is
    # the same.
    if write_rows is not None:
        monkeypatch.setattr(periods, "RECOMPUTE_WRITE_ROWS", write_rows)
    meters = [daily_meter(account, count) for count in (3, 40, 90)]
    metering_services.update_account(account=account, values=STRICT)
    for meter in meters:
        assert stored_flags(meter) == fresh_flags(meter)
    assert PeriodReading.objects.filter(flag_deviation=True).count() == 37 + 87
    assert periods.recompute_period_flags(meters=Meter.objects.filter(account=account)) == 0
