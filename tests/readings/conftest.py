"""Helpers for readings tests: a meter, and readings written through the engine."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from metering.models import MeterDevice, Register
from readings import domain, services
from readings.models import Reading
from tests.factories import MeterFactory

PARIS = dt.timezone(dt.timedelta(hours=1))  # Europe/Paris in winter
ACTOR = services.Actor("test:fixture", "API")


def day(n: float, hour: int = 0) -> dt.datetime:
    """Midnight (or ``hour``) UTC, ``n`` days after 2024-01-01."""
    return dt.datetime(2024, 1, 1, hour, tzinfo=dt.UTC) + dt.timedelta(days=n)


def add(meter, *pairs, register=None) -> list[Reading]:
    """Create readings ``(day offset, value)`` on ``meter`` through the engine."""
    items = [
        services.ReadingInput(
            reading_date=day(offset),
            value=Decimal(str(value)),
            register_code=register.code if register else None,
        )
        for offset, value in pairs
    ]
    result = services.create_readings(meter=meter, items=items, actor=ACTOR)
    assert not result.errors, result.errors
    return result.accepted


def stored_series(register) -> list[tuple]:
    """The stored chain fields of a register's readings, in date order."""
    rows = Reading.objects.filter(register=register).order_by("reading_date")
    return [
        (
            r.reading_date,
            r.value,
            r.previous_value,
            r.consumption,
            r.is_rollover,
            frozenset(r.anomaly_flags),
        )
        for r in rows
    ]


def fresh_series(register) -> list[tuple]:
    """What inserting the register's readings in date order gives (CONTRACT §4.1)."""
    register = Register.objects.select_related("meter__account").get(pk=register.pk)
    meter = register.meter
    rows = list(Reading.objects.filter(register=register).order_by("reading_date"))
    # After a device replacement each register counts from the new device's initial value
    # for it: the default register's `initial_value`, the others' in `register_values`, or 0.
    restarts = []
    for device in MeterDevice.objects.filter(meter=meter, initial_value__isnull=False):
        other = device.register_values.get(register.code, {"initial_value": "0"})
        initial = device.initial_value if register.is_default else other["initial_value"]
        restarts.append(domain.Restart(device.installed_at, Decimal(initial)))
    derived = domain.derive_series(
        [domain.Point(r.reading_date, r.value) for r in rows],
        factor=meter.multiplier * register.transformer_ratio,
        max_value=meter.max_value,
        thresholds=services.thresholds(meter.account),
        restarts=restarts,
    )
    return [
        (r.reading_date, r.value, d.previous_value, d.consumption, d.is_rollover, d.flags)
        for r, d in zip(rows, derived, strict=True)
    ]


@pytest.fixture
def meter(account):
    return MeterFactory(account=account, meter_type="WATER", serial_number="W-1")


@pytest.fixture
def register(meter):
    return meter.registers.get(is_default=True)
