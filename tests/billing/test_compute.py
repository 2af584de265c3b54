"""Computing and closing billing periods (CONTRACT §5 Rules), with numbers worked out by hand.

Every expected amount below is written out in the test's docstring or comments; the readings
go through the readings engine and the charges are read back from the database.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services
from billing.models import BillingPeriod, Charge
from metering.errors import Conflict, ReadingLocked
from metering.models import Register
from readings import periods as readings_periods
from readings import services as readings_services
from readings.domain import local_midnight
from readings.models import Reading
from tests.factories import (
    AccountFactory,
    AllocationRuleFactory,
    BillingPeriodFactory,
    EstateFactory,
    LeaseFactory,
    MeterFactory,
    MeterShareFactory,
    PlaceFactory,
    RegisterFactory,
    TariffFactory,
)

pytestmark = pytest.mark.django_db

ACTOR = readings_services.Actor("test:billing", "API")
D = Decimal


def date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@pytest.fixture
def account():
    return AccountFactory(slug="billing", timezone="Europe/Paris")


@pytest.fixture
def place(account):
    return PlaceFactory(account=account, code="P1")


def at(account, day: str) -> dt.datetime:
    """Local midnight of ``day`` in the account's zone."""
    return local_midnight(date(day), zoneinfo.ZoneInfo(account.timezone))


def read(meter, *pairs, register=None, billing=False) -> list[Reading]:
    """Readings ``(day, value)`` at local midnight, through the engine."""
    items = [
        readings_services.ReadingInput(
            reading_date=at(meter.account, day),
            value=D(str(value)),
            register_code=register.code if register else None,
            is_billing_reading=billing,
        )
        for day, value in pairs
    ]
    result = readings_services.create_readings(meter=meter, items=items, actor=ACTOR)
    assert not result.errors, result.errors
    return result.accepted


def bill(meter, start: str, end: str, consumption, cost=None):
    result = readings_periods.create_period_readings(
        meter=meter,
        items=[
            readings_periods.PeriodInput(
                start_date=date(start),
                end_date=date(end),
                consumption=D(str(consumption)),
                cost=None if cost is None else D(str(cost)),
            )
        ],
        actor=ACTOR,
    )
    assert not result.errors, result.errors


def lines(period, **filters) -> list[Charge]:
    return list(
        Charge.objects.filter(billing_period=period, **filters).order_by("pk").select_related()
    )


def amounts(period, **filters) -> list[tuple]:
    return [
        (charge.lease_id, charge.is_vacancy, charge.amount) for charge in lines(period, **filters)
    ]


def compute(period) -> BillingPeriod:
    return services.compute_period(period=period)


# --- SHARED: the contract's example --------------------------------------------------------


def test_shared_meter_split_by_ratio_then_by_lease_days_with_a_vacancy_line(account, place):
    """1,000 kWh at 0.20 €/kWh over 30 days = 200.00, shared by E1 (ratio 1) and E2 (ratio 2).
    E1 leased all 30 days: 200 × 1/3 = 66.666… ; E2 leased days 1–15: 200 × 2/3 × 15/30 =
    66.666… ; E2 vacant days 16–30: 66.666…. Largest remainder: 66.67, 66.67, 66.66."""
    TariffFactory(account=account, meter_type="ELECTRICITY", unit_price=D("0.20"))
    meter = MeterFactory(account=account, place=place, billing_type="SHARED")
    e1 = EstateFactory(place=place, code="E1")
    e2 = EstateFactory(place=place, code="E2")
    MeterShareFactory(meter=meter, estate=e1, ratio=1)
    MeterShareFactory(meter=meter, estate=e2, ratio=2)
    lease1 = LeaseFactory(estate=e1, start_date=date("2024-01-01"))
    lease2 = LeaseFactory(estate=e2, start_date=date("2024-01-01"), end_date=date("2024-04-15"))
    read(meter, ("2024-04-01", 0), ("2024-05-01", 1000))
    period = BillingPeriodFactory(
        place=place, start_date=date("2024-04-01"), end_date=date("2024-04-30")
    )

    period = compute(period)

    assert amounts(period) == [
        (lease1.pk, False, D("66.67")),
        (lease2.pk, False, D("66.67")),
        (None, True, D("66.66")),
    ]
    vacancy = lines(period, is_vacancy=True)[0]
    assert (vacancy.estate_id, vacancy.start_date, vacancy.end_date) == (
        e2.pk,
        date("2024-04-16"),
        date("2024-04-30"),
    )
    assert [c.basis for c in lines(period)] == [
        "ratio 1/3",
        "ratio 2/3 × 15/30 days",
        "ratio 2/3 × 15/30 days",
    ]
    assert [c.share for c in lines(period)] == [D("0.333333333333")] * 3
    assert [c.consumption for c in lines(period)] == [
        D("333.333333333333333333"),
        D("333.333333333333333333"),
        D("333.333333333333333333"),
    ]
    assert period.total_amount == D("200.00")
    assert period.issues == []


# --- INDIVIDUAL: lease and tariff changes, standing charge, VAT, interpolation -------------


@pytest.fixture
def individual(account, place):
    """An estate's meter read on Jan 1 (100), Jan 11 (200) and Feb 1 (410); lease A to Jan 10,
    vacant Jan 11–15, lease B from Jan 16; 0.10 €/kWh to Jan 20 then 0.20, standing charge
    0.50 €/day, VAT 20 %."""
    estate = EstateFactory(place=place, code="A1")
    meter = MeterFactory(account=account, place=place, estate=estate, billing_direction="ACCREC")
    TariffFactory(
        account=account,
        unit_price=D("0.10"),
        standing_charge_per_day=D("0.50"),
        vat_rate=D("0.20"),
        valid_from=date("2023-01-01"),
        valid_to=date("2024-01-20"),
    )
    TariffFactory(
        account=account,
        unit_price=D("0.20"),
        standing_charge_per_day=D("0.50"),
        vat_rate=D("0.20"),
        valid_from=date("2024-01-21"),
    )
    lease_a = LeaseFactory(
        estate=estate, start_date=date("2023-12-01"), end_date=date("2024-01-10")
    )
    lease_b = LeaseFactory(estate=estate, start_date=date("2024-01-16"))
    read(meter, ("2024-01-01", 100), ("2024-01-11", 200), ("2024-02-01", 410))
    return {"meter": meter, "estate": estate, "a": lease_a, "b": lease_b}


def test_individual_meter_is_split_at_lease_and_tariff_changes(account, place, individual):
    """I(Jan 16) = 200 + 210 × 5/21 = 250 and I(Jan 21) = 300, interpolated (estimated).
    Jan 1–10, lease A: 100 kWh × 0.10 + 10 d × 0.50 = 15.00, VAT 3.00.
    Jan 11–15, vacancy: 50 × 0.10 + 5 × 0.50 = 7.50, VAT 1.50.
    Jan 16–20, lease B: 50 × 0.10 + 5 × 0.50 = 7.50, VAT 1.50.
    Jan 21–31, lease B: 110 × 0.20 + 11 × 0.50 = 27.50, VAT 5.50.
    Total 57.50 + 11.50 = 69.00."""
    period = BillingPeriodFactory(
        place=place, start_date=date("2024-01-01"), end_date=date("2024-01-31")
    )
    period = compute(period)
    rows = [
        (
            c.lease_id,
            c.start_date.day,
            c.end_date.day,
            c.index_start,
            c.index_end,
            c.consumption,
            c.unit_price,
            c.amount,
            c.vat_amount,
            c.total_amount,
            c.is_estimated,
        )
        for c in lines(period)
    ]
    a, b = individual["a"].pk, individual["b"].pk
    assert rows == [
        (a, 1, 10, D(100), D(200), D(100), D("0.1"), D("15.00"), D("3.00"), D("18.00"), False),
        (None, 11, 15, D(200), D(250), D(50), D("0.1"), D("7.50"), D("1.50"), D("9.00"), True),
        (b, 16, 20, D(250), D(300), D(50), D("0.1"), D("7.50"), D("1.50"), D("9.00"), True),
        (b, 21, 31, D(300), D(410), D(110), D("0.2"), D("27.50"), D("5.50"), D("33.00"), True),
    ]
    assert period.total_amount == D("69.00")
    assert period.issues == []
    assert [c.is_vacancy for c in lines(period)] == [False, True, False, False]
    assert all(c.unit == "kWh" and c.register.is_default for c in lines(period))


def test_a_billing_reading_within_7_days_gives_the_index(account, place, individual):
    """A period Jan 21–25 has no reading at either end. A billing reading on Jan 24 (350) is
    within 7 days of both Jan 21 00:00 and Jan 26 00:00, so both indexes are 350 (not the
    interpolations 300 and 350 + …): consumption 0, and 5 days of standing charge: 2.50 + VAT
    0.50."""
    read(individual["meter"], ("2024-01-24", 350), billing=True)
    period = BillingPeriodFactory(
        place=place, start_date=date("2024-01-21"), end_date=date("2024-01-25")
    )
    period = compute(period)
    (line,) = lines(period)
    assert (line.index_start, line.index_end) == (D(350), D(350))
    assert line.consumption == 0
    assert (line.amount, line.vat_amount) == (D("2.50"), D("0.50"))


def test_adjacent_periods_add_up_to_one_period_covering_both(account, place, individual):
    """Consumption billed for Jan 1–17 and Jan 18–31 equals that of Jan 1–31 (410 − 100)."""
    read(individual["meter"], ("2024-01-19", 277.7), ("2024-01-26", 333.3))
    first = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-01-01"), end_date=date("2024-01-17")
        )
    )
    second = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-01-18"), end_date=date("2024-01-31")
        )
    )
    whole = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-01-01"), end_date=date("2024-01-31")
        )
    )

    def consumption(period):
        return sum(c.consumption for c in lines(period))

    assert consumption(first) + consumption(second) == consumption(whole) == D(310)
    # The index where the first ends is where the second starts.
    assert lines(first)[-1].index_end == lines(second)[0].index_start


def test_lines_of_a_meter_add_up_to_its_cost_to_the_cent(account, place):
    """7 kWh at 1/3 €/kWh... a price of 0.333333 over three equal estates: the cost 2.333331 is
    2.33 and the lines 0.78, 0.78, 0.77 (each exact 0.777777, two cents to the first two)."""
    TariffFactory(account=account, meter_type="HEATING", unit_price=D("0.333333"))
    meter = MeterFactory(
        account=account, place=place, meter_type="HEATING", billing_type="COLLECTIVE"
    )
    AllocationRuleFactory(meter=meter, basis="EQUAL")
    for code in ("E1", "E2", "E3"):
        LeaseFactory(estate=EstateFactory(place=place, code=code))
    read(meter, ("2024-03-01", 0), ("2024-04-01", 7))
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-03-01"), end_date=date("2024-03-31")
        )
    )
    assert [c.amount for c in lines(period)] == [D("0.78"), D("0.78"), D("0.77")]
    assert [c.basis for c in lines(period)] == ["equal 1/3"] * 3
    assert period.total_amount == D("2.33")


# --- COLLECTIVE: consumption part and basis ------------------------------------------------


def test_collective_meter_70_percent_by_consumption_30_percent_by_surface(account, place):
    """A heat meter measures 1,000 kWh at 0.10 €/kWh: 100.00. E1 (60 m²) has a sub-meter
    that measured 300 kWh, E2 (40 m²) one of 100 kWh; the common areas are not allocated.
    E1: 0.7 × 300/400 + 0.3 × 60/100 = 0.705 → 70.50; E2: 0.7 × 100/400 + 0.3 × 40/100 =
    0.295 → 29.50. The sub-meters are allocation devices: no lines of their own."""
    TariffFactory(account=account, meter_type="HEATING", unit_price=D("0.10"))
    main = MeterFactory(
        account=account,
        place=place,
        meter_type="HEATING",
        billing_type="COLLECTIVE",
        billing_direction="ACCREC",
        is_main_meter=True,
    )
    AllocationRuleFactory(meter=main, basis="SURFACE", consumption_part_percent=70)
    e1 = EstateFactory(place=place, code="E1", surface_m2=60)
    e2 = EstateFactory(place=place, code="E2", surface_m2=40)
    EstateFactory(place=place, code="COM", surface_m2=200, usage="COMMON")
    lease1, lease2 = LeaseFactory(estate=e1), LeaseFactory(estate=e2)
    sub1 = MeterFactory(account=account, estate=e1, meter_type="HEATING", parent_meter=main)
    sub2 = MeterFactory(account=account, estate=e2, meter_type="HEATING", parent_meter=main)
    read(main, ("2024-02-01", 5000), ("2024-03-01", 6000))
    read(sub1, ("2024-02-01", 10), ("2024-03-01", 310))
    read(sub2, ("2024-02-01", 20), ("2024-03-01", 120))
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-02-01"), end_date=date("2024-02-29")
        )
    )
    assert amounts(period) == [(lease1.pk, False, D("70.50")), (lease2.pk, False, D("29.50"))]
    assert {c.meter_id for c in lines(period)} == {main.pk}
    assert lines(period)[0].basis == ("70 % by consumption 300/400 kWh + 30 % by surface 60/100 m²")
    assert [c.share for c in lines(period)] == [D("0.705"), D("0.295")]
    assert [c.consumption for c in lines(period)] == [D("705"), D("295")]
    assert [(c.index_start, c.index_end) for c in lines(period)] == [(D(5000), D(6000))] * 2


def test_collective_meter_by_shares_without_consumption_part_bills_sub_meters_too(account, place):
    """Shares 300 and 100 of 400: 100.00 → 75.00 and 25.00; with no consumption part the
    sub-meter of E1 is billed on its own: 40 kWh × 0.10 = 4.00."""
    TariffFactory(account=account, meter_type="HEATING", unit_price=D("0.10"))
    main = MeterFactory(
        account=account, place=place, meter_type="HEATING", billing_type="COLLECTIVE"
    )
    AllocationRuleFactory(meter=main, basis="SHARES")
    e1 = EstateFactory(place=place, code="E1", shares=300)
    e2 = EstateFactory(place=place, code="E2", shares=100)
    lease1, lease2 = LeaseFactory(estate=e1), LeaseFactory(estate=e2)
    sub = MeterFactory(
        account=account, estate=e1, place=place, meter_type="HEATING", parent_meter=main
    )
    read(main, ("2024-02-01", 0), ("2024-03-01", 1000))
    read(sub, ("2024-02-01", 0), ("2024-03-01", 40))
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-02-01"), end_date=date("2024-02-29")
        )
    )
    assert amounts(period, meter=main) == [
        (lease1.pk, False, D("75.00")),
        (lease2.pk, False, D("25.00")),
    ]
    assert [c.basis for c in lines(period, meter=main)] == ["shares 300/400", "shares 100/400"]
    assert amounts(period, meter=sub) == [(lease1.pk, False, D("4.00"))]


def test_collective_utility_bills_are_recovered_by_shares_and_lease_days(account, place):
    """ACCPAY: March's bill (31 days, 310.00) and April's (30 days, 300.00); a period of
    Mar 16 – Apr 15 recovers 310 × 16/31 + 300 × 15/30 = 160 + 150 = 310.00. Shares 1:3:
    E1 77.50; E2 232.50 of which its lease ends Mar 31 (16 of 31 days: 120.00) and the rest is
    vacancy (112.50). No VAT on recovered costs."""
    main = MeterFactory(
        account=account,
        place=place,
        meter_type="WATER_COLD",
        billing_type="COLLECTIVE",
        billing_direction="ACCPAY",
    )
    AllocationRuleFactory(meter=main, basis="SHARES")
    e1 = EstateFactory(place=place, code="E1", shares=1)
    e2 = EstateFactory(place=place, code="E2", shares=3)
    lease1 = LeaseFactory(estate=e1)
    lease2 = LeaseFactory(estate=e2, end_date=date("2024-03-31"))
    bill(main, "2024-03-01", "2024-03-31", 62, cost=310)
    bill(main, "2024-04-01", "2024-04-30", 60, cost=300)
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-03-16"), end_date=date("2024-04-15")
        )
    )
    assert amounts(period) == [
        (lease1.pk, False, D("77.50")),
        (lease2.pk, False, D("120.00")),
        (None, True, D("112.50")),
    ]
    assert all(c.vat_amount == 0 and c.unit_price is None for c in lines(period))
    # 62 × 16/31 + 60 × 15/30 = 32 + 30 = 62 m³ in all.
    assert sum(c.consumption for c in lines(period)) == D(62)
    assert lines(period)[0].basis == "utility bills, shares 1/4"
    assert period.total_amount == D("310.00")


def test_days_without_a_utility_bill_are_an_issue(account, place):
    main = MeterFactory(
        account=account, place=place, billing_type="COLLECTIVE", billing_direction="ACCPAY"
    )
    AllocationRuleFactory(meter=main)
    LeaseFactory(estate=EstateFactory(place=place))
    bill(main, "2024-03-01", "2024-03-20", 10, cost=100)
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-03-01"), end_date=date("2024-03-31")
        )
    )
    assert lines(period) == []
    assert [(i["code"], i["meter_id"]) for i in period.issues] == [("missing_bills", main.pk)]
    assert "20 of the 31 days" in period.issues[0]["message"]


# --- INCLUDED, registers and slots ----------------------------------------------------------


def test_included_meter_gives_lines_at_zero(account, place):
    estate = EstateFactory(place=place)
    lease = LeaseFactory(estate=estate)
    meter = MeterFactory(account=account, place=place, estate=estate, billing_type="INCLUDED")
    read(meter, ("2024-03-01", 5), ("2024-04-01", 35))
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-03-01"), end_date=date("2024-03-31")
        )
    )
    (line,) = lines(period)
    assert (line.lease_id, line.consumption, line.amount, line.total_amount, line.is_included) == (
        lease.pk,
        D(30),
        D("0.00"),
        D("0.00"),
        True,
    )
    assert period.issues == []


def test_registers_are_priced_with_the_tariff_of_their_slot(account, place):
    """HT: 100 kWh × 0.25 + 31 d × 1.00 = 56.00; NT: 50 kWh × 0.15 = 7.50 (a slot-less tariff
    would serve any register; an exact slot wins)."""
    estate = EstateFactory(place=place)
    lease = LeaseFactory(estate=estate)
    meter = MeterFactory(account=account, place=place, estate=estate)
    ht = RegisterFactory(meter=meter, code="1.8.1", tariff_slot="HT")
    nt = RegisterFactory(meter=meter, code="1.8.2", tariff_slot="NT")
    TariffFactory(
        account=account, tariff_slot="HT", unit_price=D("0.25"), standing_charge_per_day=1
    )
    TariffFactory(account=account, tariff_slot="NT", unit_price=D("0.15"))
    TariffFactory(account=account, tariff_slot=None, unit_price=D("9"))
    read(meter, ("2024-03-01", 0), ("2024-04-01", 100), register=ht)
    read(meter, ("2024-03-01", 0), ("2024-04-01", 50), register=nt)
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-03-01"), end_date=date("2024-03-31")
        )
    )
    assert [(c.register_id, c.lease_id, c.amount) for c in lines(period)] == [
        (ht.pk, lease.pk, D("56.00")),
        (nt.pk, lease.pk, D("7.50")),
    ]


def test_a_meter_tariff_wins_and_a_missing_tariff_is_an_issue(account, place):
    estate = EstateFactory(place=place)
    LeaseFactory(estate=estate)
    own = TariffFactory(account=account, meter_type="EV", unit_price=D("0.50"))
    ev = MeterFactory(account=account, place=place, estate=estate, meter_type="EV", tariff=own)
    gas = MeterFactory(account=account, place=place, estate=estate, meter_type="GAS")
    read(ev, ("2024-03-01", 0), ("2024-04-01", 10))
    read(gas, ("2024-03-01", 0), ("2024-04-01", 10))
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-03-01"), end_date=date("2024-03-31")
        )
    )
    assert [(c.meter_id, c.amount, c.tariff_id) for c in lines(period)] == [
        (ev.pk, D("5.00"), own.pk),
        (gas.pk, D("0.00"), None),
    ]
    assert [(i["code"], i["meter_id"]) for i in period.issues] == [("no_tariff", gas.pk)]


# --- issues and close -----------------------------------------------------------------------


@pytest.fixture
def unfinished(account, place, individual):
    """January is fully read; February has no reading after Feb 1."""
    return BillingPeriodFactory(
        place=place, start_date=date("2024-02-01"), end_date=date("2024-02-29")
    )


def test_a_meter_without_a_reading_after_the_end_is_an_issue(unfinished, individual):
    period = compute(unfinished)
    assert lines(period) == []
    (issue,) = period.issues
    assert issue["code"] == "missing_readings"
    assert issue["meter_id"] == individual["meter"].pk
    assert issue["message"] == (
        "Register default: no reading after 2024-03-01 00:00 to measure 2024-02-01..2024-02-29."
    )


def test_closing_with_issues_needs_force(unfinished):
    with pytest.raises(Conflict) as refused:
        services.close_period(period=unfinished)
    assert refused.value.details["issues"][0]["code"] == "missing_readings"
    unfinished.refresh_from_db()
    assert unfinished.status == "DRAFT"
    assert Register.objects.filter(locked_until__isnull=False).count() == 0

    closed = services.close_period(period=unfinished, force=True, closed_by="alice")
    assert (closed.status, closed.closed_by, len(closed.issues)) == ("CLOSED", "alice", 1)


def test_close_freezes_the_charges_and_locks_the_readings_used(account, place, individual):
    period = BillingPeriodFactory(
        place=place, start_date=date("2024-01-01"), end_date=date("2024-01-20")
    )
    period = services.close_period(period=period, closed_by="alice")
    assert period.status == "CLOSED" and period.closed_at is not None
    assert period.total_amount == D("36.00")  # 18.00 + 9.00 + 9.00 (see above)
    register = individual["meter"].registers.get(is_default=True)
    # I(Jan 21) was interpolated with the reading of Feb 1: locked up to it.
    assert register.locked_until == at(account, "2024-02-01")
    reading = Reading.objects.get(register=register, reading_date=at(account, "2024-01-11"))
    with pytest.raises(ReadingLocked):
        readings_services.update_reading(reading=reading, values={"value": D(201)}, actor=ACTOR)
    with pytest.raises(Conflict):
        services.compute_period(period=period)
    with pytest.raises(Conflict):
        services.close_period(period=period, force=True)
    with pytest.raises(Conflict):
        services.update_period(period=period, values={"name": "x"})
    with pytest.raises(Conflict):
        services.delete_period(period=period)
    assert Charge.objects.filter(billing_period=period).count() == 3


def test_close_locks_the_utility_bills_used(account, place):
    main = MeterFactory(
        account=account, place=place, billing_type="COLLECTIVE", billing_direction="ACCPAY"
    )
    AllocationRuleFactory(meter=main)
    LeaseFactory(estate=EstateFactory(place=place))
    bill(main, "2024-03-01", "2024-03-31", 10, cost=100)
    period = services.close_period(
        period=BillingPeriodFactory(
            place=place, start_date=date("2024-03-01"), end_date=date("2024-03-31")
        )
    )
    assert period.total_amount == D("100.00")
    register = main.registers.get(is_default=True)
    assert register.locked_until == at(account, "2024-04-01")


def test_two_closed_periods_of_a_place_never_overlap(account, place, individual):
    first = BillingPeriodFactory(
        place=place, start_date=date("2024-01-01"), end_date=date("2024-01-20")
    )
    services.close_period(period=first)
    draft = BillingPeriodFactory(
        place=place, start_date=date("2024-01-15"), end_date=date("2024-01-31")
    )
    compute(draft)  # drafts may overlap
    with pytest.raises(Conflict, match="overlaps"):
        services.close_period(period=draft, force=True)
    draft.refresh_from_db()
    assert draft.status == "DRAFT"


def test_updating_a_draft_drops_its_charges(place, individual):
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-01-01"), end_date=date("2024-01-31")
        )
    )
    assert lines(period)
    period = services.update_period(period=period, values={"end_date": date("2024-01-20")})
    assert (lines(period), period.total_amount, period.computed_at) == ([], None, None)


def test_compute_runs_the_same_number_of_queries_for_1_and_10_meters(account, place):
    TariffFactory(account=account, unit_price=D("0.10"))
    period = BillingPeriodFactory(
        place=place, start_date=date("2024-03-01"), end_date=date("2024-03-31")
    )

    def add_meters(count):
        for _ in range(count):
            estate = EstateFactory(place=place)
            LeaseFactory(estate=estate)
            meter = MeterFactory(account=account, place=place, estate=estate)
            read(meter, ("2024-02-20", 0), ("2024-03-10", 5), ("2024-04-03", 20))

    def queries():
        with CaptureQueriesContext(connection) as captured:
            compute(period)
        return len(captured)

    add_meters(1)
    few = queries()
    add_meters(9)
    many = queries()
    assert Charge.objects.filter(billing_period=period).count() == 10
    assert many == few


def test_a_shared_allocation_device_counts_for_its_estates_by_ratio(account, place):
    """A water bill of 200.00 split 100 % by the sub-meters: a shared sub-meter measured 40 m³
    for E1 and E2 (ratios 1 and 3: 10 and 30), E3's own sub-meter 60 m³. E1: 200 × 10/100 =
    20.00, E2: 60.00, E3: 120.00; neither sub-meter gives a line of its own."""
    main = MeterFactory(
        account=account,
        place=place,
        meter_type="WATER_COLD",
        billing_type="COLLECTIVE",
        billing_direction="ACCPAY",
    )
    AllocationRuleFactory(meter=main, basis="EQUAL", consumption_part_percent=100)
    e1, e2, e3 = (EstateFactory(place=place, code=code) for code in ("E1", "E2", "E3"))
    leases = [LeaseFactory(estate=estate) for estate in (e1, e2, e3)]
    shops = MeterFactory(
        account=account,
        place=place,
        meter_type="WATER_COLD",
        billing_type="SHARED",
        parent_meter=main,
    )
    MeterShareFactory(meter=shops, estate=e1, ratio=1)
    MeterShareFactory(meter=shops, estate=e2, ratio=3)
    flat = MeterFactory(account=account, estate=e3, meter_type="WATER_COLD", parent_meter=main)
    read(shops, ("2024-03-01", 0), ("2024-04-01", 40))
    read(flat, ("2024-03-01", 0), ("2024-04-01", 60))
    bill(main, "2024-03-01", "2024-03-31", 100, cost=200)
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-03-01"), end_date=date("2024-03-31")
        )
    )
    assert amounts(period) == [
        (leases[0].pk, False, D("20.00")),
        (leases[1].pk, False, D("60.00")),
        (leases[2].pk, False, D("120.00")),
    ]
    assert {c.meter_id for c in lines(period)} == {main.pk}
    assert lines(period)[0].basis == "utility bills, by consumption 10/100 m3"
    assert period.issues == []


def test_a_register_converting_volume_to_energy_bills_kwh(account, place):
    """A gas meter read in m³ whose register converts at 11.2 kWh/m³: 10 m³ is 112 kWh, at
    0.10 €/kWh 11.20. The indexes stay in m³; the basis says so."""
    estate = EstateFactory(place=place)
    LeaseFactory(estate=estate)
    TariffFactory(account=account, meter_type="GAS", unit_price=D("0.10"))
    gas = MeterFactory(account=account, place=place, estate=estate, meter_type="GAS")
    Register.objects.filter(meter=gas).update(conversion_factor=D("11.2"))
    read(gas, ("2024-03-01", 100), ("2024-04-01", 110))
    period = compute(
        BillingPeriodFactory(
            place=place, start_date=date("2024-03-01"), end_date=date("2024-03-31")
        )
    )
    (line,) = lines(period)
    assert (line.index_start, line.index_end, line.consumption, line.unit, line.amount) == (
        D(100),
        D(110),
        D(112),
        "kWh",
        D("11.20"),
    )
    assert line.basis == "individual; index in m3, × 11.2 kWh/m3"
