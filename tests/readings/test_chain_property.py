"""Property: whatever the order of writes, the stored series is the in-order computation.

Random sequences of inserts (single and batch), value changes, date changes and deletes on
two registers of a meter, through the same services as every path, in random order; after
each sequence every register's stored series must equal, field by field, what deriving its
readings in date order gives (CONTRACT §4.1, §4.2).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.api.errors import exceptions as drf_exceptions
from metering.errors import ApiError
from readings import services
from readings.models import Reading
from tests.factories import MeterFactory, RegisterFactory
from tests.readings.conftest import day, fresh_series, stored_series

pytestmark = pytest.mark.django_db

ACTOR = services.Actor("test:property", "API")
moments = st.tuples(st.integers(0, 30), st.sampled_from([0, 6, 18]))
values = st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False)
registers = st.sampled_from(["default", "2.8.0"])

operations = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), registers, moments, values),
        st.tuples(st.just("batch"), st.lists(st.tuples(registers, moments, values), max_size=6)),
        st.tuples(st.just("value"), st.integers(0, 100), values),
        st.tuples(st.just("date"), st.integers(0, 100), moments),
        st.tuples(st.just("delete"), st.integers(0, 100)),
    ),
    min_size=1,
    max_size=20,
)


def apply(meter, operation) -> None:
    kind, *args = operation
    existing = list(Reading.objects.filter(meter=meter).order_by("id"))
    try:
        if kind in ("insert", "batch"):
            items = [args] if kind == "insert" else args[0]
            services.create_readings(
                meter=meter,
                items=[
                    services.ReadingInput(
                        reading_date=day(d, hour), value=value, register_code=code
                    )
                    for code, (d, hour), value in items
                ],
                actor=ACTOR,
            )
        elif existing and kind == "value":
            reading = existing[args[0] % len(existing)]
            services.update_reading(reading=reading, values={"value": args[1]}, actor=ACTOR)
        elif existing and kind == "date":
            reading = existing[args[0] % len(existing)]
            services.update_reading(
                reading=reading, values={"reading_date": day(*args[1])}, actor=ACTOR
            )
        elif existing and kind == "delete":
            services.delete_reading(reading=existing[args[0] % len(existing)], actor=ACTOR)
    except (ApiError, drf_exceptions.ValidationError):
        pass  # a duplicate date or an invalid value: refused, nothing changes


@pytest.fixture
def sensitive_account(account):
    # A short baseline so that flags appear within a few readings.
    account.anomaly_baseline_days = 6
    account.anomaly_min_intervals = 2
    account.save()
    return account


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=operations,
    max_value=st.sampled_from([None, Decimal(1000)]),
    multiplier=st.sampled_from([Decimal(1), Decimal("2.5")]),
)
def test_any_order_of_writes_gives_the_in_order_series(
    sensitive_account, ops, max_value, multiplier
):
    meter = MeterFactory(account=sensitive_account, max_value=max_value, multiplier=multiplier)
    feed_in = RegisterFactory(meter=meter, code="2.8.0", transformer_ratio=Decimal(3))
    for operation in ops:
        apply(meter, operation)
    for register in (meter.registers.get(is_default=True), feed_in):
        assert stored_series(register) == fresh_series(register)
