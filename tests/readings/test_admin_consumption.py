"""The meter's admin page draws its monthly consumption as server-side SVG (CONTRACT §4.5)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from readings import domain, selectors
from readings.admin_consumption import (
    CHART_MONTHS,
    consumption_chart,
    last_months,
    value_label,
)
from tests.conftest import login
from tests.factories import MembershipFactory, UserFactory
from tests.metering.test_admin import url
from tests.readings.test_consumption import add_period, add_readings

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(account):
    user = UserFactory(is_staff=True)
    MembershipFactory(user=user, account=account, role="VIEWER")
    return login(user)


def test_meter_page_shows_24_monthly_bars_with_their_values(viewer, account, meter):
    first, today = last_months(account.today())
    second = (first + dt.timedelta(days=32)).replace(day=1)
    third = (second + dt.timedelta(days=32)).replace(day=1)
    # Readings on local midnights: the first month holds exactly 123.4 m³, the second 0.5.
    add_readings(
        meter,
        [
            (domain.local_midnight(first, account.zone), 0),
            (domain.local_midnight(second, account.zone), "123.4"),
            (domain.local_midnight(third, account.zone), "123.9"),
        ],
    )

    content = viewer.get(url("meter", "change", meter.pk)).content.decode()

    assert "Monthly consumption" in content
    svg = re.search(r"<svg class=\"consumption-chart\".*?</svg>", content, re.DOTALL).group()
    assert "<script" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")
    bars = re.findall(r"<rect class=\"bar( estimated)?\"", svg)
    assert len(bars) == CHART_MONTHS == 24
    values = re.findall(r"<text class=\"value\"[^>]*>([^<]*)</text>", svg)
    months = re.findall(r"<text class=\"month\"[^>]*>([^<]*)</text>", svg)
    assert len(values) == len(months) == 24
    assert values[:2] == ["123", "0.50"]
    # From the latest reading on, nothing is measured yet: "–", not a misleading 0.
    assert values[2:] == ["–"] * 22
    assert f"{third} – " in svg and "no reading yet" in svg
    assert months[0] == f"{first:%b %y}" and months[-1] == f"{today:%b %y}"
    assert f"{first} – {(second - dt.timedelta(days=1))}: 123.4 m3, 1 reading(s)" in svg


def test_a_meter_measured_by_its_bills(viewer, account, meter):
    _, today = last_months(account.today())
    add_period(meter, today, today, 2500)
    content = viewer.get(url("meter", "change", meter.pk)).content.decode()
    svg = re.search(r"<svg class=\"consumption-chart\".*?</svg>", content, re.DOTALL).group()
    values = re.findall(r"<text class=\"value\"[^>]*>([^<]*)</text>", svg)
    bars = re.findall(r"<rect class=\"bar( estimated)?\"", svg)
    assert values[-1] == "2,500" and bars[-1] == ""  # a period inside its month: not spread


def test_meter_page_chart_without_readings(viewer, meter):
    content = viewer.get(url("meter", "change", meter.pk)).content.decode()
    svg = re.search(r"<svg class=\"consumption-chart\".*?</svg>", content, re.DOTALL).group()
    assert len(re.findall(r"<rect class=\"bar\"", svg)) == 24
    assert re.findall(r"height=\"([^\"]+)\"><title>", svg) == ["0.0"] * 24


def test_last_months():
    assert last_months(dt.date(2024, 3, 15)) == (dt.date(2022, 4, 1), dt.date(2024, 3, 15))
    assert last_months(dt.date(2024, 12, 31), 12) == (dt.date(2024, 1, 1), dt.date(2024, 12, 31))


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("0", "0.00"),
        ("1.234", "1.23"),
        ("12.34", "12.3"),
        ("1234.5", "1,234"),
        ("123456", "123k"),
        ("2500000", "2.5M"),
        ("-12.34", "-12.3"),
    ],
)
def test_value_labels(value, label):
    assert value_label(Decimal(value)) == label


def test_negative_months_hang_below_the_axis():
    ranges = domain.buckets(dt.date(2024, 1, 1), dt.date(2024, 2, 29), "month", dt.UTC)
    totals = [
        selectors.BucketTotal(Decimal(30), False, 1),
        selectors.BucketTotal(Decimal(-10), True, 1),
    ]
    chart = consumption_chart(ranges, totals, "kWh")
    up, down = chart.bars
    assert up.y + up.height == chart.baseline == down.y
    assert up.height == pytest.approx(3 * down.height)
    assert down.is_estimated and chart.total == "20"
