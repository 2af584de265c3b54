"""Reads of the billing app: the meters of leases, statements, the portal's readings
(set-based, fixed query counts)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Concat

from billing.models import BillingPeriod, Charge, Lease, MeterShare, PortalKey, Tenant
from metering.models import Estate, Meter
from readings.models import Reading

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


# --- the tenant portal (CONTRACT §6) ----------------------------------------------------------


def is_shared_with_others(meter: Meter) -> bool:
    """A meter a lease sees though it serves other estates too (``SHARED``, ``COLLECTIVE``),
    unlike its estate's own meters (``ESTATE_BILLING_TYPES``)."""
    return meter.billing_type not in ESTATE_BILLING_TYPES


def tenant_actors(*, tenant: Tenant) -> QuerySet[PortalKey]:
    """The ``created_by`` of the readings sent with the tenant's portal keys (revoked or
    expired ones included: what they sent is still the tenant's), as a subquery."""
    return (
        PortalKey.objects.filter(tenant=tenant)
        .annotate(actor=Concat(Value("key:"), "prefix", output_field=CharField()))
        .values("actor")
    )


def portal_readings(
    *, readings: QuerySet[Reading], tenant: Tenant, meter: Meter, since: dt.datetime
) -> QuerySet[Reading]:
    """``readings`` of ``meter`` (already narrowed to the tenant's lease, from ``since`` on),
    each annotated in the same query with what the tenant may see of it:

    - ``shows_reader``: who took it (photo, notes, reader, credential, lease). On a meter
      shared with others only for the readings sent with one of the tenant's own portal keys;
      on its estate's own meter for every reading of its lease.
    - ``counts_from_lease``: an earlier reading of the register is dated within the lease, so
      ``previous_value`` and ``consumption`` are the tenant's; false for the first reading of
      the lease, which counts from a reading made before it.
    - ``visible_notes``, ``visible_reader_name``, ``visible_consumption``: those fields as the
      tenant sees them, for searching and ordering (a search on another's notes, or an
      ordering by a hidden consumption, would tell what they hold).
    """
    if is_shared_with_others(meter):
        own = Q(source="PORTAL", created_by__in=tenant_actors(tenant=tenant))
        shows_reader = ExpressionWrapper(own, output_field=BooleanField())
    else:
        shows_reader = Value(True, output_field=BooleanField())
    earlier_in_lease = Reading.objects.filter(
        register_id=OuterRef("register_id"),
        reading_date__gte=since,
        reading_date__lt=OuterRef("reading_date"),
    )
    return readings.annotate(
        shows_reader=shows_reader, counts_from_lease=Exists(earlier_in_lease)
    ).annotate(
        visible_notes=Case(
            When(shows_reader=True, then=F("notes")), default=Value(""), output_field=TextField()
        ),
        visible_reader_name=Case(
            When(shows_reader=True, then=F("reader_name")),
            default=Value(""),
            output_field=CharField(),
        ),
        visible_consumption=Case(
            When(counts_from_lease=True, then=F("consumption")),
            default=None,
            output_field=DecimalField(max_digits=38, decimal_places=18),
        ),
    )
