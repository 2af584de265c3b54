"""Concurrent writes to one meter lose no reading and keep the chain (CONTRACT §4.1).

Threads with their own PostgreSQL connections write interleaved readings to one meter at the
same time, then change each other's neighbours. Without the engine's lock on the meter row,
writes compute their chain from series that miss the other threads' uncommitted readings
and this test fails.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from readings import services
from readings.models import Reading
from tests.factories import AccountFactory, MeterFactory
from tests.readings.conftest import day, fresh_series, stored_series
from tests.threads import run_threads

THREADS = 6
PER_THREAD = 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_to_one_meter():
    meter = MeterFactory(account=AccountFactory())
    register = meter.registers.get()

    def insert(thread: int) -> None:
        for k in range(PER_THREAD):
            n = k * THREADS + thread  # each thread's readings sit between the others'
            result = services.create_readings(
                meter=meter,
                items=[services.ReadingInput(reading_date=day(n), value=Decimal(10 * n))],
                actor=services.Actor(f"thread:{thread}"),
            )
            assert not result.errors, result.errors

    assert run_threads(THREADS, insert) == []
    assert Reading.objects.filter(meter=meter).count() == THREADS * PER_THREAD
    assert stored_series(register) == fresh_series(register)

    def update(thread: int) -> None:
        mine = Reading.objects.filter(created_by=f"thread:{thread}").order_by("reading_date")
        for reading in mine:
            services.update_reading(
                reading=reading,
                values={"value": reading.value + thread + 1},
                actor=services.Actor(f"thread:{thread}"),
            )

    assert run_threads(THREADS, update) == []
    assert stored_series(register) == fresh_series(register)
