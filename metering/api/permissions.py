"""Who may do what, on every account route, in one place (CONTRACT §1).

``AccountScopePermission`` is the default permission of the API. It resolves the request's
account (from the key, or from the member's session and ``account_id``), checks that an
``account_id`` sent by the client names that account, and that the credential holds the scope
the view needs (``<view.scope>:read`` for safe methods, ``:write`` otherwise). Views then read
``request.account``; querysets are scoped by ``AccountScopedViewSet``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from metering import domain
from metering.errors import InsufficientScope
from metering.models import Account, ApiKey, KeyBase


@dataclass(frozen=True)
class AccountContext:
    account: Account
    scopes: frozenset[str]


def _sent_account_ids(request) -> list[str]:
    """``account_id`` values the client sent, in the query string and in a JSON object body."""
    sent = request.query_params.getlist("account_id")
    if request.method not in SAFE_METHODS and request.method != "DELETE":
        data = request.data
        if isinstance(data, dict) and "account_id" in data:
            sent.append(data["account_id"])
    return sent


def _parse_account_ids(values: list) -> set[uuid.UUID]:
    parsed = set()
    for value in values:
        try:
            parsed.add(uuid.UUID(str(value)))
        except ValueError:
            raise exceptions.ValidationError({"account_id": ["Must be a valid UUID."]}) from None
    return parsed


def resolve_account_context(request) -> AccountContext:
    """The account a request acts on and the scopes it holds; raises the contract's errors."""
    auth = request.auth
    requested = _parse_account_ids(_sent_account_ids(request))
    if len(requested) > 1:
        raise exceptions.ValidationError({"account_id": ["Send one account_id."]})

    if isinstance(auth, ApiKey):
        context = AccountContext(auth.account, auth.granted_scopes)
    elif isinstance(auth, KeyBase):
        raise exceptions.PermissionDenied("Portal keys open only /api/v1/portal/.")
    else:
        memberships = list(request.user.memberships.select_related("account"))
        if requested:
            memberships = [m for m in memberships if m.account_id in requested]
            if not memberships:
                raise exceptions.PermissionDenied("You are not a member of this account.")
        elif not memberships:
            raise exceptions.PermissionDenied("You are not a member of any account.")
        elif len(memberships) > 1:
            raise exceptions.ValidationError(
                {"account_id": ["You belong to several accounts: say which with account_id."]}
            )
        membership = memberships[0]
        context = AccountContext(
            membership.account, domain.ROLE_SCOPES[domain.Role(membership.role)]
        )

    if requested and context.account.pk not in requested:
        raise exceptions.PermissionDenied("account_id names another account than your key's.")
    return context


class AccountScopePermission(BasePermission):
    """Default permission: an account credential with the view's scope."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        context = resolve_account_context(request)
        request.account = context.account
        request.scopes = context.scopes
        required = required_scope(view, request)
        if required and required not in context.scopes:
            raise InsufficientScope(f"This request needs the scope {required}.")
        return True


def required_scope(view, request) -> str | None:
    area = getattr(view, "scope", None)
    if area is None:
        return None
    access = "read" if request.method in SAFE_METHODS else "write"
    return f"{area}:{access}"
