"""Tenants, portal keys and tariffs.

Leases, shares, allocation rules, billing periods and charges are built on these (CONTRACT §5).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from metering.models import (
    METER_TYPE_CHOICES,
    Account,
    AccountScopedQuerySet,
    KeyBase,
    TimeStampedModel,
    validate_currency,
)


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


class Lease(TimeStampedModel):
    """A tenant's occupation of an estate from ``start_date`` to ``end_date`` (null: ongoing)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="leases")
    tenant = models.ForeignKey(Tenant, on_delete=models.RESTRICT, related_name="leases")
    estate = models.ForeignKey("metering.Estate", on_delete=models.RESTRICT, related_name="leases")
    reference = models.CharField(max_length=100, blank=True, default="")
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)

    objects = AccountScopedQuerySet.as_manager()

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
