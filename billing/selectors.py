"""Reads of the billing app: the meters of leases, statements (set-based, fixed query counts)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q, QuerySet

from billing.models import BillingPeriod, Charge, Lease, MeterShare
from metering.models import Estate, Meter

# The billing types a lease is billed for through its estate (CONTRACT §5: a lease's meters).
ESTATE_BILLING_TYPES = ("INDIVIDUAL", "INCLUDED")


def lease_meters(*, leases: Sequence[Lease]) -> dict[int, list[Meter]]:
    """The meters each lease is billed for, in id order: its estate's ``INDIVIDUAL`` (and
    ``INCLUDED``) meters, the ``SHARED`` meters with a share for its estate, the
    ``COLLECTIVE`` meters of its estate's place. Two queries whatever the number of leases."""
    if not leases:
        return {}
    estate_ids = {lease.estate_id for lease in leases}
    places = dict(Estate.objects.filter(pk__in=estate_ids).values_list("pk", "place_id"))
    shared = MeterShare.objects.filter(estate_id__in=estate_ids).values("meter_id")
    meters = list(
        Meter.objects.filter(
            Q(estate_id__in=estate_ids, billing_type__in=ESTATE_BILLING_TYPES)
            | Q(billing_type="SHARED", pk__in=shared)
            | Q(billing_type="COLLECTIVE", place_id__in=set(places.values()))
        )
        .prefetch_related("shares")
        .order_by("pk")
    )
    by_estate: dict[int, list[Meter]] = defaultdict(list)
    for estate_id, place_id in places.items():
        for meter in meters:
            if (
                (meter.billing_type in ESTATE_BILLING_TYPES and meter.estate_id == estate_id)
                or (meter.billing_type == "COLLECTIVE" and meter.place_id == place_id)
                or (
                    meter.billing_type == "SHARED"
                    and any(share.estate_id == estate_id for share in meter.shares.all())
                )
            ):
                by_estate[estate_id].append(meter)
    return {lease.pk: by_estate.get(lease.estate_id, []) for lease in leases}


def period_leases(*, period: BillingPeriod) -> QuerySet[Lease]:
    """The leases a period has statements for: those of its place's estates with days in the
    period, and any other with lines in it (tenant and estate loaded)."""
    has_lines = Exists(Charge.objects.filter(billing_period=period, lease=OuterRef("pk")))
    in_place = Lease.objects.filter(estate__place_id=period.place_id).during(
        period.start_date, period.end_date
    )
    return Lease.objects.filter(Q(pk__in=in_place.values("pk")) | Q(has_lines)).select_related(
        "tenant", "estate"
    )


@dataclass(frozen=True)
class Statement:
    """What a lease owes for a billing period: its charge lines and their totals."""

    billing_period: BillingPeriod
    lease: Lease
    charges: list[Charge]
    amount: Decimal
    vat_amount: Decimal
    total_amount: Decimal

    @property
    def currency(self) -> str:
        return self.billing_period.currency


def statement(*, period: BillingPeriod, lease: Lease) -> Statement:
    """The lines of ``lease`` in ``period`` (meter and register loaded), in meter, register and
    date order, with their sums. A lease without lines gets an empty statement."""
    charges = list(
        Charge.objects.filter(billing_period=period, lease=lease)
        .select_related("meter", "register", "tariff")
        .order_by("meter__serial_number", "register__code", "start_date", "pk")
    )
    return Statement(
        billing_period=period,
        lease=lease,
        charges=charges,
        amount=sum((charge.amount for charge in charges), Decimal("0.00")),
        vat_amount=sum((charge.vat_amount for charge in charges), Decimal("0.00")),
        total_amount=sum((charge.total_amount for charge in charges), Decimal("0.00")),
    )
