"""``manage.py load_demo``: what the demo holds, its login and key, and that it can be rebuilt.

A build takes seconds (two years of readings), so the module builds the demo once, in a
transaction rolled back at the end, and each test that reads it runs in a savepoint inside it
(as with Django's ``setUpTestData``). The rebuild tests come first and build their own demo
without readings, which play no part in them: deleting 30 000 readings inside the module's
transaction would cost them far more (see ``TestRebuild``).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError
from django.db.models import Count, Max, Min, Q, Sum
from django.test import Client
from rest_framework.test import APIClient

from billing import demo as demo_data
from billing.models import (
    AllocationRule,
    BillingPeriod,
    Charge,
    Lease,
    MeterShare,
    Tariff,
    Tenant,
)
from metering import domain
from metering.models import (
    Account,
    ApiKey,
    Estate,
    Gateway,
    Membership,
    Meter,
    MeterDevice,
    Place,
    Register,
    ServicePlace,
)
from readings import domain as readings_domain
from readings import services as readings_services
from readings.models import PeriodReading, Reading
from readings.services import ReadingInput, thresholds
from tests.demo import PASSWORD, load_demo
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")


def printed(lines: list[str], label: str) -> str:
    return next(line.split(": ", 1)[1] for line in lines if line.startswith(f"{label}: "))


@pytest.fixture
def demo(demo_output) -> Account:
    """The demo account of the module's one ``load_demo`` (``demo_output``)."""
    return Account.objects.get(slug="demo")


def counts(account: Account) -> dict[str, int]:
    return {
        "places": Place.objects.filter(account=account).count(),
        "estates": Estate.objects.filter(account=account).count(),
        "service_places": ServicePlace.objects.filter(account=account).count(),
        "gateways": Gateway.objects.filter(account=account).count(),
        "meters": Meter.objects.filter(account=account).count(),
        "registers": Register.objects.filter(meter__account=account).count(),
        "tariffs": Tariff.objects.filter(account=account).count(),
        "tenants": Tenant.objects.filter(account=account).count(),
    }


def local(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(PARIS)


def is_automatic(meter: Meter) -> bool:
    return meter.communication_type != "NONE"


class TestRebuild:
    """Runs of the command one after the other.

    These tests come first, before the module's demo is built, and hold whether a demo exists or
    not. Their builds skip the readings: deleting the module demo's 30 000 readings inside its
    transaction fires as many audit-trigger calls there, which takes tens of seconds. A few
    readings stand for them where a rebuild must delete them.
    """

    @pytest.fixture(autouse=True)
    def _without_readings(self, monkeypatch):
        monkeypatch.setattr(demo_data, "build_readings", lambda demo, **options: None)

    def test_twice_leaves_one_demo_with_the_same_counts(self, account):
        load_demo(password=PASSWORD)
        demo = Account.objects.get(slug="demo")
        before = counts(demo)
        serials = sorted(Meter.objects.filter(account=demo).values_list("serial_number", flat=True))
        for meter in Meter.objects.filter(account=demo)[:3]:
            readings_services.create_readings(
                meter=meter,
                items=[
                    ReadingInput(
                        reading_date=dt.datetime(2026, 1, day, tzinfo=PARIS), value=Decimal(day)
                    )
                    for day in (1, 2)
                ],
                actor=readings_services.Actor("test", "IMPORT"),
            )
        lines = load_demo(password=PASSWORD)
        assert Account.objects.filter(slug="demo").count() == 1
        rebuilt = Account.objects.get(slug="demo")
        assert rebuilt.pk != demo.pk
        assert counts(rebuilt) == before
        assert sorted(Meter.objects.values_list("serial_number", flat=True)) == serials
        # The old readings went with the old account (they restrict their meter and register).
        assert not Reading.objects.exists()
        assert ApiKey.objects.filter(account=rebuilt).count() == 1
        assert get_user_model().objects.filter(username="demo").count() == 1
        assert Client().login(username="demo", password=printed(lines, "Password"))
        # Other accounts are left alone.
        assert Account.objects.filter(pk=account.pk).exists()

    def test_random_password_each_run(self):
        first = printed(load_demo(), "Password")
        second = printed(load_demo(), "Password")
        assert first != second
        assert not Client().login(username="demo", password=first)
        assert Client().login(username="demo", password=second)

    def test_weak_password_is_refused(self):
        before = list(Account.objects.filter(slug="demo").values_list("pk", flat=True))
        with pytest.raises(CommandError, match="--password"):
            load_demo(password="demo")
        assert list(Account.objects.filter(slug="demo").values_list("pk", flat=True)) == before

    def test_someone_elses_demo_user_is_not_taken_over(self, account):
        load_demo(password=PASSWORD)
        demo = Account.objects.get(slug="demo")
        user = get_user_model().objects.get(username="demo")
        MembershipFactory(user=user, account=account)
        with pytest.raises(CommandError, match="other account"):
            load_demo(password=PASSWORD)
        # The failed run rolled back: the previous demo is intact.
        assert Account.objects.get(slug="demo").pk == demo.pk

    def test_superuser_named_demo_is_not_demoted(self):
        before = list(Account.objects.filter(slug="demo").values_list("pk", flat=True))
        get_user_model().objects.update_or_create(
            username="demo", defaults={"is_superuser": True, "is_staff": True}
        )
        with pytest.raises(CommandError, match="superuser"):
            load_demo(password=PASSWORD)
        assert get_user_model().objects.get(username="demo").is_superuser
        assert list(Account.objects.filter(slug="demo").values_list("pk", flat=True)) == before


class TestContent:
    def test_account(self, demo):
        assert (demo.currency, demo.timezone) == ("EUR", "Europe/Paris")
        assert demo.name

    def test_sizes(self, demo):
        found = counts(demo)
        assert found["places"] == 2
        assert 18 <= found["estates"] <= 22
        assert 55 <= found["meters"] <= 65
        assert found["service_places"] >= 3
        assert 1 <= found["gateways"] <= 2
        assert found["tariffs"] >= 3
        assert found["tenants"] >= 3

    def test_shares_add_up_to_1000_per_place(self, demo):
        totals = Place.objects.filter(account=demo).annotate(total=Sum("estates__shares"))
        assert {place.code: place.total for place in totals} == {
            "LYO-TIL": 1000,
            "PAR-ROQ": 1000,
        }
        usages = set(Estate.objects.filter(account=demo).values_list("usage", flat=True))
        assert {"RESIDENTIAL", "COMMERCIAL", "PARKING", "COMMON"} <= usages

    def test_main_meters_with_sub_meters(self, demo):
        mains = (
            Meter.objects.filter(account=demo, is_main_meter=True)
            .annotate(children=Count("sub_meters"))
            .filter(children__gt=0)
        )
        assert mains.count() >= 2
        cold = Meter.objects.get(account=demo, serial_number="LYO-W-MAIN")
        children = cold.sub_meters.all()
        assert {m.meter_type for m in children} == {"WATER_COLD"}
        assert {m.estate.code for m in children} == {f"A{n:02d}" for n in range(1, 11)}
        heating = Meter.objects.get(account=demo, serial_number="LYO-HEAT-MAIN")
        assert {m.meter_type for m in heating.sub_meters.all()} == {"HEATING"}
        assert heating.sub_meters.count() == 10

    def test_dual_rate_electricity_meter(self, demo):
        meter = Meter.objects.get(account=demo, serial_number="PAR-ELEC-A11")
        registers = {r.tariff_slot: r for r in meter.registers.all()}
        assert set(registers) == {"HT", "NT"}
        assert (registers["HT"].code, registers["HT"].obis_code) == ("1.8.1", "1-0:1.8.1")
        assert (registers["NT"].code, registers["NT"].obis_code) == ("1.8.2", "1-0:1.8.2")
        assert registers["HT"].is_default and not registers["NT"].is_default
        assert {r.unit for r in registers.values()} == {"kWh"}

    def test_feed_in_register(self, demo):
        feed_in = Register.objects.get(meter__account=demo, direction="FEED_IN")
        assert feed_in.code == "2.8.0"
        assert feed_in.meter.meter_type in {"SOLAR", "EV", "ELECTRICITY"}

    def test_every_meter_has_exactly_one_default_register(self, demo):
        meters = Meter.objects.filter(account=demo).annotate(
            defaults=Count("registers", filter=Q(registers__is_default=True))
        )
        assert {m.serial_number: m.defaults for m in meters if m.defaults != 1} == {}

    def test_meter_variety(self, demo):
        meters = Meter.objects.filter(account=demo)
        assert set(meters.values_list("billing_type", flat=True)) == {
            "INDIVIDUAL",
            "COLLECTIVE",
            "SHARED",
            "INCLUDED",
        }
        assert set(meters.values_list("billing_direction", flat=True)) == {
            "ACCREC",
            "ACCPAY",
            None,
        }
        common = meters.get(serial_number="LYO-ELEC-COM")
        assert common.multiplier > 1
        assert common.registers.get(is_default=True).transformer_ratio > 1
        assert meters.filter(max_value__isnull=False).exists()
        automatic = meters.exclude(communication_type__in=["NONE", "HTTP"])
        assert automatic.exists()
        assert not automatic.filter(gateway__isnull=True).exists()
        assert not meters.filter(installation_date__isnull=True).exists()
        assert all(m.unit == domain.default_unit(m.meter_type) for m in meters)

    def test_tariffs_cover_electricity_slots(self, demo):
        slots = set(
            Tariff.objects.filter(account=demo, meter_type="ELECTRICITY").values_list(
                "tariff_slot", flat=True
            )
        )
        assert {"HT", "NT"} <= slots

    def test_everything_belongs_to_the_demo_account(self, demo, account):
        for model in (
            Place,
            Estate,
            ServicePlace,
            Gateway,
            Meter,
            Tariff,
            Tenant,
            Lease,
            MeterShare,
            AllocationRule,
            BillingPeriod,
            Charge,
        ):
            assert not model.objects.exclude(account=demo).exists(), model
        meters = Meter.objects.filter(account=demo)
        for relation in ("place", "estate", "service_place", "gateway", "tariff", "parent_meter"):
            foreign = meters.filter(**{f"{relation}__isnull": False}).exclude(
                **{f"{relation}__account": demo}
            )
            assert not foreign.exists(), relation
        assert not Estate.objects.filter(account=demo).exclude(place__account=demo).exists()

    def test_serial_numbers_are_stable(self, demo):
        serials = set(Meter.objects.filter(account=demo).values_list("serial_number", flat=True))
        # A replaced device's meter carries the new device's serial number.
        renamed = {r.serial_number: r.new_serial_number for r in demo_data.REPLACEMENTS}
        specs = {spec.serial_number for spec in demo_data.meter_specs()}
        assert serials == {renamed.get(serial, serial) for serial in specs}
        assert "PAR-PV-01" in serials and "PAR-CW-A22-R" in serials


class TestAccess:
    def test_output_ends_with_a_working_api_key(self, demo_output, demo):
        key = demo_output[-1]
        assert key.startswith("mtr_") and " " not in key
        assert demo_output[-2].startswith("API key")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        response = client.get("/api/v1/meters/")
        assert response.status_code == 200, response.content[:300]
        assert response.json()["meta"]["total"] == Meter.objects.filter(account=demo).count()
        api_key = ApiKey.objects.get(account=demo)
        assert set(api_key.scopes) == set(domain.SCOPES)

    def test_printed_login_works(self, demo_output, demo):
        assert "http://127.0.0.1:8000/admin/" in "\n".join(demo_output)
        username = printed(demo_output, "Username")
        password = printed(demo_output, "Password")
        assert password == PASSWORD
        assert Client().login(username=username, password=password)
        user = get_user_model().objects.get(username=username)
        assert user.is_staff and not user.is_superuser
        membership = Membership.objects.get(user=user)
        assert (membership.account, membership.role) == (demo, "ADMIN")

    def test_summary_counts_match_the_database(self, demo_output, demo):
        found = counts(demo)
        text = "\n".join(demo_output)
        assert f"{found['places']} places" in text
        assert f"{found['estates']} estates" in text
        assert f"{found['meters']} meters" in text
        readings = Reading.objects.filter(account=demo)
        assert f"{readings.count()} readings over 2 years" in text
        automatic = Meter.objects.filter(account=demo).exclude(communication_type="NONE")
        assert f"daily on {automatic.count()} automatic meters" in text
        flagged = (
            f"{readings.filter(is_rollover=True).count()} rollovers, "
            f"{readings.filter(flag_spike=True).count()} spikes, "
            f"{readings.filter(flag_drop=True).count()} drops, "
            f"{readings.filter(flag_negative=True).count()} negative"
        )
        assert flagged in text
        bills = PeriodReading.objects.filter(account=demo)
        billed = bills.values("meter").distinct().count()
        assert (
            f"{bills.count()} utility bills (period readings) on {billed} supplied meters" in text
        )
        assert f"{Lease.objects.filter(account=demo).count()} leases, 2 meter shares" in text
        charges = Charge.objects.filter(account=demo)
        assert (
            f"4 billing periods (2 closed, 2 draft) with {charges.count()} charges "
            f"({charges.filter(is_vacancy=True).count()} for vacant lots)"
        ) in text


class TestReadings:
    """Two years of readings through the engine, with deliberate anomalies it flags."""

    def test_two_years_up_to_today(self, demo):
        span = Reading.objects.filter(account=demo).aggregate(
            first=Min("reading_date"), last=Max("reading_date")
        )
        first, last = local(span["first"]), local(span["last"])
        today = dt.datetime.now(PARIS).date()
        # Built before midnight, tested after it: yesterday's build.
        assert last.date() in {today, today - dt.timedelta(days=1)}
        assert first.date() == demo_data.history_start(last.date())
        assert 730 <= (last - first).days <= 731
        assert first.time() == last.time() == dt.time(0)

    def test_daily_for_automatic_meters_monthly_for_manual_ones(self, demo):
        span = Reading.objects.filter(account=demo).aggregate(
            first=Min("reading_date"), last=Max("reading_date")
        )
        first, last = local(span["first"]).date(), local(span["last"]).date()
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        month_starts = [day for day in days if day.day == 1]
        dates: dict[int, list[dt.date]] = defaultdict(list)
        # Each reading at 00:00, but the final reading of a replaced device.
        finals = MeterDevice.objects.filter(account=demo, final_value__isnull=False)
        replaced = finals.values_list("removed_at", flat=True)
        for register_id, reading_date in (
            Reading.objects.filter(account=demo)
            .exclude(reading_date__in=replaced, meter__devices__in=finals)
            .values_list("register_id", "reading_date")
        ):
            instant = local(reading_date)
            assert instant.time() == dt.time(0)
            dates[register_id].append(instant.date())
        registers = Register.objects.filter(meter__account=demo).select_related("meter")
        assert len(registers) == 66
        for register in registers:
            expected = days if is_automatic(register.meter) else month_starts
            assert sorted(dates[register.pk]) == expected, str(register)
        automatic = Meter.objects.filter(account=demo).exclude(communication_type="NONE")
        assert automatic.count() >= 30
        assert len(month_starts) in (24, 25)

    def test_reading_types_estimates_and_billing_readings(self, demo):
        readings = Reading.objects.filter(account=demo)
        assert set(readings.values_list("source", "created_by").distinct()) == {
            ("IMPORT", "system:load_demo")
        }
        automatic = Q(meter__communication_type="NONE")
        assert set(readings.exclude(automatic).values_list("reading_type", flat=True)) == {
            "AUTOMATIC"
        }
        assert set(readings.filter(automatic).values_list("reading_type", flat=True)) == {
            "MANUAL",
            "ESTIMATED",
        }
        estimated = readings.filter(reading_type="ESTIMATED")
        assert 3 <= estimated.count() <= 6
        assert not estimated.filter(is_estimated=False).exists()
        assert not readings.exclude(reading_type="ESTIMATED").filter(is_estimated=True).exists()
        billing = readings.filter(is_billing_reading=True)
        assert billing.exists()
        for reading_date in billing.values_list("reading_date", flat=True):
            instant = local(reading_date)
            assert (instant.day, instant.month % 3, instant.time()) == (1, 1, dt.time(0))
        # Every register has one at each quarter's end of the two years (8, or 9 when the two
        # years start on a quarter's first day).
        quarters = Register.objects.filter(meter__account=demo).annotate(
            billing=Count("readings", filter=Q(readings__is_billing_reading=True))
        )
        assert {register.billing for register in quarters} <= {8, 9}

    def test_multi_register_meters_are_read_on_each_register(self, demo):
        for serial in ("PAR-ELEC-A11", "PAR-ELEC-A22", "PAR-PV-01"):
            meter = Meter.objects.get(account=demo, serial_number=serial)
            series = {
                register.code: list(register.readings.values_list("reading_date", flat=True))
                for register in meter.registers.all()
            }
            assert len(series) == 2
            first, second = series.values()
            assert first and first == second, serial

    def test_solar_feed_in_follows_the_seasons(self, demo):
        feed_in = Register.objects.get(meter__account=demo, code="2.8.0")
        by_month: dict[int, Decimal] = defaultdict(Decimal)
        for reading_date, consumption in feed_in.readings.filter(
            consumption__isnull=False
        ).values_list("reading_date", "consumption"):
            by_month[local(reading_date).month] += consumption
        summer = by_month[6] + by_month[7]
        winter = by_month[12] + by_month[1]
        assert summer > 2 * winter > 0
        # The inverter's standby draws about 1 % of what the panels feed in.
        standby = Register.objects.get(meter__account=demo, code="1.8.0")
        drawn = standby.readings.aggregate(total=Sum("consumption"))["total"]
        assert 0 < drawn < sum(by_month.values()) / 50

    def test_values_respect_precision_and_counter(self, demo):
        rows = Reading.objects.filter(account=demo).values_list(
            "meter__serial_number", "meter__precision_digits", "meter__max_value", "value"
        )
        for serial, digits, max_value, value in rows:
            assert value >= 0, serial
            assert value == value.quantize(Decimal(1).scaleb(-digits)), (serial, value)
            assert max_value is None or value < max_value, (serial, value)

    def test_deliberate_anomalies_are_flagged(self, demo):
        readings = Reading.objects.filter(account=demo)

        def flagged(**flag) -> dict[str, int]:
            rows = readings.filter(**flag).values("meter__serial_number").annotate(n=Count("pk"))
            return {row["meter__serial_number"]: row["n"] for row in rows}

        rollovers = flagged(is_rollover=True)
        assert set(rollovers) == set(demo_data.ROLLOVERS)
        assert sum(rollovers.values()) >= 2
        spikes = flagged(flag_spike=True)
        assert set(spikes) == {leak.serial_number for leak in demo_data.LEAKS}
        assert sum(spikes.values()) >= 3
        # Every day of a leak is a SPIKE, and only those days.
        for leak in demo_data.LEAKS:
            assert spikes[leak.serial_number] == leak.days
        drops = flagged(flag_drop=True)
        vacant = {(vacancy.place, vacancy.lot) for vacancy in demo_data.VACANCIES}
        assert sum(drops.values()) >= 2
        for serial in drops:
            meter = Meter.objects.get(account=demo, serial_number=serial)
            assert (meter.place.code, meter.estate.code) in vacant, serial
        dropping = Meter.objects.filter(account=demo, serial_number__in=drops)
        assert {meter.place.code for meter in dropping} == {"LYO-TIL", "PAR-ROQ"}
        assert flagged(flag_negative=True) == {"PAR-ELEC-COM": 1}
        # A NEGATIVE reading gets no rate flag; a rollover's consumption stays positive.
        assert (
            not readings.filter(flag_negative=True)
            .filter(Q(flag_spike=True) | Q(flag_drop=True) | Q(flag_deviation=True))
            .exists()
        )
        assert not readings.filter(is_rollover=True, consumption__lte=0).exists()

    def test_the_chain_is_the_engines(self, demo):
        """Stored fields are what ``derive_series`` gives over each register's whole series."""
        settings = thresholds(demo)
        for serial, code in [
            ("LYO-HW-MAIN", "default"),  # a rollover
            ("LYO-CW-A06", "default"),  # a leak
            ("LYO-CW-A03", "default"),  # a vacancy
            ("PAR-ELEC-COM", "default"),  # a misread
            ("LYO-ELEC-COM", "default"),  # multiplier × transformer ratio
            ("PAR-ELEC-A21", "1.8.2"),
            ("PAR-PV-01", "2.8.0"),
            ("PAR-CW-A22-R", "default"),  # a device replacement
        ]:
            register = Register.objects.select_related("meter").get(
                meter__account=demo, meter__serial_number=serial, code=code
            )
            meter = register.meter
            rows = list(register.readings.order_by("reading_date"))
            derived = readings_domain.derive_series(
                [readings_domain.Point(row.reading_date, row.value) for row in rows],
                factor=meter.multiplier * register.transformer_ratio,
                max_value=meter.max_value,
                thresholds=settings,
                restarts=[
                    readings_domain.Restart(device.installed_at, device.initial_value)
                    for device in meter.devices.filter(initial_value__isnull=False)
                ],
            )
            stored = [
                (row.previous_value, row.consumption, row.is_rollover, set(row.anomaly_flags))
                for row in rows
            ]
            expected = [
                (d.previous_value, d.consumption, d.is_rollover, set(d.flags)) for d in derived
            ]
            assert stored == expected, serial

    def test_last_reading_of_each_meter(self, demo):
        for meter in Meter.objects.filter(account=demo):
            latest = (
                Reading.objects.filter(meter=meter, register__is_default=True)
                .order_by("-reading_date")
                .first()
            )
            assert latest is not None, meter.serial_number
            assert (meter.last_reading_value, meter.last_reading_at) == (
                latest.value,
                latest.reading_date,
            ), meter.serial_number

    @pytest.mark.parametrize(
        "serial", ["LYO-W-MAIN", "LYO-HW-MAIN", "LYO-HEAT-MAIN", "PAR-W-MAIN", "PAR-HEAT-MAIN"]
    )
    def test_main_meters_balance_with_their_sub_meters(self, demo, serial):
        """Between two readings of a main meter, it counts its sub-meters' sum plus losses."""
        main = Meter.objects.get(account=demo, serial_number=serial)
        span = main.readings.aggregate(first=Min("reading_date"), last=Max("reading_date"))
        period = {"reading_date__gt": span["first"], "reading_date__lte": span["last"]}
        total = main.readings.filter(**period).aggregate(total=Sum("consumption"))["total"]
        subs = Reading.objects.filter(meter__parent_meter=main, **period)
        assert subs.values("meter").distinct().count() == main.sub_meters.count()
        sub_total = subs.aggregate(total=Sum("consumption"))["total"]
        assert Decimal("1.02") < total / sub_total < Decimal("1.10")

    def test_a_device_replacement_loses_no_consumption(self, demo):
        meter = Meter.objects.get(account=demo, serial_number="PAR-CW-A22-R")
        old, new = meter.devices.order_by("id")
        assert (old.serial_number, new.serial_number) == ("PAR-CW-A22", "PAR-CW-A22-R")
        assert old.removed_at == new.installed_at
        readings = list(meter.readings.order_by("reading_date"))
        at = [r.reading_date for r in readings].index(new.installed_at)
        before, final, after = readings[at - 1], readings[at], readings[at + 1]
        assert final.value == old.final_value
        assert after.previous_value == new.initial_value == 0
        # The month of the replacement: the old device's part plus the new one's, the same as
        # the neighbouring months give, with no rollover nor flag from the new low index.
        month = final.consumption + after.consumption
        assert month == (old.final_value - before.value) + after.value
        assert Decimal("0.5") < month / readings[at - 1].consumption < Decimal(2)
        assert not after.is_rollover and not after.anomaly_flags

    def test_a_day_always_gives_the_same_readings(self):
        day = dt.date(2026, 3, 9)
        first = demo_data.reading_plan(today=day, time_zone=PARIS)
        second = demo_data.reading_plan(today=day, time_zone=PARIS)
        assert first == second
        assert first["LYO-CW-A01"] != first["LYO-CW-A02"]


class TestUtilityBills:
    """The suppliers' monthly bills of the supplied meters, as period readings (§4.4)."""

    def test_a_bill_per_calendar_month_of_the_history_for_each_supplied_meter(self, demo):
        supplied = Meter.objects.filter(account=demo, billing_direction="ACCPAY")
        assert set(supplied.values_list("serial_number", flat=True)) == set(
            demo_data.SUPPLY_CONTRACTS
        )
        today = dt.datetime.now(PARIS).date()
        for meter in supplied:
            bills = list(meter.period_readings.order_by("start_date"))
            assert 23 <= len(bills) <= 24, meter.serial_number
            assert all(bill.start_date.day == 1 for bill in bills)
            for bill, following in itertools.pairwise(bills):
                assert following.start_date == bill.end_date + dt.timedelta(days=1)
            # The last bill is the previous month's (built before midnight: that day's).
            assert bills[-1].end_date + dt.timedelta(days=1) in {
                today.replace(day=1),
                (today - dt.timedelta(days=1)).replace(day=1),
            }
            assert bills[0].start_date >= demo_data.history_start(bills[-1].end_date)
            assert all(bill.consumption > 0 and bill.cost > 0 for bill in bills)
            assert {bill.cost_currency for bill in bills} == {"EUR"}
            assert {(bill.source, bill.created_by) for bill in bills} == {
                ("IMPORT", "system:load_demo")
            }
            with_demand = demo_data.SUPPLY_CONTRACTS[meter.serial_number].with_demand
            assert all((bill.demand_kw is not None) is with_demand for bill in bills)

    def test_costs_follow_the_supply_contract(self, demo):
        contract = demo_data.SUPPLY_CONTRACTS["LYO-GAS-01"]
        for bill in PeriodReading.objects.filter(meter__serial_number="LYO-GAS-01"):
            days = (bill.end_date - bill.start_date).days + 1
            net = bill.consumption * contract.unit_price + days * contract.standing_charge_per_day
            assert bill.cost == net.quantize(Decimal("0.01"))

    def test_winter_gas_bills_are_higher_than_summer_ones(self, demo):
        bills = PeriodReading.objects.filter(meter__serial_number="LYO-GAS-01")
        january = [b.consumption / 31 for b in bills if b.start_date.month == 1]
        july = [b.consumption / 31 for b in bills if b.start_date.month == 7]
        assert min(january) > Decimal("1.8") * max(july)

    def test_one_estimated_bill(self, demo):
        (estimated,) = PeriodReading.objects.filter(account=demo, is_estimated=True)
        assert estimated.meter.serial_number == "LYO-GAS-01"
        assert demo_data.ESTIMATED_BILL_NOTE in estimated.notes

    def test_flags_are_the_period_series(self, demo):
        settings = thresholds(demo)
        for serial in demo_data.SUPPLY_CONTRACTS:
            rows = list(
                PeriodReading.objects.filter(meter__serial_number=serial).order_by("start_date")
            )
            expected = readings_domain.derive_period_flags(
                [readings_domain.Period(r.start_date, r.end_date, r.consumption) for r in rows],
                thresholds=settings,
            )
            assert [frozenset(r.anomaly_flags) for r in rows] == expected, serial

    def test_a_day_always_gives_the_same_bills(self):
        day = dt.date(2026, 3, 9)
        assert demo_data.bill_plan(today=day) == demo_data.bill_plan(today=day)
        assert len(demo_data.bill_plan(today=dt.date(2026, 3, 1))["PAR-W-MAIN"]) == 24


class TestBilling:
    """Leases, meter shares, allocation rules and the billing periods (CONTRACT §5)."""

    def test_leases_follow_the_plan_and_never_overlap(self, demo):
        today = demo.today()
        plan = demo_data.lease_plan(today=today)
        leases = Lease.objects.filter(account=demo).select_related("estate__place", "tenant")
        assert {
            (
                lease.estate.place.code,
                lease.estate.code,
                lease.tenant.external_reference,
                lease.start_date,
                lease.end_date,
            )
            for lease in leases
        } == {(s.place, s.lot, s.tenant, s.start_date, s.end_date) for s in plan}
        by_estate = defaultdict(list)
        for lease in leases:
            by_estate[lease.estate_id].append(lease)
        for estate_leases in by_estate.values():
            estate_leases.sort(key=lambda lease: lease.start_date)
            for before, after in itertools.pairwise(estate_leases):
                assert before.end_date is not None and before.end_date < after.start_date
        # Every lot but the common areas is let, and most are let today.
        lots = Estate.objects.filter(account=demo).exclude(usage="COMMON")
        assert set(lots.values_list("pk", flat=True)) == set(by_estate)
        assert sum(lease.is_current(today) for lease in leases) >= 15

    def test_the_vacancies_of_the_readings_are_between_two_leases(self, demo):
        for vacancy in demo_data.VACANCIES:
            first = demo.today() - dt.timedelta(days=vacancy.days_before)
            last = first + dt.timedelta(days=vacancy.days - 1)
            leases = Lease.objects.filter(
                estate__place__code=vacancy.place, estate__code=vacancy.lot
            )
            assert not leases.filter(start_date__lte=last, end_date__gte=first).exists()
            assert not leases.filter(start_date__lte=last, end_date__isnull=True).exists()
            assert leases.filter(end_date=first - dt.timedelta(days=1)).exists()
            assert leases.filter(start_date=last + dt.timedelta(days=1)).exists()

    def test_shares_and_allocation_rules(self, demo):
        shares = MeterShare.objects.filter(account=demo).select_related("meter", "estate")
        assert {(s.meter.serial_number, s.estate.code, s.ratio) for s in shares} == {
            ("PAR-CW-SHOPS", "C01", 85),
            ("PAR-CW-SHOPS", "C02", 15),
        }
        collective = Meter.objects.filter(account=demo, billing_type="COLLECTIVE")
        rules = AllocationRule.objects.filter(account=demo).select_related("meter")
        assert {rule.meter for rule in rules} == set(collective)
        heating = rules.get(meter__serial_number="LYO-HEAT-MAIN")
        assert (heating.basis, heating.consumption_part_percent) == ("SURFACE", 70)

    def test_a_closed_and_a_draft_quarter_per_place_with_charges(self, demo):
        (closed_start, closed_end), (draft_start, draft_end) = demo_data.billing_quarters(
            demo.today()
        )
        assert closed_end + dt.timedelta(days=1) == draft_start
        assert draft_end < demo.today()
        for place in Place.objects.filter(account=demo):
            closed, draft = BillingPeriod.objects.filter(place=place).order_by("start_date")
            assert (closed.status, closed.start_date, closed.end_date) == (
                "CLOSED",
                closed_start,
                closed_end,
            )
            assert closed.closed_by == "system:load_demo" and closed.closed_at is not None
            assert (draft.status, draft.start_date, draft.end_date) == (
                "DRAFT",
                draft_start,
                draft_end,
            )
            for period in (closed, draft):
                assert period.computed_at is not None
                assert period.currency == "EUR"
                charges = Charge.objects.filter(billing_period=period)
                assert charges.count() >= 20, period
                total = charges.aggregate(total=Sum("total_amount"))["total"]
                assert period.total_amount == total > 0
        # Closing locked the readings the closed periods used.
        assert Register.objects.filter(meter__account=demo, locked_until__isnull=False).exists()

    def test_the_draft_is_split_at_the_lease_change(self, demo):
        draft = BillingPeriod.objects.get(account=demo, place__code=demo_data.LYON, status="DRAFT")
        heating = Charge.objects.filter(
            billing_period=draft, meter__serial_number="LYO-HEAT-MAIN"
        ).select_related("lease__tenant", "estate")
        a07 = sorted(
            (c.start_date, c.end_date, c.lease.tenant.external_reference)
            for c in heating
            if c.estate.code == "A07"
        )
        change = draft.start_date + dt.timedelta(days=40)
        assert a07 == [
            (draft.start_date, change - dt.timedelta(days=1), "T-0012"),
            (change, draft.end_date, "T-0013"),
        ]
        # A10 is given back during the quarter: the rest of it is the owner's (vacancy).
        (vacancy,) = [c for c in heating if c.estate.code == "A10" and c.is_vacancy]
        assert (vacancy.start_date, vacancy.end_date, vacancy.lease) == (
            draft.start_date + dt.timedelta(days=61),
            draft.end_date,
            None,
        )

    def test_allocation_devices_give_no_lines(self, demo):
        devices = Meter.objects.filter(
            account=demo,
            parent_meter__serial_number__in=["LYO-W-MAIN", "LYO-HW-MAIN", "LYO-HEAT-MAIN"],
        )
        assert devices.count() == 30
        assert not Charge.objects.filter(meter__in=devices).exists()
        assert Charge.objects.filter(account=demo, meter__serial_number="LYO-EV-01").exists()

    def test_the_admin_shows_the_periods_and_statements(self, demo_output, demo):
        client = Client()
        assert client.login(username="demo", password=PASSWORD)
        period = BillingPeriod.objects.filter(account=demo, status="CLOSED").first()
        page = client.get(f"/admin/billing/billingperiod/{period.pk}/change/")
        assert page.status_code == 200
        assert not page.context["has_change_permission"]
        lease = Charge.objects.filter(billing_period=period, lease__isnull=False).first().lease
        statement = client.get(f"/admin/billing/billingperiod/{period.pk}/statements/{lease.pk}/")
        assert statement.status_code == 200
        assert lease.tenant.name in statement.content.decode()
