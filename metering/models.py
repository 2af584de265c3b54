"""Accounts, members, API keys, places, estates, service places, gateways, meters, registers."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from . import domain

POSITIVE = Decimal("0.000001")


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class AccountScopedQuerySet(models.QuerySet):
    def for_account(self, account: Account) -> AccountScopedQuerySet:
        return self.filter(account=account)


class MeterQuerySet(AccountScopedQuerySet):
    def refresh_last_readings(self) -> int:
        """Copy each meter's latest default-register reading to ``last_reading_value/_at``.

        One UPDATE whatever the number of meters.
        """
        reading_model = Meter._meta.get_field("readings").related_model
        latest = reading_model.objects.filter(
            register__meter=models.OuterRef("pk"), register__is_default=True
        ).order_by("-reading_date")
        return self.update(
            last_reading_value=models.Subquery(latest.values("value")[:1]),
            last_reading_at=models.Subquery(latest.values("reading_date")[:1]),
        )


# --- accounts, members, keys ----------------------------------------------------------------


def validate_currency(value: str) -> None:
    if value not in domain.CURRENCIES:
        raise ValidationError(f"{value!r} is not an ISO 4217 currency code.")


def validate_time_zone(value: str) -> None:
    if not domain.is_time_zone(value):
        raise ValidationError(f"{value!r} is not an IANA time zone.")


class Account(TimeStampedModel):
    """A property-management organisation; every other object belongs to exactly one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    currency = models.CharField(max_length=3, default="EUR", validators=[validate_currency])
    timezone = models.CharField(
        max_length=64, default="Europe/Paris", validators=[validate_time_zone]
    )
    # Anomaly thresholds of CONTRACT §4.2.
    anomaly_deviation_ratio = models.DecimalField(
        max_digits=8,
        decimal_places=4,
        default=Decimal("0.5"),
        validators=[MinValueValidator(Decimal(0))],
        help_text="DEVIATION when |rate − baseline| > this × baseline.",
    )
    anomaly_spike_ratio = models.DecimalField(
        max_digits=8,
        decimal_places=4,
        default=Decimal("3"),
        validators=[MinValueValidator(Decimal(0))],
        help_text="SPIKE when rate ≥ this × baseline.",
    )
    anomaly_drop_ratio = models.DecimalField(
        max_digits=8,
        decimal_places=4,
        default=Decimal("0.25"),
        validators=[MinValueValidator(Decimal(0))],
        help_text="DROP when rate < this × baseline.",
    )
    anomaly_baseline_days = models.PositiveIntegerField(
        default=365,
        validators=[MinValueValidator(1)],
        help_text="Intervals ending within this many days before a reading form its baseline.",
    )
    anomaly_min_intervals = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text="Fewer earlier intervals than this: no baseline, no rate flag.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> dt.tzinfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def today(self) -> dt.date:
        return timezone.localdate(timezone=self.zone)


class Membership(TimeStampedModel):
    """A Django user's role in one account."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=[(r.value, r.value) for r in domain.Role])

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.account} · {self.role}"


def _login_reference() -> models.ForeignKey:
    """The login that did something to a row, set by the services only; NULL once deleted."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )


class InvitationQuerySet(AccountScopedQuerySet):
    def open(self) -> InvitationQuerySet:
        """Neither accepted nor revoked (expired ones included)."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)

    def usable(self, now: dt.datetime) -> InvitationQuerySet:
        return self.open().filter(expires_at__gt=now)


class Invitation(TimeStampedModel):
    """An ADMIN's invitation of an e-mail address to join an account with a role (CONTRACT §1).

    The link mailed to the address carries a one-time token, of which only the SHA-256 digest
    is stored (as for keys). The link is used once: it sets a password and creates the login
    when the address has none, or lets the existing login join after signing in. Whether the
    address has a login is looked at only then, never when inviting, so that inviting answers
    the same for every address.
    """

    EMAIL_MAX_LENGTH = 150  # the address becomes the username of a new login (150 at most)

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=EMAIL_MAX_LENGTH)
    role = models.CharField(max_length=16, choices=[(r.value, r.value) for r in domain.Role])
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = _login_reference()
    expires_at = models.DateTimeField(editable=False)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)
    accepted_by = _login_reference()
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A new invitation of an address replaces (revokes) the open one.
            models.UniqueConstraint(
                models.functions.Lower("email"),
                "account",
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_address",
            ),
            models.CheckConstraint(
                condition=Q(accepted_at__isnull=True) | Q(revoked_at__isnull=True),
                name="invitation_accepted_or_revoked",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def status(self, now: dt.datetime) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "pending" if self.expires_at > now else "expired"


class KeyBase(TimeStampedModel):
    """A bearer credential stored hashed: only ``prefix`` is kept in clear."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, editable=False, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def validate_scopes(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValidationError("Scopes must be a list of strings.")
    unknown = domain.unknown_scopes(value)
    if unknown:
        raise ValidationError(
            f"Unknown scope(s): {', '.join(unknown)}. Valid: {', '.join(domain.SCOPES)}."
        )


class ApiKey(KeyBase):
    """An account key: bound to one account and a set of scopes."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    scopes = models.JSONField(default=list, validators=[validate_scopes])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def clean(self) -> None:
        # One spelling of a set of scopes, whichever path wrote it.
        if isinstance(self.scopes, list) and all(isinstance(s, str) for s in self.scopes):
            self.scopes = sorted(set(self.scopes))

    @property
    def granted_scopes(self) -> frozenset[str]:
        return domain.effective_scopes(self.scopes)


# --- places ---------------------------------------------------------------------------------

USAGE_CHOICES = [(u, u) for u in ("RESIDENTIAL", "COMMERCIAL", "COMMON", "PARKING", "OTHER")]
METER_TYPE_CHOICES = [(t, t) for t in domain.METER_TYPES]
COMMUNICATION_CHOICES = [
    (c, c) for c in ("NONE", "LORAWAN", "MODBUS", "MQTT", "HTTP", "DLMS", "WMBUS", "VIRTUAL")
]


def surface_field() -> models.DecimalField:
    return models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
    )


class Place(TimeStampedModel):
    """A building or site."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="places")
    name = models.CharField(max_length=200)
    code = models.CharField(max_length=50)
    address_line1 = models.CharField(max_length=200, blank=True, default="")
    address_line2 = models.CharField(max_length=200, blank=True, default="")
    postal_code = models.CharField(max_length=20, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    country = models.CharField(max_length=100, blank=True, default="")
    latitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(-90)), MaxValueValidator(Decimal(90))],
    )
    longitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(-180)), MaxValueValidator(Decimal(180))],
    )
    surface_m2 = surface_field()

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "code"], name="place_unique_code"),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | Q(latitude__gte=-90, latitude__lte=90),
                name="place_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True) | Q(longitude__gte=-180, longitude__lte=180),
                name="place_longitude_range",
            ),
            models.CheckConstraint(
                condition=Q(surface_m2__isnull=True) | Q(surface_m2__gte=0),
                name="place_surface_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} · {self.name}"


class Estate(TimeStampedModel):
    """A lot or unit inside a place."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="estates")
    place = models.ForeignKey(Place, on_delete=models.RESTRICT, related_name="estates")
    code = models.CharField(max_length=50)
    name = models.CharField(max_length=200, blank=True, default="")
    floor = models.CharField(max_length=20, blank=True, default="")
    surface_m2 = surface_field()
    shares = models.PositiveIntegerField(default=0, help_text="Tantièmes.")
    usage = models.CharField(max_length=16, choices=USAGE_CHOICES, default="RESIDENTIAL")

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["place", "code"], name="estate_unique_code"),
            models.CheckConstraint(
                condition=Q(surface_m2__isnull=True) | Q(surface_m2__gte=0),
                name="estate_surface_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} · {self.name}" if self.name else self.code

    def clean(self) -> None:
        if self.place_id and self.account_id and self.place.account_id != self.account_id:
            raise ValidationError({"place": "The place belongs to another account."})


class ServicePlace(TimeStampedModel):
    """A supply point of a utility service for a place (PDL, PRM, MaLo...)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="service_places")
    place = models.ForeignKey(Place, on_delete=models.RESTRICT, related_name="service_places")
    meter_type = models.CharField(max_length=20, choices=METER_TYPE_CHOICES)
    provider = models.CharField(max_length=200, blank=True, default="")
    contract_reference = models.CharField(max_length=100, blank=True, default="")
    delivery_point = models.CharField(max_length=100, blank=True, default="")

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            # A delivery point identifies one physical supply point.
            models.UniqueConstraint(
                fields=["account", "delivery_point"],
                condition=~Q(delivery_point=""),
                name="service_place_unique_delivery_point",
            )
        ]

    def __str__(self) -> str:
        return f"{self.meter_type} {self.delivery_point or self.provider or self.pk}"

    def clean(self) -> None:
        if self.place_id and self.account_id and self.place.account_id != self.account_id:
            raise ValidationError({"place": "The place belongs to another account."})


class Gateway(TimeStampedModel):
    """A data concentrator through which meters report."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="gateways")
    name = models.CharField(max_length=200)
    communication_type = models.CharField(
        max_length=16, choices=COMMUNICATION_CHOICES, default="NONE"
    )
    identifier = models.CharField(max_length=100)
    place = models.ForeignKey(
        Place, on_delete=models.SET_NULL, null=True, blank=True, related_name="gateways"
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "identifier"], name="gateway_unique_identifier"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.identifier})"

    def clean(self) -> None:
        if self.place_id and self.account_id and self.place.account_id != self.account_id:
            raise ValidationError({"place": "The place belongs to another account."})


# --- meters and registers -------------------------------------------------------------------


class Meter(TimeStampedModel):
    """A physical or virtual meter; its readings live on its registers."""

    BILLING_TYPES = [(b, b) for b in ("INDIVIDUAL", "COLLECTIVE", "SHARED", "INCLUDED")]
    BILLING_DIRECTIONS = [("ACCREC", "ACCREC"), ("ACCPAY", "ACCPAY")]
    STATUSES = [(s, s) for s in ("ACTIVE", "INACTIVE", "FAULTY", "DECOMMISSIONED")]

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="meters")
    name = models.CharField(max_length=200)
    serial_number = models.CharField(max_length=100)
    meter_type = models.CharField(max_length=20, choices=METER_TYPE_CHOICES)
    unit = models.CharField(max_length=16, blank=True, help_text="Empty: the type's default.")
    billing_type = models.CharField(max_length=16, choices=BILLING_TYPES, default="INDIVIDUAL")
    billing_direction = models.CharField(
        max_length=8, choices=BILLING_DIRECTIONS, null=True, blank=True
    )
    communication_type = models.CharField(
        max_length=16, choices=COMMUNICATION_CHOICES, default="NONE"
    )
    status = models.CharField(max_length=16, choices=STATUSES, default="ACTIVE")
    multiplier = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        default=Decimal(1),
        validators=[MinValueValidator(POSITIVE)],
    )
    precision_digits = models.PositiveSmallIntegerField(
        default=3, validators=[MaxValueValidator(6)]
    )
    max_value = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(POSITIVE)],
        help_text="The counter's modulus: a reading below the previous one rolls over.",
    )
    is_main_meter = models.BooleanField(default=False)
    parent_meter = models.ForeignKey(
        "self", on_delete=models.RESTRICT, null=True, blank=True, related_name="sub_meters"
    )
    place = models.ForeignKey(
        Place, on_delete=models.RESTRICT, null=True, blank=True, related_name="meters"
    )
    estate = models.ForeignKey(
        Estate, on_delete=models.RESTRICT, null=True, blank=True, related_name="meters"
    )
    service_place = models.ForeignKey(
        ServicePlace, on_delete=models.RESTRICT, null=True, blank=True, related_name="meters"
    )
    gateway = models.ForeignKey(
        Gateway, on_delete=models.SET_NULL, null=True, blank=True, related_name="meters"
    )
    tariff = models.ForeignKey(
        "billing.Tariff", on_delete=models.RESTRICT, null=True, blank=True, related_name="meters"
    )
    manufacturer = models.CharField(max_length=100, blank=True, default="")
    model_reference = models.CharField(max_length=100, blank=True, default="")
    description = models.TextField(blank=True, default="")
    location = models.CharField(max_length=200, blank=True, default="")
    notes = models.TextField(blank=True, default="")
    installation_date = models.DateField(null=True, blank=True)
    last_inspection_date = models.DateField(null=True, blank=True)
    next_inspection_date = models.DateField(null=True, blank=True)
    reading_interval = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Expected seconds between readings.",
    )
    properties = models.JSONField(default=dict, blank=True)
    last_reading_value = models.DecimalField(
        max_digits=20, decimal_places=6, null=True, blank=True, editable=False
    )
    last_reading_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = MeterQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "serial_number"], name="meter_unique_serial"
            ),
            models.CheckConstraint(condition=Q(multiplier__gt=0), name="meter_multiplier_positive"),
            models.CheckConstraint(
                condition=Q(precision_digits__gte=0, precision_digits__lte=6),
                name="meter_precision_digits_range",
            ),
            models.CheckConstraint(
                condition=Q(max_value__isnull=True) | Q(max_value__gt=0),
                name="meter_max_value_positive",
            ),
            models.CheckConstraint(
                condition=Q(reading_interval__isnull=True) | Q(reading_interval__gt=0),
                name="meter_reading_interval_positive",
            ),
            models.CheckConstraint(
                condition=~Q(is_main_meter=True, parent_meter__isnull=False),
                name="meter_main_meter_has_no_parent",
            ),
            models.CheckConstraint(
                condition=~Q(parent_meter=models.F("id")), name="meter_not_own_parent"
            ),
        ]
        indexes = [models.Index(fields=["account", "meter_type"])]

    def __str__(self) -> str:
        return f"{self.serial_number} · {self.name}"

    def has_readings(self) -> bool:
        return self.readings.exists() or self.period_readings.exists()

    def stored_value_above_max_value(self, stored: Meter) -> str | None:
        """Why ``max_value`` cannot be lowered to this value (CONTRACT §3), or None.

        A counter's modulus is never below an index it already showed: the highest stored
        reading of any register (a reading equal to ``max_value`` is allowed, as the engine
        allows it). Asked only when ``max_value`` is set or lowered: one query then.
        """
        new = self.max_value
        if not isinstance(new, Decimal) or new <= 0:
            return None  # no modulus, or a value the field's own validation refuses
        if stored.max_value is not None and new >= stored.max_value:
            return None  # readings never exceed the stored modulus
        highest = (
            stored.readings.filter(value__gt=new)
            .order_by("-value", "reading_date")
            .values_list("value", "reading_date", "register__code")
            .first()
        )
        if highest is None:
            return None
        value, reading_date, register = highest
        shown = format(value.normalize(), "f")
        return (
            f"This meter has a reading of {shown} (register {register}, "
            f"{reading_date:%Y-%m-%d}): max_value cannot be below a stored value."
        )

    def clean(self) -> None:
        """Every cross-field rule of CONTRACT §3's meter table; run by the API and the admin."""
        errors: dict[str, list[str]] = {}

        def error(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        stored = type(self).objects.filter(pk=self.pk).first() if self.pk else None

        if self.meter_type in domain.METER_TYPES:
            if not self.unit:
                self.unit = domain.default_unit(self.meter_type)
            elif not domain.unit_fits(self.meter_type, self.unit):
                dimension = domain.dimension_of(self.meter_type)
                error(
                    "unit",
                    f"{self.unit!r} is not a unit of {dimension} for a {self.meter_type} meter; "
                    f"use one of {', '.join(domain.UNITS[dimension])}.",
                )

        if stored is not None:
            if self.serial_number != stored.serial_number:
                error(
                    "serial_number",
                    "The serial number changes only through a device replacement "
                    "(POST /api/v1/meters/{id}/replace/).",
                )
            if self.meter_type != stored.meter_type and stored.has_readings():
                error("meter_type", "The meter type cannot change once the meter has readings.")
            below = self.stored_value_above_max_value(stored)
            if below is not None:
                error("max_value", below)
            for field in ("multiplier", "max_value"):
                if (
                    getattr(self, field) != getattr(stored, field)
                    and stored.registers.filter(locked_until__isnull=False).exists()
                ):
                    error(
                        field,
                        "Readings of this meter belong to a closed billing period: "
                        f"its {field} cannot change.",
                    )

        for field in ("place", "estate", "service_place", "gateway", "tariff", "parent_meter"):
            related = getattr(self, field) if getattr(self, f"{field}_id") else None
            if related is not None and related.account_id != self.account_id:
                error(field, "This object belongs to another account.")

        if self.estate_id and self.estate.account_id == self.account_id:
            if self.place_id is None:
                self.place = self.estate.place
            elif self.estate.place_id != self.place_id:
                error("estate", "The estate is not in the meter's place.")
        if self.service_place_id and self.service_place.account_id == self.account_id:
            if self.place_id is None:
                self.place = self.service_place.place
            elif self.service_place.place_id != self.place_id:
                error("service_place", "The service place is not in the meter's place.")
        if (
            self.tariff_id
            and self.tariff.account_id == self.account_id
            and self.tariff.meter_type != self.meter_type
        ):
            error("tariff", f"The tariff is for {self.tariff.meter_type} meters.")

        if self.parent_meter_id:
            parent = self.parent_meter
            if self.is_main_meter:
                error("is_main_meter", "A meter with a parent meter cannot be a main meter.")
            if parent.account_id == self.account_id:
                if not domain.same_family(self.meter_type, parent.meter_type):
                    error(
                        "parent_meter",
                        f"A {self.meter_type} meter cannot be a sub-meter of a "
                        f"{parent.meter_type} meter.",
                    )
                if self.pk and (parent.pk == self.pk or self.pk in parent.ancestor_ids()):
                    error("parent_meter", "This parent would make a cycle of sub-meters.")

        if (
            self.installation_date
            and self.account_id
            and self.installation_date > self.account.today()
        ):
            error("installation_date", "The installation date cannot be in the future.")
        if (
            self.installation_date
            and self.last_inspection_date
            and self.last_inspection_date < self.installation_date
        ):
            error("last_inspection_date", "The last inspection cannot precede the installation.")
        if (
            self.last_inspection_date
            and self.next_inspection_date
            and self.next_inspection_date < self.last_inspection_date
        ):
            error("next_inspection_date", "The next inspection cannot precede the last one.")
        if not isinstance(self.properties, dict):
            error("properties", "Properties must be a JSON object.")

        if errors:
            raise ValidationError(errors)

    def ancestor_ids(self) -> list[int]:
        """Ids of this meter's parent, grandparent... in one recursive query."""
        return _walk_tree(self.pk, up=True)

    def descendant_ids(self) -> list[int]:
        """Ids of every meter below this one, in one recursive query."""
        return _walk_tree(self.pk, up=False)


# Up: follow parent_meter_id from the meter; down: collect the rows whose parent is in the set.
_ANCESTORS_SQL = """
    WITH RECURSIVE tree(id) AS (
        SELECT CAST(%s AS BIGINT)
        UNION
        SELECT m.parent_meter_id FROM metering_meter m JOIN tree t ON m.id = t.id
        WHERE m.parent_meter_id IS NOT NULL
    )
    SELECT id FROM tree WHERE id <> %s
"""
_DESCENDANTS_SQL = """
    WITH RECURSIVE tree(id) AS (
        SELECT CAST(%s AS BIGINT)
        UNION
        SELECT m.id FROM metering_meter m JOIN tree t ON m.parent_meter_id = t.id
    )
    SELECT id FROM tree WHERE id <> %s
"""


def _walk_tree(meter_id: int, *, up: bool) -> list[int]:
    """Ids above (``up``) or below a meter; UNION stops on a cycle should one ever be stored."""
    with connection.cursor() as cursor:
        cursor.execute(_ANCESTORS_SQL if up else _DESCENDANTS_SQL, [meter_id, meter_id])
        return [row[0] for row in cursor.fetchall()]


class Register(TimeStampedModel):
    """One counter of a meter (HT/NT, feed-in...); every meter has a default register."""

    DIRECTIONS = [("CONSUMPTION", "CONSUMPTION"), ("FEED_IN", "FEED_IN")]
    DEFAULT_CODE = "default"

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="registers")
    code = models.CharField(max_length=50)
    obis_code = models.CharField(max_length=50, blank=True, default="")
    name = models.CharField(max_length=100, blank=True, default="")
    direction = models.CharField(max_length=16, choices=DIRECTIONS, default="CONSUMPTION")
    tariff_slot = models.CharField(max_length=20, null=True, blank=True)
    unit = models.CharField(max_length=16, blank=True)
    transformer_ratio = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        default=Decimal(1),
        validators=[MinValueValidator(POSITIVE)],
    )
    conversion_factor = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        default=Decimal(1),
        validators=[MinValueValidator(POSITIVE)],
        help_text="Factor from the register's unit to the billed unit (e.g. m³ to kWh).",
    )
    is_default = models.BooleanField(default=False)
    locked_until = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Readings dated at or before this instant belong to a closed billing period.",
    )

    class Meta:
        ordering = ["meter_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "code"], name="register_unique_code"),
            models.UniqueConstraint(
                fields=["meter"], condition=Q(is_default=True), name="register_one_default"
            ),
            models.CheckConstraint(
                condition=Q(transformer_ratio__gt=0), name="register_transformer_ratio_positive"
            ),
            models.CheckConstraint(
                condition=Q(conversion_factor__gt=0), name="register_conversion_factor_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter.serial_number} · {self.code}"

    def clean(self) -> None:
        if not self.meter_id:
            return
        if self.pk and self.locked_until is not None:
            stored_ratio = (
                type(self).objects.filter(pk=self.pk).values_list("transformer_ratio", flat=True)[0]
            )
            if stored_ratio != self.transformer_ratio:
                raise ValidationError(
                    {
                        "transformer_ratio": "Readings of this register belong to a closed "
                        "billing period: its transformer ratio cannot change."
                    }
                )
        if not self.unit:
            self.unit = self.meter.unit
        elif self.meter.meter_type in domain.METER_TYPES and not domain.unit_fits(
            self.meter.meter_type, self.unit
        ):
            dimension = domain.dimension_of(self.meter.meter_type)
            raise ValidationError(
                {"unit": f"Use a unit of {dimension}: {', '.join(domain.UNITS[dimension])}."}
            )


class MeterDevice(TimeStampedModel):
    """One physical device that served as a meter, in its serial-number history (§4.6).

    A meter's first replacement records its original device (``initial_value`` null: it
    counted from the meter's first reading) and the new one; each later replacement closes the
    current device and adds the next. The current device has no ``removed_at``. A device with
    an ``initial_value`` restarts the meter's counting at ``installed_at``: the readings engine
    takes it as the previous value of the default register's first reading after it, and
    ``register_values`` the other registers' (0 when not given).
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="devices")
    serial_number = models.CharField(max_length=100)
    manufacturer = models.CharField(max_length=100, blank=True, default="")
    model_reference = models.CharField(max_length=100, blank=True, default="")
    installed_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    initial_value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    final_value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    # The other registers' indexes: {code: {"final_value": "...", "initial_value": "..."}}.
    register_values = models.JSONField(default=dict, blank=True)

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["meter_id", "id"]  # devices are recorded in the order they are installed
        constraints = [
            models.UniqueConstraint(
                fields=["meter"], condition=Q(removed_at__isnull=True), name="device_one_current"
            ),
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True)
                | Q(installed_at__isnull=True)
                | Q(removed_at__gte=models.F("installed_at")),
                name="device_removed_after_installed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.serial_number} ({self.meter})"


class IdempotencyRecord(models.Model):
    """The first response to a POST sent with an ``Idempotency-Key`` (CONTRACT §2), for 24 h.

    Keys belong to the credential that sent them (``credential``: ``metering.apikey:12``,
    ``billing.portalkey:3``, ``user:7`` for a member's session): another credential of the
    account using the same key neither replays nor is refused.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    credential = models.CharField(max_length=100, default="")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "credential", "key"], name="idempotency_unique_credential_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"
