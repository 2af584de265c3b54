"""Every write of the billing app (keyword-only, typed, own transaction).

Tenants, leases, meter shares, tariffs and allocation rules are validated by their models'
``clean()`` (shared with the admin's forms); an overlap there (two leases of one estate, two
tariffs of one type and slot) is a 409 ``overlap`` here, as the exclusion constraints answer.
Billing periods are written here only: ``compute_period`` and ``close_period`` in
``billing.charges``, re-exported below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models, transaction

from billing.models import BillingPeriod, PortalKey, Tenant
from metering import keys
from metering import services as metering_services
from metering.errors import Conflict, Overlap
from metering.models import Account

Model = TypeVar("Model", bound=models.Model)


@transaction.atomic
def create_portal_key(
    *, tenant: Tenant, name: str, expires_at: datetime | None = None
) -> tuple[PortalKey, str]:
    """A new portal key for ``tenant`` and its clear text, which is never stored nor shown again."""
    raw, prefix, key_hash = keys.generate(keys.PORTAL_KEY_PREFIX)
    portal_key = PortalKey(
        account_id=tenant.account_id,
        tenant=tenant,
        name=name,
        expires_at=expires_at,
        prefix=prefix,
        key_hash=key_hash,
    )
    portal_key.full_clean(exclude=["account", "tenant"])
    portal_key.save()
    return portal_key, raw


def _overlap_message(exc: ValidationError) -> str | None:
    """The message of an ``overlap``-coded error in ``exc``, or None."""
    errors = exc.error_dict.values() if hasattr(exc, "error_dict") else [exc.error_list]
    for field_errors in errors:
        for error in field_errors:
            if error.code == "overlap":
                return " ".join(error.messages)
    return None


def _checked(instance: Model) -> Model:
    try:
        metering_services.full_clean(instance)
    except ValidationError as exc:
        message = _overlap_message(exc)
        if message is not None:
            raise Overlap(message) from None
        raise
    instance.save()
    return instance


@transaction.atomic
def create_object(*, model: type[Model], account: Account, values: dict[str, Any]) -> Model:
    """Create a tenant, lease, meter share, tariff or allocation rule of ``account``."""
    instance = model(account=account)
    for name, value in values.items():
        setattr(instance, name, value)
    return _checked(instance)


@transaction.atomic
def update_object(*, instance: Model, values: dict[str, Any]) -> Model:
    for name, value in values.items():
        setattr(instance, name, value)
    return _checked(instance)


# --- billing periods --------------------------------------------------------------------------


def _refuse_closed(period: BillingPeriod) -> None:
    if period.is_closed:
        raise Conflict("This billing period is closed: its charges are frozen.")


@transaction.atomic
def create_period(*, account: Account, values: dict[str, Any]) -> BillingPeriod:
    """A new ``DRAFT`` period in the account's currency; ``compute_period`` writes its charges."""
    period = BillingPeriod(account=account, currency=account.currency)
    for name, value in values.items():
        setattr(period, name, value)
    metering_services.full_clean(period)
    period.save()
    return period


@transaction.atomic
def update_period(*, period: BillingPeriod, values: dict[str, Any]) -> BillingPeriod:
    """Change a draft; its charges, computed for the old values, are dropped (compute again)."""
    period = BillingPeriod.objects.select_for_update().get(pk=period.pk)
    _refuse_closed(period)
    for name, value in values.items():
        setattr(period, name, value)
    metering_services.full_clean(period)
    period.charges.all().delete()
    period.issues, period.total_amount, period.computed_at = [], None, None
    period.save()
    return period


@transaction.atomic
def delete_period(*, period: BillingPeriod) -> None:
    """Delete a draft with its charges; a closed period is kept (409 ``conflict``)."""
    period = BillingPeriod.objects.select_for_update().get(pk=period.pk)
    _refuse_closed(period)
    period.delete()


from billing.charges import close_period, compute_period  # noqa: E402  (re-exported)

__all__ = [
    "close_period",
    "compute_period",
    "create_object",
    "create_period",
    "create_portal_key",
    "delete_period",
    "update_object",
    "update_period",
]
