"""Every write of the metering app (HackSoft style: keyword-only, typed, own transaction).

Validation rules live on the models' ``clean()`` (shared with the admin's forms) and in
``metering.domain``; the database enforces uniqueness and checks, whose violations the API maps
to the contract's codes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, models, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from metering import domain, keys, selectors
from metering.errors import (
    Conflict,
    InvitationForAnotherLogin,
    InvitationNotUsable,
    MeterHasReadings,
    MeterHasSubMeters,
)
from metering.models import Account, ApiKey, Invitation, KeyBase, Membership, Meter, Register
from metering.signals import series_parameters_changed

Model = TypeVar("Model", bound=models.Model)


def full_clean(instance: models.Model) -> None:
    """Field and cross-field validation of ``instance``.

    Relations are not re-fetched (the API and the admin resolved them inside the account) and
    uniqueness is left to the database, whose violation is a 409 ``conflict``.
    """
    relations = [field.name for field in instance._meta.fields if field.is_relation]
    instance.full_clean(exclude=relations, validate_unique=False, validate_constraints=False)
    # Dates within the product's calendar, whatever path wrote them (API, admin, import).
    errors = {
        field.name: [domain.DATE_RANGE_MESSAGE]
        for field in instance._meta.fields
        if isinstance(field, models.DateField)  # DateTimeField too
        and (value := getattr(instance, field.attname)) is not None
        and not domain.value_in_range(value)
    }
    if errors:
        raise ValidationError(errors)


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


# --- members and invitations ----------------------------------------------------------------

INVITATION_LIFETIME = timedelta(days=7)


@transaction.atomic
def invite_member(
    *, account: Account, email: str, role: str, invited_by: AbstractBaseUser | None = None
) -> Invitation:
    """Invite the address ``email`` to join ``account`` as ``role`` (CONTRACT §1).

    The address gets a mail with a one-time link, valid ``INVITATION_LIFETIME``, whose token
    is stored as its SHA-256 digest only. The work and the answer are the same whoever the
    address belongs to: no login is looked up here; the link's page decides (set a password,
    or sign in and accept). An open invitation of the same address in the account is revoked:
    the new link replaces it.
    """
    now = timezone.now()
    raw, _, token_hash = keys.generate(keys.INVITATION_KEY_PREFIX)
    invitation = Invitation(
        account=account,
        email=email.strip().lower(),
        role=role,
        invited_by=invited_by,
        token_hash=token_hash,
        expires_at=now + INVITATION_LIFETIME,
    )
    full_clean(invitation)
    # One invitation of the account at a time: two of one address never race to be its open
    # one (the database's constraint would refuse the second with an error page).
    list(Account.objects.select_for_update().filter(pk=account.pk).values_list("pk"))
    Invitation.objects.for_account(account).open().filter(email__iexact=invitation.email).update(
        revoked_at=now
    )
    invitation.save()
    mail = invitation_mail(invitation=invitation, token=raw)
    # Mail belongs in jobs (CONTRACT §9), which come with Celery in a later issue. Until then it
    # is sent from the request, once its transaction has committed (never for an invitation
    # rolled back); robust: an SMTP failure is logged, not turned into an error page (inviting
    # the address again sends a new link).
    transaction.on_commit(mail.send, robust=True)
    return invitation


def invitation_mail(*, invitation: Invitation, token: str) -> EmailMessage:
    """The invitation's mail, in the active language; its link starts with ``SITE_URL``."""
    context = {
        "account": invitation.account,
        "role": invitation.role,
        "expires_at": invitation.expires_at,
        "link": settings.SITE_URL + reverse("invitation", args=[token]),
    }
    subject = render_to_string("members/invitation_subject.txt", context)
    body = render_to_string("members/invitation_mail.txt", context)
    return EmailMessage(" ".join(subject.split()), body, to=[invitation.email])


def revoke_invitations(*, invitations: QuerySet[Invitation]) -> int:
    """Revoke open invitations at once: their links stop working."""
    return invitations.open().update(revoked_at=timezone.now())


def _usable_invitation_locked(token: str) -> Invitation:
    invitation = selectors.usable_invitations(token=token).select_for_update(of=("self",)).first()
    if invitation is None:
        raise InvitationNotUsable()
    return invitation


def _close_invitation(invitation: Invitation, user: AbstractBaseUser) -> None:
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])


@transaction.atomic
def accept_invitation(*, token: str, user: AbstractBaseUser) -> Membership:
    """The signed-in ``user`` joins the account of the invitation whose link carries ``token``.

    Only a login of the invited address may accept (``selectors.logins_of_address``); the link
    is then used up. A member of the account already keeps the role they have. The login
    becomes staff: members work in the admin.
    """
    invitation = _usable_invitation_locked(token)
    if not selectors.logins_of_address(email=invitation.email).filter(pk=user.pk).exists():
        raise InvitationForAnotherLogin()
    membership, _ = Membership.objects.get_or_create(
        user=user, account=invitation.account, defaults={"role": invitation.role}
    )
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    _close_invitation(invitation, user)
    return membership


def new_login(*, email: str) -> AbstractBaseUser:
    """The login an invited address without one becomes, unsaved: its username and e-mail are
    the address; staff, as members work in the admin."""
    user_model = get_user_model()
    return user_model(**{user_model.USERNAME_FIELD: email}, email=email, is_staff=True)


@transaction.atomic
def accept_invitation_with_password(*, token: str, password: str) -> AbstractBaseUser:
    """A person without a login accepts: their login is created and joins the account.

    The login's username and e-mail are the invited address, its password ``password`` (checked
    by ``AUTH_PASSWORD_VALIDATORS``: ``ValidationError``). When the address has a login by now,
    that login must sign in and accept instead (``InvitationForAnotherLogin``).
    """
    invitation = _usable_invitation_locked(token)
    if selectors.logins_of_address(email=invitation.email).exists():
        raise InvitationForAnotherLogin()
    user = new_login(email=invitation.email)
    password_validation.validate_password(password, user)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        # The same username created meanwhile, by another request.
        raise InvitationForAnotherLogin() from None
    Membership.objects.create(user=user, account=invitation.account, role=invitation.role)
    _close_invitation(invitation, user)
    return user


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
    if "max_value" in values:
        # Readings are written under this row lock (readings.services._lock_meter): none can
        # be stored above the new max_value between Meter.clean's check and the save.
        list(Meter.objects.select_for_update(no_key=True).filter(pk=meter.pk).values_list("pk"))
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
