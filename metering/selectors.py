"""Reads of the metering app, with the joins and prefetches each API list needs."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from metering import keys
from metering.models import Account, Invitation, Meter, Register


def meters(*, account: Account) -> QuerySet[Meter]:
    """The account's meters with their registers, in two queries whatever the count."""
    return Meter.objects.for_account(account).prefetch_related(
        Prefetch("registers", queryset=Register.objects.order_by("id"))
    )


def usable_invitations(*, token: str) -> QuerySet[Invitation]:
    """The invitation whose link carries ``token`` (none when used, revoked or expired), with
    its account: the link's page reads it, ``services`` locks it to accept."""
    return (
        Invitation.objects.usable(timezone.now())
        .select_related("account")
        .filter(token_hash=keys.digest(token))
    )


def logins_of_address(*, email: str) -> QuerySet[AbstractBaseUser]:
    """The logins an invited address already has: its e-mail or its username is the address.

    A login created by an invitation has the address as username, so the username counts too:
    a second login of that name could not be created.
    """
    user_model = get_user_model()
    return user_model.objects.filter(
        Q(email__iexact=email) | Q(**{f"{user_model.USERNAME_FIELD}__iexact": email})
    )
