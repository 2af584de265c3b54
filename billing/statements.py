"""A lease's statement for a billing period, as JSON data, CSV and a printable HTML page.

Pure rendering of a ``billing.selectors.Statement``: no query of their own beyond the relations
of the statement's objects (``billing_period.account``, ``billing_period.place``,
``lease.tenant``, ``lease.estate``; load them with ``select_related`` to avoid one query each).
The API (``GET /api/v1/billing-periods/{id}/statements/{lease_id}/``) and the admin serve the
same three renderings.
"""

from __future__ import annotations

import csv
import decimal
import io
from decimal import Decimal
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from billing.models import Charge
from billing.selectors import Statement
from metering.csv_files import spreadsheet_safe

TEMPLATE = "billing/statement.html"
# The printed page rounds indexes and consumptions (exact in JSON and CSV).
DISPLAY_PLACES = 3
_WIDE = decimal.Context(prec=80)  # stored values have up to 38 digits: never round them

CSV_COLUMNS = (
    "meter_serial_number",
    "meter_name",
    "register_code",
    "start_date",
    "end_date",
    "index_start",
    "index_end",
    "consumption",
    "unit",
    "unit_price",
    "share",
    "basis",
    "amount",
    "vat_amount",
    "total_amount",
    "currency",
    "is_vacancy",
    "is_estimated",
    "is_included",
)
_MONEY_COLUMNS = ("amount", "vat_amount", "total_amount")


def _line(charge: Charge) -> dict[str, Any]:
    meter, register, tariff = charge.meter, charge.register, charge.tariff
    return {
        "id": charge.pk,
        "meter_id": charge.meter_id,
        "meter_serial_number": meter.serial_number,
        "meter_name": meter.name,
        "meter_type": meter.meter_type,
        "register_id": charge.register_id,
        "register_code": register.code if register is not None else None,
        "tariff_id": charge.tariff_id,
        "tariff_name": tariff.name if tariff is not None else None,
        "start_date": charge.start_date,
        "end_date": charge.end_date,
        "index_start": charge.index_start,
        "index_end": charge.index_end,
        "consumption": charge.consumption,
        "unit": charge.unit,
        "unit_price": charge.unit_price,
        "share": charge.share,
        "basis": charge.basis,
        "amount": charge.amount,
        "vat_amount": charge.vat_amount,
        "total_amount": charge.total_amount,
        "is_vacancy": charge.is_vacancy,
        "is_estimated": charge.is_estimated,
        "is_included": charge.is_included,
    }


def statement_data(statement: Statement) -> dict[str, Any]:
    """The statement as the API's JSON body (``billing.api.serializers.StatementSerializer``).

    Values are Python values (``Decimal``, ``date``): DRF's JSON encoder writes decimals as
    numbers and dates as ``YYYY-MM-DD``.
    """
    period, lease = statement.billing_period, statement.lease
    place, account = period.place, period.account
    tenant, estate = lease.tenant, lease.estate
    return {
        "account": {"id": account.pk, "name": account.name},
        "place": {
            "id": place.pk,
            "code": place.code,
            "name": place.name,
            "address_line1": place.address_line1,
            "address_line2": place.address_line2,
            "postal_code": place.postal_code,
            "city": place.city,
            "country": place.country,
        },
        "billing_period": {
            "id": period.pk,
            "name": period.name,
            "start_date": period.start_date,
            "end_date": period.end_date,
            "days": period.days,
            "status": period.status,
        },
        "lease": {
            "id": lease.pk,
            "reference": lease.reference,
            "start_date": lease.start_date,
            "end_date": lease.end_date,
            "tenant": {
                "id": tenant.pk,
                "name": tenant.name,
                "email": tenant.email,
                "external_reference": tenant.external_reference,
            },
            "estate": {"id": estate.pk, "code": estate.code, "name": estate.name},
        },
        "currency": statement.currency,
        "lines": [_line(charge) for charge in statement.charges],
        "amount": statement.amount,
        "vat_amount": statement.vat_amount,
        "total_amount": statement.total_amount,
    }


def filename(statement: Statement, extension: str) -> str:
    """``statement-<period>-<lease reference>.<extension>``, safe in a header."""
    lease = statement.lease
    period = slugify(statement.billing_period.name) or f"period-{statement.billing_period.pk}"
    reference = slugify(lease.reference) or f"lease-{lease.pk}"
    return f"statement-{period}-{reference}.{extension}"


def plain(value: Decimal | None, min_places: int = 0) -> str:
    """A decimal without exponent nor trailing zeros (at least ``min_places`` decimals)."""
    if value is None:
        return ""
    with decimal.localcontext(_WIDE):
        value = value.normalize()
        if -value.as_tuple().exponent < min_places:  # type: ignore[operator]
            value = value.quantize(Decimal(1).scaleb(-min_places))
        return format(value, "f")


def rounded(value: Decimal | None) -> str:
    """A quantity for reading (index, consumption): to ``DISPLAY_PLACES`` decimals at most."""
    if value is None:
        return ""
    return plain(value.quantize(Decimal(1).scaleb(-DISPLAY_PLACES), context=_WIDE))


def percent(share: Decimal) -> str:
    """A share of 1/3 as ``33.33 %``."""
    return f"{plain((share * 100).quantize(Decimal('0.01')))} %"


def _csv_cell(column: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return plain(value, 2 if column in _MONEY_COLUMNS else 0)
    # Any text, whoever wrote it: a formula gets its quote (CSV injection, CONTRACT §7).
    return spreadsheet_safe("" if value is None else str(value))


def render_csv(statement: Statement) -> str:
    """One row per line with ``CSV_COLUMNS``, then a ``TOTAL`` row with the sums.

    Comma-separated, decimal point, dates ``YYYY-MM-DD``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for charge in statement.charges:
        line = {**_line(charge), "currency": statement.currency}
        writer.writerow([_csv_cell(column, line[column]) for column in CSV_COLUMNS])
    totals = {
        "meter_serial_number": "TOTAL",
        "amount": statement.amount,
        "vat_amount": statement.vat_amount,
        "total_amount": statement.total_amount,
        "currency": statement.currency,
    }
    writer.writerow([_csv_cell(column, totals.get(column)) for column in CSV_COLUMNS])
    return buffer.getvalue()


def _display_line(charge: Charge) -> dict[str, Any]:
    line = _line(charge)
    markers = [
        name
        for name, flag in (
            ("vacancy", charge.is_vacancy),
            ("included", charge.is_included),
            ("estimated", charge.is_estimated),
        )
        if flag
    ]
    return {
        **line,
        "index_start": rounded(charge.index_start),
        "index_end": rounded(charge.index_end),
        "consumption": rounded(charge.consumption),
        "unit_price": plain(charge.unit_price, 2),
        "share": percent(charge.share),
        "amount": plain(charge.amount, 2),
        "vat_amount": plain(charge.vat_amount, 2),
        "total_amount": plain(charge.total_amount, 2),
        "markers": markers,
    }


def render_html(statement: Statement, *, request=None) -> str:
    """The printable page (A4, no external asset) of ``templates/billing/statement.html``."""
    period, lease = statement.billing_period, statement.lease
    context = {
        "statement": statement,
        "account": period.account,
        "place": period.place,
        "period": period,
        "lease": lease,
        "tenant": lease.tenant,
        "estate": lease.estate,
        "currency": statement.currency,
        "lines": [_display_line(charge) for charge in statement.charges],
        "amount": plain(statement.amount, 2),
        "vat_amount": plain(statement.vat_amount, 2),
        "total_amount": plain(statement.total_amount, 2),
        "generated_at": timezone.localtime(timezone.now(), period.account.zone),
    }
    return render_to_string(TEMPLATE, context, request=request)
