"""Serializers of the billing resources (CONTRACT §5): field validation only.

The rules (overlaps, billing types, periods) live on the models and in ``billing.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing import selectors
from billing.models import (
    AllocationRule,
    BillingPeriod,
    Charge,
    Lease,
    MeterShare,
    PortalKey,
    Tariff,
    Tenant,
)
from metering.api.fields import AccountDateTimeField, AccountRelatedField
from metering.api.viewsets import BaseModelSerializer
from metering.errors import PayloadTooLarge
from metering.models import Estate, Meter, Place, Register
from readings import photos
from readings.api.serializers import ReadingSerializer

TIMESTAMPS = ("id", "created_at", "updated_at")


class TenantSerializer(BaseModelSerializer):
    """An occupant billed through leases."""

    class Meta:
        model = Tenant
        fields = (
            "id",
            "account_id",
            "name",
            "email",
            "phone",
            "external_reference",
            "created_at",
            "updated_at",
        )
        read_only_fields = TIMESTAMPS


class PortalKeySerializer(BaseModelSerializer):
    """A tenant's new portal key; ``key`` is shown in this response only."""

    account_id = serializers.UUIDField(
        required=False, help_text="Optional on input: must be your key's account (403)."
    )
    tenant_id = serializers.IntegerField(read_only=True)
    key = serializers.CharField(
        read_only=True,
        help_text="The key in clear: shown this once, never stored nor shown again.",
    )
    name = serializers.CharField(
        required=False,
        max_length=100,
        help_text='What the key is for, e.g. the tenant\'s app. Default: "Portal key" and '
        "today's date in the account's time zone.",
    )
    expires_at = AccountDateTimeField(
        required=False, allow_null=True, help_text="Optional expiry, in the future."
    )

    class Meta:
        model = PortalKey
        fields = (
            "id",
            "account_id",
            "tenant_id",
            "name",
            "key",
            "prefix",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = (*TIMESTAMPS, "prefix", "revoked_at", "last_used_at")

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value

    def validate(self, attrs):
        # An empty body (or {}) asks for a key and nothing more: it gets a name that says when.
        if "name" not in attrs:
            account = self.context["account"]
            attrs["name"] = gettext("Portal key %(date)s") % {"date": account.today().isoformat()}
        return attrs


class LeaseMeterSerializer(serializers.ModelSerializer):
    """A meter a lease is billed for."""

    class Meta:
        model = Meter
        fields = ("id", "serial_number", "name", "meter_type", "billing_type")
        read_only_fields = fields


class LeaseListSerializer(serializers.ListSerializer):
    """Loads the meters of every lease of the page at once (``selectors.lease_meters``)."""

    def to_representation(self, data):
        leases = list(data.all() if hasattr(data, "all") else data)
        self.meters_by_lease = selectors.lease_meters(leases=leases)
        return super().to_representation(leases)


class LeaseSerializer(BaseModelSerializer):
    """A tenant's occupation of an estate from `start_date` to `end_date` (null: ongoing)."""

    tenant_id = AccountRelatedField(source="tenant", queryset=Tenant.objects.all())
    estate_id = AccountRelatedField(source="estate", queryset=Estate.objects.all())
    is_current = serializers.SerializerMethodField(
        help_text="start_date ≤ today ≤ end_date (or no end), today in the account's time zone."
    )
    meters = serializers.SerializerMethodField(
        help_text=(
            "The meters the lease is billed for: its estate's INDIVIDUAL (and INCLUDED) meters, "
            "the SHARED meters with a share for its estate, the COLLECTIVE meters of its place."
        )
    )

    class Meta:
        model = Lease
        list_serializer_class = LeaseListSerializer
        fields = (
            "id",
            "account_id",
            "tenant_id",
            "estate_id",
            "reference",
            "start_date",
            "end_date",
            "is_current",
            "meters",
            "created_at",
            "updated_at",
        )
        read_only_fields = TIMESTAMPS
        extra_kwargs = {"end_date": {"help_text": "Null: the lease is ongoing."}}

    def get_is_current(self, lease: Lease) -> bool:
        if not hasattr(self, "_today"):  # once per response, a list's child serializer included
            account = self.context.get("account") or lease.account
            self._today = account.today()
        return lease.is_current(self._today)

    @extend_schema_field(LeaseMeterSerializer(many=True))
    def get_meters(self, lease: Lease) -> list[dict]:
        loaded = getattr(self.parent, "meters_by_lease", None)
        if loaded is None or lease.pk not in loaded:
            loaded = selectors.lease_meters(leases=[lease])
        return LeaseMeterSerializer(loaded[lease.pk], many=True).data


class MeterShareSerializer(BaseModelSerializer):
    """An estate's ratio of a SHARED meter: the meter's cost is split by the ratios."""

    meter_id = AccountRelatedField(
        source="meter", queryset=Meter.objects.all(), help_text="A SHARED meter."
    )
    estate_id = AccountRelatedField(
        source="estate", queryset=Estate.objects.all(), help_text="An estate of the meter's place."
    )

    class Meta:
        model = MeterShare
        fields = ("id", "account_id", "meter_id", "estate_id", "ratio", "created_at", "updated_at")
        read_only_fields = TIMESTAMPS
        extra_kwargs = {
            "ratio": {"help_text": "> 0: the meter's cost is split by the estates' ratios."}
        }


class TariffSerializer(BaseModelSerializer):
    """A price per unit and per day for one meter type (and optionally one register slot)."""

    class Meta:
        model = Tariff
        fields = (
            "id",
            "account_id",
            "name",
            "meter_type",
            "unit_price",
            "tariff_slot",
            "standing_charge_per_day",
            "vat_rate",
            "currency",
            "valid_from",
            "valid_to",
            "created_at",
            "updated_at",
        )
        read_only_fields = TIMESTAMPS
        extra_kwargs = {
            "unit_price": {"help_text": "Price of one unit of consumption (≥ 0)."},
            "tariff_slot": {"help_text": "The registers' slot it prices; null: any register."},
            "standing_charge_per_day": {"help_text": "Fixed price per day (≥ 0), default 0."},
            "currency": {"required": False, "help_text": "ISO 4217; default the account's."},
            "valid_to": {"help_text": "Last day of validity; null: open."},
        }


class AllocationRuleSerializer(BaseModelSerializer):
    """How a COLLECTIVE meter's cost is split over its place's estates: `consumption_part_percent`
    by the consumption of each estate's sub-meters of the meter, the rest by `basis`."""

    meter_id = AccountRelatedField(
        source="meter",
        queryset=Meter.objects.all(),
        help_text="A COLLECTIVE meter with a place; one rule per meter (409 otherwise).",
    )

    class Meta:
        model = AllocationRule
        fields = (
            "id",
            "account_id",
            "meter_id",
            "basis",
            "consumption_part_percent",
            "created_at",
            "updated_at",
        )
        read_only_fields = TIMESTAMPS


class PeriodIssueSerializer(serializers.Serializer):
    """A line the computation could not settle, such as a meter without readings around a date."""

    code = serializers.CharField(help_text="What is missing, e.g. no readings on both sides.")
    meter_id = serializers.IntegerField()
    serial_number = serializers.CharField()
    register_id = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class BillingPeriodSerializer(BaseModelSerializer):
    """The days `start_date`..`end_date` of a place to bill; DRAFT until closed."""

    place_id = AccountRelatedField(source="place", queryset=Place.objects.all())
    issues = PeriodIssueSerializer(
        many=True,
        read_only=True,
        help_text="Lines the last computation could not settle; closing then needs force.",
    )
    days = serializers.IntegerField(read_only=True, help_text="end_date − start_date + 1.")

    class Meta:
        model = BillingPeriod
        fields = (
            "id",
            "account_id",
            "place_id",
            "name",
            "start_date",
            "end_date",
            "days",
            "status",
            "issues",
            "total_amount",
            "currency",
            "computed_at",
            "closed_at",
            "closed_by",
            "created_at",
            "updated_at",
        )
        read_only_fields = (
            *TIMESTAMPS,
            "status",
            "total_amount",
            "currency",
            "computed_at",
            "closed_at",
            "closed_by",
        )
        extra_kwargs = {
            "total_amount": {"help_text": "Sum of the charges' totals, VAT included."},
        }


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false``; anything else (``"yes"``, ``1``) is a 400."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class ClosePeriodSerializer(serializers.Serializer):
    """Options of closing a period."""

    force = StrictBooleanField(
        default=False, help_text="Close even with unresolved issues (default false)."
    )


class ChargeSerializer(BaseModelSerializer):
    """A line of a billing period: one meter (and register) for one lease or a vacancy."""

    account_id = serializers.UUIDField(read_only=True)
    billing_period_id = serializers.IntegerField(read_only=True)
    lease_id = serializers.IntegerField(read_only=True, allow_null=True)
    estate_id = serializers.IntegerField(read_only=True, allow_null=True)
    meter_id = serializers.IntegerField(read_only=True)
    register_id = serializers.IntegerField(read_only=True, allow_null=True)
    tariff_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Charge
        fields = (
            "id",
            "account_id",
            "billing_period_id",
            "lease_id",
            "is_vacancy",
            "estate_id",
            "meter_id",
            "register_id",
            "tariff_id",
            "start_date",
            "end_date",
            "index_start",
            "index_end",
            "consumption",
            "unit",
            "unit_price",
            "share",
            "basis",
            "amount",
            "vat_amount",
            "total_amount",
            "is_estimated",
            "is_included",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields
        extra_kwargs = {
            "lease_id": {"help_text": "Null on vacancy lines."},
            "share": {"help_text": "Fraction of the meter's cost."},
            "basis": {"help_text": "How the share was made, e.g. shares 120/1000."},
            "amount": {"help_text": "Net, standing charge included, to the cent."},
        }


# --- statements (documentation of ``billing.statements.statement_data``) ----------------------


class StatementTenantSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    email = serializers.CharField()
    external_reference = serializers.CharField()


class StatementEstateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()


class StatementLeaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.CharField()
    start_date = serializers.DateField()
    end_date = serializers.DateField(allow_null=True)
    tenant = StatementTenantSerializer()
    estate = StatementEstateSerializer()


class StatementPlaceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    address_line1 = serializers.CharField()
    address_line2 = serializers.CharField()
    postal_code = serializers.CharField()
    city = serializers.CharField()
    country = serializers.CharField()


class StatementAccountSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class StatementPeriodSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    start_date = serializers.DateField()
    end_date = serializers.DateField()
    days = serializers.IntegerField()
    status = serializers.CharField(help_text="DRAFT or CLOSED.")


def _amount(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=16, decimal_places=2, **kwargs)


def _quantity(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=38, decimal_places=18, allow_null=True, **kwargs)


class StatementLineSerializer(serializers.Serializer):
    """A charge line with what a reader needs: meter serial and name, register code, tariff."""

    id = serializers.IntegerField(help_text="The charge's id.")
    meter_id = serializers.IntegerField()
    meter_serial_number = serializers.CharField()
    meter_name = serializers.CharField()
    meter_type = serializers.CharField()
    register_id = serializers.IntegerField(allow_null=True)
    register_code = serializers.CharField(allow_null=True)
    tariff_id = serializers.IntegerField(allow_null=True)
    tariff_name = serializers.CharField(allow_null=True)
    start_date = serializers.DateField()
    end_date = serializers.DateField()
    index_start = _quantity()
    index_end = _quantity()
    consumption = _quantity()
    unit = serializers.CharField()
    unit_price = serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True)
    share = serializers.DecimalField(max_digits=20, decimal_places=12)
    basis = serializers.CharField()
    amount = _amount(help_text="Net, standing charge included.")
    vat_amount = _amount()
    total_amount = _amount()
    is_vacancy = serializers.BooleanField()
    is_estimated = serializers.BooleanField()
    is_included = serializers.BooleanField()


class StatementSerializer(serializers.Serializer):
    """What a lease owes for a billing period: its lines and their totals."""

    account = StatementAccountSerializer()
    place = StatementPlaceSerializer()
    billing_period = StatementPeriodSerializer()
    lease = StatementLeaseSerializer()
    currency = serializers.CharField()
    lines = StatementLineSerializer(many=True)
    amount = _amount(help_text="Sum of the lines' net amounts.")
    vat_amount = _amount()
    total_amount = _amount(help_text="VAT included.")


# --- tenant portal (CONTRACT §6) --------------------------------------------------------------


class PortalPlaceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Place
        fields = ("id", "code", "name")
        read_only_fields = fields


class PortalEstateSerializer(serializers.ModelSerializer):
    place = PortalPlaceSerializer(read_only=True)

    class Meta:
        model = Estate
        fields = ("id", "code", "name", "place")
        read_only_fields = fields


class PortalLeaseSerializer(serializers.ModelSerializer):
    """One of the tenant's leases, current or not."""

    estate = PortalEstateSerializer(read_only=True)
    is_current = serializers.SerializerMethodField(
        help_text="start_date ≤ today ≤ end_date (or no end), today in the account's time zone: "
        "the meters of current leases are the ones the portal shows."
    )

    class Meta:
        model = Lease
        fields = ("id", "reference", "estate", "start_date", "end_date", "is_current")
        read_only_fields = fields

    def get_is_current(self, lease: Lease) -> bool:
        return lease.is_current(self.context["today"])


class PortalTenantSerializer(serializers.ModelSerializer):
    """The tenant the portal key belongs to, with its leases."""

    leases = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = ("id", "name", "email", "phone", "external_reference", "leases")
        read_only_fields = fields

    @extend_schema_field(PortalLeaseSerializer(many=True))
    def get_leases(self, tenant: Tenant) -> list[dict]:
        return PortalLeaseSerializer(self.context["leases"], many=True, context=self.context).data


class PortalRegisterSerializer(serializers.ModelSerializer):
    class Meta:
        model = Register
        fields = ("id", "code", "name", "unit", "tariff_slot", "is_default")
        read_only_fields = fields


class PortalMeterSerializer(serializers.ModelSerializer):
    """A meter of the tenant's current leases, as the tenant sees it (read-only)."""

    last_reading_at = AccountDateTimeField(read_only=True, allow_null=True)
    registers = PortalRegisterSerializer(many=True, read_only=True)
    # A second component with the meter's status enum makes drf-spectacular's enum names
    # collide (Meter's and BillingPeriod's "status"): documented as text here.
    status = serializers.CharField(
        read_only=True, help_text="ACTIVE, INACTIVE, FAULTY or DECOMMISSIONED."
    )

    class Meta:
        model = Meter
        fields = (
            "id",
            "name",
            "serial_number",
            "meter_type",
            "unit",
            "billing_type",
            "communication_type",
            "status",
            "precision_digits",
            "last_reading_value",
            "last_reading_at",
            "registers",
        )
        read_only_fields = fields
        extra_kwargs = {
            "communication_type": {
                "help_text": "NONE: read by hand, the tenant may send readings; any other: "
                "read automatically, the portal refuses readings (409)."
            },
            "precision_digits": {"help_text": "Decimals a reading's value may have."},
            "last_reading_value": {
                "help_text": "The default register's latest reading; null when it was made "
                "before your lease (a former occupant's reading is not shown)."
            },
        }

    def to_representation(self, meter: Meter) -> dict:
        data = super().to_representation(meter)
        # CONTRACT §6: nothing dated before the tenant's lease (``visible_since``, per meter).
        since = self.context.get("visible_since", {}).get(meter.pk)
        if meter.last_reading_at is None or since is None or meter.last_reading_at < since:
            data["last_reading_value"] = data["last_reading_at"] = None
        return data


class PortalStatementPeriodSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="billing_period_id")
    name = serializers.CharField(source="billing_period__name")
    start_date = serializers.DateField(source="billing_period__start_date")
    end_date = serializers.DateField(source="billing_period__end_date")


class PortalStatementLeaseSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="lease_id")
    reference = serializers.CharField(source="lease__reference")


class PortalStatementSummarySerializer(serializers.Serializer):
    """What one of the tenant's leases owes for a closed billing period (totals only; the
    lines are at ``statements/{billing_period_id}/{lease_id}/``)."""

    billing_period = PortalStatementPeriodSerializer(source="*")
    lease = PortalStatementLeaseSerializer(source="*")
    amount = serializers.DecimalField(
        max_digits=16, decimal_places=2, help_text="Sum of the lines' net amounts."
    )
    vat_amount = serializers.DecimalField(max_digits=16, decimal_places=2)
    total_amount = serializers.DecimalField(
        max_digits=16, decimal_places=2, help_text="VAT included."
    )
    currency = serializers.CharField(source="billing_period__currency")


PORTAL_READING_TYPES = ("MANUAL", "PHOTO")
# Who took a reading: not shown to a tenant for another person's reading on a shared meter.
PORTAL_READER_FIELDS = ("photo_url", "reader_name", "notes", "created_by", "lease_id")


def _reader_field(help_text: str = "", *, writable: bool = False, **options) -> serializers.Field:
    """A text field of ``PORTAL_READER_FIELDS``: null for another person's reading on a shared
    meter, and its help says so."""
    if writable:
        options.update(required=False, allow_blank=True)
    else:
        options.update(read_only=True)
    hidden = "Null on a meter you share with others for a reading you did not send."
    return serializers.CharField(
        allow_null=True, help_text=f"{help_text} {hidden}" if help_text else hidden, **options
    )


class PortalReadingSerializer(ReadingSerializer):
    """An index reading of one of the tenant's meters: JSON, or a form with a ``photo``.

    The tenant sends the date, the value, the register, the type (MANUAL or PHOTO), notes and
    who read it; the rest is the engine's (source PORTAL, lease, chain, flags).
    """

    photo_route = "portal-meter-reading-photo"

    account_id = None  # the tenant's own account: not shown
    reading_type = serializers.ChoiceField(
        choices=PORTAL_READING_TYPES,
        required=False,
        help_text="MANUAL (default) or PHOTO (the default when a photo is sent).",
    )
    photo = serializers.FileField(
        write_only=True,
        required=False,
        help_text="multipart/form-data only: a JPEG or PNG image (checked by its content), "
        "at most PORTAL_PHOTO_MAX_BYTES (10 MB by default; larger: 413).",
    )
    is_estimated = serializers.BooleanField(read_only=True)
    lease_id = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The current lease of the meter's estate, when the meter has an estate.",
    )
    photo_url = _reader_field(
        "The photo's download route, .../readings/{id}/photo/ (with your portal key), when a"
        " photo was sent; else the link the account gave, or empty."
    )
    reader_name = _reader_field("Who read the meter.", writable=True, max_length=100)
    notes = _reader_field(writable=True)
    created_by = _reader_field("The credential that sent it (key:<prefix> for a portal key).")
    previous_value = serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        read_only=True,
        allow_null=True,
        help_text="As the account API's; null for the first reading of your lease (it counts "
        "from a reading made before it, which is not shown).",
    )

    class Meta(ReadingSerializer.Meta):
        fields = (
            "id",
            "meter_id",
            "register_id",
            "register",
            "reading_date",
            "value",
            "reading_type",
            "is_estimated",
            "lease_id",
            "photo",
            "photo_url",
            "reader_name",
            "notes",
            "previous_value",
            "consumption",
            "is_rollover",
            "anomaly_flags",
            "is_locked",
            "source",
            "created_by",
            "created_at",
            "updated_at",
        )
        read_only_fields = ReadingSerializer.Meta.read_only_fields

    def validate_reader_name(self, value: str | None) -> str:
        return value or ""

    def validate_notes(self, value: str | None) -> str:
        return value or ""

    def to_representation(self, instance):
        """CONTRACT §6, from ``billing.selectors.portal_readings``'s annotations (hidden when
        they are missing): on a meter shared with others, another's reading shows its values
        and dates, not who took it; the first reading of the lease shows no earlier value."""
        data = super().to_representation(instance)
        if not getattr(instance, "shows_reader", False):
            data.update(dict.fromkeys(PORTAL_READER_FIELDS))
        if not getattr(instance, "counts_from_lease", False):
            data["previous_value"] = data["consumption"] = None
        return data

    def validate_photo(self, upload):
        limit = settings.PORTAL_PHOTO_MAX_BYTES
        if upload.size > limit:
            raise PayloadTooLarge(f"A photo is {limit} bytes at most; this one has {upload.size}.")
        try:
            return photos.check_photo(upload)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
