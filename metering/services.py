"""Every write of the metering app (HackSoft style: keyword-only, typed, own transaction).

Validation rules live on the models' ``clean()`` (shared with the admin's forms) and in
``metering.domain``; the database enforces uniqueness and checks, whose violations the API maps
to the contract's codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from metering import domain, keys
from metering.errors import Conflict, MeterHasReadings, MeterHasSubMeters
from metering.models import Account, ApiKey, KeyBase, Meter, Register
from metering.signals import series_parameters_changed

Model = TypeVar("Model", bound=models.Model)


def full_clean(instance: models.Model) -> None:
    """Field and cross-field validation of ``instance``.

    Relations are not re-fetched (the API and the admin resolved them inside the account) and
    uniqueness is left to the database, whose violation is a 409 ``conflict``.
    """
    relations = [field.name for field in instance._meta.fields if field.is_relation]
    instance.full_clean(exclude=relations, validate_unique=False, validate_constraints=False)


def _assign(instance: Model, values: dict[str, Any]) -> Model:
    for name, value in values.items():
        setattr(instance, name, value)
    return instance


@transaction.atomic
def create_object(*, model: type[Model], account: Account, values: dict[str, Any]) -> Model:
    """Create a plain account object (place, estate, service place, gateway...)."""
    instance = _assign(model(account=account), values)
    full_clean(instance)
    instance.save()
    return instance


@transaction.atomic
def update_object(*, instance: Model, values: dict[str, Any]) -> Model:
    _assign(instance, values)
    full_clean(instance)
    instance.save()
    return instance


@transaction.atomic
def delete_object(*, instance: models.Model) -> None:
    """Delete; objects still referred to (a place with meters...) raise a 409 ``conflict``."""
    instance.delete()


# --- accounts and keys ----------------------------------------------------------------------


@transaction.atomic
def create_account(
    *, name: str, slug: str, currency: str = "EUR", timezone: str = "Europe/Paris"
) -> Account:
    account = Account(name=name, slug=slug, currency=currency, timezone=timezone)
    account.full_clean()
    account.save()
    return account


THRESHOLD_FIELDS = (
    "anomaly_deviation_ratio",
    "anomaly_spike_ratio",
    "anomaly_drop_ratio",
    "anomaly_baseline_days",
    "anomaly_min_intervals",
)


@transaction.atomic
def update_account(*, account: Account, values: dict[str, Any]) -> Account:
    """Update an account; a change of anomaly thresholds re-derives the flags of its readings."""
    before = [getattr(account, name) for name in THRESHOLD_FIELDS]
    _assign(account, values)
    account.full_clean()
    account.save()
    if [getattr(account, name) for name in THRESHOLD_FIELDS] != before:
        series_parameters_changed.send(
            sender=Account, registers=Register.objects.filter(meter__account=account)
        )
    return account


@transaction.atomic
def create_api_key(
    *,
    account: Account,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    created_by: AbstractBaseUser | None = None,
) -> tuple[ApiKey, str]:
    """A new account key and its clear text, which is never stored nor shown again."""
    raw, prefix, key_hash = keys.generate(keys.ACCOUNT_KEY_PREFIX)
    api_key = ApiKey(
        account=account,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        created_by=created_by,
        prefix=prefix,
        key_hash=key_hash,
    )
    api_key.full_clean(exclude=["account", "created_by"])
    api_key.save()
    return api_key, raw


def revoke_keys(*, keys: QuerySet[KeyBase]) -> int:
    """Revoke account or portal keys at once; keys already revoked keep their date."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


# --- meters and registers -------------------------------------------------------------------


@transaction.atomic
def create_meter(*, account: Account, values: dict[str, Any]) -> Meter:
    """Create a meter with its default register (code ``default``), in the meter's unit."""
    meter = _assign(Meter(account=account), values)
    full_clean(meter)
    meter.save()
    Register.objects.create(
        meter=meter,
        code=Register.DEFAULT_CODE,
        name="Default",
        unit=meter.unit,
        is_default=True,
    )
    return meter


@transaction.atomic
def update_meter(*, meter: Meter, values: dict[str, Any]) -> Meter:
    """Update a meter; registers that were in the meter's unit follow a change of unit.

    A change of multiplier or max_value re-derives the meter's consumption series.
    """
    old_unit = meter.unit
    old_factors = (meter.multiplier, meter.max_value)
    if "meter_type" in values and "unit" not in values:
        # A new type keeps the unit when it still fits, else takes the type's default.
        new_type = values["meter_type"]
        if new_type in domain.METER_TYPES and not domain.unit_fits(new_type, meter.unit):
            values = {**values, "unit": domain.default_unit(new_type)}
    _assign(meter, values)
    full_clean(meter)
    meter.save()
    if meter.unit != old_unit:
        meter.registers.filter(unit=old_unit).update(unit=meter.unit)
    if (meter.multiplier, meter.max_value) != old_factors:
        series_parameters_changed.send(sender=Meter, registers=meter.registers.all())
    return meter


@transaction.atomic
def delete_meter(*, meter: Meter) -> None:
    """Delete a meter that has neither sub-meters nor readings, with its registers."""
    if meter.sub_meters.exists():
        raise MeterHasSubMeters()
    if meter.has_readings():
        raise MeterHasReadings()
    meter.delete()


@transaction.atomic
def create_register(*, meter: Meter, values: dict[str, Any]) -> Register:
    register = _assign(Register(meter=meter), values)
    full_clean(register)
    if register.is_default:
        meter.registers.filter(is_default=True).update(is_default=False)
    register.save()
    return register


@transaction.atomic
def update_register(*, register: Register, values: dict[str, Any]) -> Register:
    """Update a register; making it the default takes the role from the previous default.

    A change of transformer ratio re-derives the register's consumption series.
    """
    was_default = register.is_default
    old_ratio = register.transformer_ratio
    _assign(register, values)
    if was_default and not register.is_default:
        raise ValidationError(
            {"is_default": "A meter always has a default register: make another one the default."}
        )
    full_clean(register)
    if register.is_default and not was_default:
        register.meter.registers.filter(is_default=True).update(is_default=False)
    register.save()
    if register.is_default != was_default:
        Meter.objects.filter(pk=register.meter_id).refresh_last_readings()
    if register.transformer_ratio != old_ratio:
        series_parameters_changed.send(
            sender=Register, registers=Register.objects.filter(pk=register.pk)
        )
    return register


@transaction.atomic
def delete_register(*, register: Register) -> None:
    if register.is_default:
        raise Conflict("The default register cannot be deleted: make another one the default.")
    if register.readings.exists():
        raise Conflict("This register has readings and cannot be deleted.")
    register.delete()
