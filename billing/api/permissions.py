"""Who may use the tenant portal (CONTRACT §6): a tenant's portal key, and nothing else; and
where a tenant may write readings: the ``INDIVIDUAL`` meters of its own estate."""

from __future__ import annotations

from collections.abc import Collection

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from billing.models import PortalKey
from metering.models import Meter


class PortalPermission(BasePermission):
    """A portal key: the request then acts for its tenant (``request.tenant``) in its account
    (``request.account``). No credential: 401 ``not_authenticated``; an account key or a
    member's session: 403 ``permission_denied``."""

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, PortalKey):
            request.account = request.auth.account
            request.tenant = request.auth.tenant
            return True
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401: no credentials were sent
        raise exceptions.PermissionDenied("Only a tenant's portal key opens /api/v1/portal/.")


def may_write_readings(*, meter: Meter, estate_ids: Collection[int]) -> bool:
    """CONTRACT §6: a tenant writes readings only on the ``INDIVIDUAL`` meters of the estates
    of its current leases. A ``COLLECTIVE``, ``SHARED`` or ``INCLUDED`` meter's readings are the
    manager's: they change what other tenants pay."""
    return meter.billing_type == "INDIVIDUAL" and meter.estate_id in estate_ids


class PortalReadingWritePermission(PortalPermission):
    """A portal key, and for a write (POST, with or without a photo) a meter the tenant may
    write readings on (``may_write_readings``), else 403 ``permission_denied``. Checked before
    the body is read: whatever it holds, nothing is parsed, stored nor hinted at. A meter the
    tenant does not see stays a 404 (``view.meter()``)."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in SAFE_METHODS:
            return True
        meter = view.meter()
        estate_ids = {lease.estate_id for lease in view.current_leases()}
        if not may_write_readings(meter=meter, estate_ids=estate_ids):
            raise exceptions.PermissionDenied(
                f"This meter is {meter.billing_type}: its readings are the manager's. The "
                "portal takes readings for the INDIVIDUAL meters of your estate only."
            )
        return True
