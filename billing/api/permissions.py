"""Who may use the tenant portal (CONTRACT §6): a tenant's portal key, and nothing else."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from billing.models import PortalKey


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
