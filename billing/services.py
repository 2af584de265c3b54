"""Every write of the billing app (keyword-only, typed, own transaction)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing.models import PortalKey, Tenant
from metering import keys


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
