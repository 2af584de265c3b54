"""Tenants, leases, portal keys, tariffs, meter shares, allocation rules, billing periods and
their charges (CONTRACT §5).

Overlaps (two leases of one estate, two tariffs of one type and slot, two closed periods of one
place) are refused by ``clean()`` with the code ``overlap`` (the admin's forms, the services) and,
on PostgreSQL, by exclusion constraints (migration 0004), which also hold under concurrent writes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from billing import domain
from metering.models import (
    METER_TYPE_CHOICES,
    Account,
    AccountScopedQuerySet,
    Estate,
    KeyBase,
    Meter,
    Place,
    TimeStampedModel,
    validate_currency,
)


def days_overlap(start_field: str, end_field: str, start: dt.date, end: dt.date | None) -> Q:
    """Rows whose days ``start_field``..``end_field`` (null end: open) share a day with
    ``start``..``end`` (None: open)."""
    condition = Q(**{f"{end_field}__isnull": True}) | Q(**{f"{end_field}__gte": start})
    if end is not None:
        condition &= Q(**{f"{start_field}__lte": end})
    return condition


def overlapping(
    queryset: models.QuerySet,
    start_field: str,
    end_field: str,
    start: dt.date,
    end: dt.date | None,
):
    """The first row of ``queryset`` whose days share a day with ``start``..``end``, or None."""
    condition = days_overlap(start_field, end_field, start, end)
    return queryset.filter(condition).order_by(start_field).first()


class Tenant(TimeStampedModel):
    """An occupant billed through leases; reaches only the portal, with portal keys."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="tenants")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, default="")
    phone = models.CharField(max_length=50, blank=True, default="")
    external_reference = models.CharField(max_length=100, blank=True, default="")

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class LeaseQuerySet(AccountScopedQuerySet):
    def during(self, start: dt.date, end: dt.date) -> LeaseQuerySet:
        """The leases with days in ``start``..``end``."""
        return self.filter(days_overlap("start_date", "end_date", start, end))

    def current(self, today: dt.date) -> LeaseQuerySet:
        """The leases running ``today`` (CONTRACT §6)."""
        return self.during(today, today)


class Lease(TimeStampedModel):
    """A tenant's occupation of an estate from ``start_date`` to ``end_date`` (null: ongoing)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="leases")
    tenant = models.ForeignKey(Tenant, on_delete=models.RESTRICT, related_name="leases")
    estate = models.ForeignKey("metering.Estate", on_delete=models.RESTRICT, related_name="leases")
    reference = models.CharField(max_length=100, blank=True, default="")
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)

    objects = LeaseQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="lease_end_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.reference or f"{self.tenant} · {self.estate}"

    def is_current(self, today: dt.date) -> bool:
        """``start_date ≤ today`` and ``end_date`` null or ``≥ today`` (CONTRACT §6)."""
        return self.start_date <= today and (self.end_date is None or self.end_date >= today)

    def clean(self) -> None:
        if self.end_date is not None and self.start_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "A lease ends on or after its start date."})
        if self.tenant_id and self.estate_id and self.tenant.account_id != self.estate.account_id:
            raise ValidationError({"tenant": "The tenant and the estate belong to other accounts."})
        if self.estate_id and self.start_date:
            others = Lease.objects.filter(estate_id=self.estate_id).exclude(pk=self.pk)
            clash = overlapping(others, "start_date", "end_date", self.start_date, self.end_date)
            if clash is not None:
                raise ValidationError(
                    {
                        "start_date": ValidationError(
                            f"The estate is already leased from {clash.start_date} to "
                            f"{clash.end_date or 'an open end'} ({clash}).",
                            code="overlap",
                        )
                    }
                )


class PortalKey(KeyBase):
    """A tenant's key: opens only ``/api/v1/portal/``."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="portal_keys")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="portal_keys")

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def clean(self) -> None:
        if self.tenant_id and self.account_id and self.tenant.account_id != self.account_id:
            raise ValidationError({"tenant": "The tenant belongs to another account."})


class Tariff(TimeStampedModel):
    """A price per unit and per day for one meter type (and optionally one register slot)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="tariffs")
    name = models.CharField(max_length=200)
    meter_type = models.CharField(max_length=20, choices=METER_TYPE_CHOICES)
    unit_price = models.DecimalField(
        max_digits=14, decimal_places=6, validators=[MinValueValidator(Decimal(0))]
    )
    tariff_slot = models.CharField(
        max_length=20, null=True, blank=True, help_text="Empty: serves any register."
    )
    standing_charge_per_day = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
    )
    vat_rate = models.DecimalField(
        max_digits=6,
        decimal_places=4,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
        help_text="A fraction: 0.20 is 20 %.",
    )
    currency = models.CharField(max_length=3, default="EUR", validators=[validate_currency])
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=models.F("valid_from")),
                name="tariff_valid_to_after_valid_from",
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0) & Q(standing_charge_per_day__gte=0),
                name="tariff_prices_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(vat_rate__gte=0, vat_rate__lte=1), name="tariff_vat_rate_fraction"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.name} ({self.meter_type}{' ' + self.tariff_slot if self.tariff_slot else ''})"
        )

    def clean(self) -> None:
        if self.valid_to is not None and self.valid_from and self.valid_to < self.valid_from:
            raise ValidationError(
                {"valid_to": "A tariff is valid to a date on or after valid_from."}
            )
        if self.tariff_slot == "":
            self.tariff_slot = None
        if self.account_id and self.meter_type and self.valid_from:
            others = Tariff.objects.filter(
                account_id=self.account_id,
                meter_type=self.meter_type,
                tariff_slot=self.tariff_slot,
            ).exclude(pk=self.pk)
            if self.tariff_slot is None:
                others = others.filter(tariff_slot__isnull=True)
            clash = overlapping(others, "valid_from", "valid_to", self.valid_from, self.valid_to)
            if clash is not None:
                raise ValidationError(
                    {
                        "valid_from": ValidationError(
                            f"Tariff {clash.name!r} of the same type and slot is valid from "
                            f"{clash.valid_from} to {clash.valid_to or 'an open end'}.",
                            code="overlap",
                        )
                    }
                )


class MeterShare(TimeStampedModel):
    """An estate's ``ratio`` of a ``SHARED`` meter: the meter's cost is split by the ratios."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="meter_shares")
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="shares")
    estate = models.ForeignKey(Estate, on_delete=models.CASCADE, related_name="meter_shares")
    ratio = models.DecimalField(
        max_digits=14, decimal_places=6, validators=[MinValueValidator(Decimal("0.000001"))]
    )

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "estate"], name="meter_share_unique_estate"),
            models.CheckConstraint(condition=Q(ratio__gt=0), name="meter_share_ratio_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.meter} · {self.estate} × {self.ratio.normalize()}"

    def clean(self) -> None:
        if self.meter_id and self.meter.billing_type != "SHARED":
            raise ValidationError({"meter": "Only a SHARED meter is shared by ratios."})
        if (
            self.meter_id
            and self.estate_id
            and self.meter.place_id
            and self.estate.place_id != self.meter.place_id
        ):
            raise ValidationError({"estate": "The estate is not in the meter's place."})


class AllocationRule(TimeStampedModel):
    """How a ``COLLECTIVE`` meter's cost is split over its place's estates.

    ``consumption_part_percent`` of it by the consumption of each estate's sub-meters of the
    meter (allocation devices, which then give no lines of their own), the rest by ``basis``.
    """

    BASES = [(basis, basis) for basis in domain.ALLOCATION_BASES]

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="allocation_rules")
    meter = models.OneToOneField(Meter, on_delete=models.CASCADE, related_name="allocation_rule")
    basis = models.CharField(max_length=8, choices=BASES, default=domain.SHARES)
    consumption_part_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text="0–100: the part split by the estates' sub-meter consumption.",
    )

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(consumption_part_percent__gte=0, consumption_part_percent__lte=100),
                name="allocation_rule_part_percent",
            )
        ]

    def __str__(self) -> str:
        part = self.consumption_part_percent.normalize()
        return f"{self.meter}: {part} % by consumption, the rest by {self.basis.lower()}"

    def clean(self) -> None:
        if self.meter_id and self.meter.billing_type != "COLLECTIVE":
            raise ValidationError({"meter": "Only a COLLECTIVE meter has an allocation rule."})
        if self.meter_id and not self.meter.place_id:
            raise ValidationError({"meter": "The meter has no place whose estates share it."})


class BillingPeriod(TimeStampedModel):
    """The days ``start_date``..``end_date`` of a place to bill; ``DRAFT`` until closed.

    ``compute`` (re)writes its charges and ``issues``; ``close`` freezes them and locks the
    readings they used. Two closed periods of one place never overlap; drafts may.
    """

    DRAFT, CLOSED = "DRAFT", "CLOSED"
    STATUSES = [(DRAFT, DRAFT), (CLOSED, CLOSED)]

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="billing_periods")
    place = models.ForeignKey(Place, on_delete=models.RESTRICT, related_name="billing_periods")
    name = models.CharField(max_length=200)
    start_date = models.DateField()
    end_date = models.DateField()
    status = models.CharField(max_length=8, choices=STATUSES, default=DRAFT, editable=False)
    issues = models.JSONField(default=list, blank=True, editable=False)
    total_amount = models.DecimalField(
        max_digits=16, decimal_places=2, null=True, blank=True, editable=False
    )
    currency = models.CharField(max_length=3, default="EUR", validators=[validate_currency])
    computed_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_by = models.CharField(max_length=150, blank=True, default="", editable=False)

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-start_date", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=models.F("start_date")),
                name="billing_period_end_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def days(self) -> int:
        return (self.end_date - self.start_date).days + 1

    @property
    def is_closed(self) -> bool:
        return self.status == self.CLOSED

    def clean(self) -> None:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "A period ends on or after its start date."})
        if self.start_date and self.end_date and self.days > MAX_PERIOD_DAYS:
            raise ValidationError({"end_date": f"A period lasts {MAX_PERIOD_DAYS} days at most."})


# A period is billed in one request: a bound on the work it asks for (two years and a day).
MAX_PERIOD_DAYS = 732


class Charge(TimeStampedModel):
    """A line of a billing period: one meter (and register) for one lease or a vacancy.

    Written by ``billing.services.compute_period`` only, read-only elsewhere. ``amount`` is net
    (standing charge included) and, with ``vat_amount``, rounded so that a meter's lines add up
    to its cost to the cent.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="charges")
    billing_period = models.ForeignKey(
        BillingPeriod, on_delete=models.CASCADE, related_name="charges"
    )
    lease = models.ForeignKey(
        Lease, on_delete=models.RESTRICT, null=True, blank=True, related_name="charges"
    )
    estate = models.ForeignKey(
        Estate, on_delete=models.RESTRICT, null=True, blank=True, related_name="charges"
    )
    is_vacancy = models.BooleanField(default=False)
    meter = models.ForeignKey(Meter, on_delete=models.RESTRICT, related_name="charges")
    register = models.ForeignKey(
        "metering.Register",
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="charges",
    )
    tariff = models.ForeignKey(
        Tariff, on_delete=models.RESTRICT, null=True, blank=True, related_name="charges"
    )
    start_date = models.DateField()
    end_date = models.DateField()
    index_start = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    index_end = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    consumption = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    unit = models.CharField(max_length=16, blank=True, default="")
    unit_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    share = models.DecimalField(max_digits=20, decimal_places=12, default=Decimal(1))
    basis = models.CharField(max_length=200, blank=True, default="")
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    vat_amount = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal(0))
    total_amount = models.DecimalField(max_digits=16, decimal_places=2)
    is_estimated = models.BooleanField(default=False)
    is_included = models.BooleanField(default=False)

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["billing_period", "lease"])]

    def __str__(self) -> str:
        who = "vacancy" if self.is_vacancy else str(self.lease)
        return f"{self.meter} · {who} · {self.start_date}..{self.end_date}"
