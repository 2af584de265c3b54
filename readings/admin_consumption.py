"""The meter's admin page: a chart of its monthly consumption, drawn by the server as SVG.

The last 24 months (the current one up to today), from the same selector as the API's
``/meters/{id}/consumption/`` (CONTRACT §4.5): no JavaScript, no external resource. Plugged into
``MeterAdmin.page_sections`` by ``readings.admin``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.contrib import admin
from django.http import HttpRequest
from django.template.loader import render_to_string

from metering.models import Meter
from readings import domain, selectors
from readings.models import Reading

CHART_MONTHS = 24

# The drawing's geometry, in SVG user units (the chart scales to the page's width).
WIDTH = 960
HEIGHT = 300
TOP = 28  # room for the value labels above the tallest bar
BOTTOM = 36  # room for the month labels
LEFT = 8
RIGHT = 8
GAP = 6


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label_x: float
    value_y: float
    value_label: str
    month_label: str
    title: str
    is_estimated: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float
    bars: list[Bar]
    unit: str
    total: str
    first: dt.date
    last: dt.date


def last_months(today: dt.date, months: int = CHART_MONTHS) -> tuple[dt.date, dt.date]:
    """The first day of the month ``months − 1`` months before ``today``'s, and ``today``."""
    index = today.year * 12 + today.month - 1 - (months - 1)
    return dt.date(index // 12, index % 12 + 1, 1), today


def value_label(value: Decimal) -> str:
    """A bar's value as a person reads it at a glance: 3 to 4 significant figures."""
    size = abs(value)
    if size >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if size >= 100_000:
        return f"{value / 1_000:.0f}k"
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def exact_label(value: Decimal) -> str:
    """The value in full, without trailing zeros (for the bar's tooltip)."""
    text = format(value.normalize(), "f")
    return text if text not in ("-0", "") else "0"


def consumption_chart(
    ranges: list[domain.Bucket],
    totals: list[selectors.BucketTotal],
    unit: str,
    measured_until: dt.datetime | None = None,
) -> Chart:
    """Bars for ``totals``, scaled to the largest value; negative values hang below the axis.

    A month that starts at or after ``measured_until`` (the latest reading) has no interval
    yet: it is labelled "–" rather than 0, which would read as no consumption.
    """
    values = [total.consumption for total in totals]
    highest = max([Decimal(0), *values])
    lowest = min([Decimal(0), *values])
    span = (highest - lowest) or Decimal(1)
    plot = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot * float(highest / span)
    slot = (WIDTH - LEFT - RIGHT) / max(len(totals), 1)
    bars = []
    for index, (bucket, total) in enumerate(zip(ranges, totals, strict=True)):
        height = plot * float(abs(total.consumption) / span)
        x = LEFT + index * slot + GAP / 2
        y = baseline - height if total.consumption >= 0 else baseline
        estimated = " (estimated)" if total.is_estimated else ""
        bars.append(
            Bar(
                x=round(x, 2),
                y=round(y, 2),
                width=round(slot - GAP, 2),
                height=round(height, 2),
                label_x=round(x + (slot - GAP) / 2, 2),
                value_y=round((y if total.consumption >= 0 else y + height + 12) - 4, 2),
                value_label=(
                    "–"
                    if unmeasured(bucket, total, measured_until)
                    else value_label(total.consumption)
                ),
                month_label=f"{bucket.period_start:%b %y}",
                title=(
                    f"{bucket.period_start} – {bucket.period_end}: no reading yet"
                    if unmeasured(bucket, total, measured_until)
                    else f"{bucket.period_start} – {bucket.period_end}:"
                    f" {exact_label(total.consumption)} {unit}{estimated},"
                    f" {total.readings_count} reading(s)"
                ),
                is_estimated=total.is_estimated,
            )
        )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        baseline=round(baseline, 2),
        bars=bars,
        unit=unit,
        total=exact_label(domain.exact_sum(values)),
        first=ranges[0].period_start,
        last=ranges[-1].period_end,
    )


def unmeasured(
    bucket: domain.Bucket, total: selectors.BucketTotal, measured_until: dt.datetime | None
) -> bool:
    """Whether nothing in ``bucket`` is measured yet: it starts at or after the latest reading."""
    return (
        measured_until is not None
        and bucket.start >= measured_until
        and total.consumption == 0
        and not total.is_estimated
    )


def meter_consumption_section(request: HttpRequest, meter: Meter) -> str | None:
    """The meter's monthly consumption over 24 months; None when the user may not see
    readings. Three queries: the default register, its latest reading and the aggregation."""
    probe = Reading(account_id=meter.account_id, meter=meter)
    if not admin.site.get_model_admin(Reading).has_view_permission(request, probe):
        return None
    register = meter.registers.filter(is_default=True).first()
    if register is None:
        return None
    account = meter.account
    first, last = last_months(account.today())
    ranges = domain.buckets(first, last, "month", account.zone)
    totals = selectors.meter_consumption(meter=meter, register=register, ranges=ranges)
    latest = register.readings.order_by("-reading_date").values_list("reading_date", flat=True)
    chart = consumption_chart(
        ranges, totals, selectors.unit_of(register, meter), measured_until=latest.first()
    )
    return render_to_string(
        "admin/readings/meter_consumption.html", {"chart": chart, "meter": meter}, request=request
    )
