"""The tenant portal under ``/api/v1/portal/`` (CONTRACT §6), for portal keys only.

Every route is a ``PortalMixin`` view:
- ``PortalPermission`` admits a tenant's portal key and nothing else (no credential: 401; an
  account key or a member's session: 403 ``permission_denied``); readings are written only on
  the ``INDIVIDUAL`` meters of the tenant's estate (``PortalReadingWritePermission``: 403);
- ``PortalMixin.for_tenant`` narrows every queryset to the key's tenant, in this one
  place: the meters of its current leases, their readings from its lease start on, its
  leases, and the statements of its leases in closed periods. Anything else, another
  tenant's included, is a 404.
- what the tenant sees of a reading is ``billing.selectors.portal_readings``'s: on a meter
  shared with others, nobody else's photo, notes, reader or credential; and no value of a
  reading made before its lease (``previous_value`` of its first one included).

The routes reuse the account API's pieces: the reading serializer, the readings engine
(``readings.services.create_readings``, source PORTAL), the consumption view, the statement
view and its renderings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Exists, OuterRef, Prefetch, Q, Sum
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from billing import selectors
from billing.api import serializers as billing_serializers
from billing.api.permissions import PortalPermission, PortalReadingWritePermission
from billing.api.views import StatementView
from billing.models import BillingPeriod, Charge, Lease, Tenant
from metering.api.fields import AccountDateTimeField
from metering.api.filters import StrictOrderingFilter
from metering.api.idempotency import idempotent
from metering.api.parsers import JSONParser
from metering.api.views import path_id
from metering.api.viewsets import AccountScopedMixin
from metering.errors import Conflict
from metering.models import Meter, Register
from readings import filters as readings_filters
from readings import photos, services
from readings import selectors as readings_selectors
from readings.api.consumption import (
    CONSUMPTION_DIGITS,
    ConsumptionBucketSerializer,
    MeterConsumptionQuerySerializer,
    MeterConsumptionView,
)
from readings.api.serializers import ReadingDateField
from readings.api.views import (
    ORDERING_FIELDS,
    PHOTO_RESPONSES,
    SEARCH_FIELDS,
    actor_of,
    photo_response,
    raise_item_error,
    reading_input,
)
from readings.domain import local_midnight
from readings.models import Reading

TAGS = ["portal"]
METER_ID = path_id("meter_id", "A meter of one of your current leases.")


class PortalMixin(AccountScopedMixin):
    """What every portal route shares: the portal key, and every queryset scoped to its tenant.

    ``request.account`` is the key's account, so the account routes' pieces (envelope,
    serializers, filters in the account's time zone) work unchanged.
    """

    portal = True  # read by metering.api.schema: the portal key opens this route
    scope = None
    permission_classes = (PortalPermission,)

    @property
    def tenant(self) -> Tenant:
        return self.request.tenant

    def current_leases(self) -> list[Lease]:
        """The tenant's leases current today (in the account's time zone)."""
        if not hasattr(self, "_current_leases"):
            today = self.request.account.today()
            leases = Lease.objects.filter(account=self.request.account, tenant=self.tenant)
            self._current_leases = list(leases.current(today).order_by("start_date", "id"))
        return self._current_leases

    def meter_ids(self) -> set[int]:
        """The meters the current leases are billed for (``billing.selectors.lease_meters``)."""
        return set(self.meter_since())

    def visible_since(self, meter: Meter) -> dt.datetime:
        """The instant the tenant's view of ``meter`` starts (``visible_from``)."""
        return self.visible_from()[meter.pk]

    def visible_from(self) -> dict[int, dt.datetime]:
        """Each meter's ``meter_since`` as the instant it starts: 00:00 of that day in the
        account's time zone."""
        if not hasattr(self, "_visible_from"):
            zone = self.request.account.zone
            self._visible_from = {
                meter_id: local_midnight(since, zone)
                for meter_id, since in self.meter_since().items()
            }
        return self._visible_from

    def meter_since(self) -> dict[int, dt.date]:
        """Each meter's first day the tenant may see: the earliest start of its current leases
        billed for it. What the meter measured before (a former occupant's use) stays hidden."""
        if not hasattr(self, "_meter_since"):
            since: dict[int, dt.date] = {}
            by_lease = selectors.lease_meters(leases=self.current_leases())
            for lease in self.current_leases():
                for meter in by_lease.get(lease.pk, []):
                    if meter.pk not in since or lease.start_date < since[meter.pk]:
                        since[meter.pk] = lease.start_date
            self._meter_since = since
        return self._meter_since

    def check_within_lease(self, meter: Meter, reading_date: dt.datetime) -> None:
        """A reading date before the tenant's lease of ``meter``: 400 (nothing is shown of, nor
        written into, a former occupant's time)."""
        if reading_date < self.visible_since(meter):
            since = self.meter_since()[meter.pk]
            raise exceptions.ValidationError(
                {"reading_date": [f"Your lease of this meter starts on {since}."]}
            )

    def scope_queryset(self, queryset):
        return self.for_tenant(queryset)

    def for_tenant(self, queryset):
        """The tenant's part of ``queryset``: the one place the portal decides what a tenant
        sees. A model not named here is shown to no tenant."""
        queryset = queryset.filter(account=self.request.account)
        model = queryset.model
        closed = BillingPeriod.CLOSED
        if model is Tenant:
            return queryset.filter(pk=self.tenant.pk)
        if model is Lease:
            return queryset.filter(tenant=self.tenant)
        if model is Meter:
            return queryset.filter(pk__in=self.meter_ids())
        if model is Reading:
            visible = Q(pk__in=[])
            for meter_id, since in self.visible_from().items():
                visible |= Q(meter_id=meter_id, reading_date__gte=since)
            return queryset.filter(visible)
        if model is Charge:
            return queryset.filter(lease__tenant=self.tenant, billing_period__status=closed)
        if model is BillingPeriod:
            lines = Charge.objects.filter(billing_period=OuterRef("pk"), lease__tenant=self.tenant)
            return queryset.filter(Exists(lines), status=closed)
        raise ImproperlyConfigured(f"The portal shows no {model.__name__} to a tenant.")

    def meter(self) -> Meter:
        """The meter in the path (``meter_id``): one of the current leases' (404 otherwise)."""
        if not hasattr(self, "_meter"):
            meter = (
                self.for_tenant(Meter.objects.select_related("account"))
                .filter(pk=self.kwargs["meter_id"])
                .first()
            )
            if meter is None:
                raise exceptions.NotFound("No meter with this id among your current leases'.")
            self._meter = meter
        return self._meter

    def check_parents(self) -> None:
        if "meter_id" in self.kwargs:
            self.meter()
        super().check_parents()

    def get_object(self):
        try:
            return super().get_object()
        except exceptions.NotFound:
            name = self.get_queryset().model._meta.verbose_name
            raise exceptions.NotFound(f"No {name} with this id among yours.") from None


# --- the tenant --------------------------------------------------------------------------------


@extend_schema(tags=TAGS, responses={200: billing_serializers.PortalTenantSerializer})
class PortalMeView(PortalMixin, generics.GenericAPIView):
    """The tenant the portal key belongs to, and its leases (current or not)."""

    queryset = Tenant.objects.all()
    serializer_class = billing_serializers.PortalTenantSerializer
    pagination_class = None
    filter_backends = ()

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["today"] = self.request.account.today()
        context["leases"] = self.for_tenant(Lease.objects.select_related("estate__place")).order_by(
            "start_date", "id"
        )
        return context

    def get(self, request, *args, **kwargs):
        return Response(self.get_serializer(self.get_queryset().get()).data)


# --- meters ------------------------------------------------------------------------------------


@extend_schema(tags=TAGS)
class PortalMeterViewSet(
    PortalMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The meters of the tenant's current leases: its estate's meters, the shared meters it
    has a share of, the collective meters of its building. Read-only."""

    queryset = Meter.objects.prefetch_related(
        Prefetch("registers", queryset=Register.objects.order_by("id"))
    )
    serializer_class = billing_serializers.PortalMeterSerializer
    search_fields = ("name", "serial_number")
    ordering_fields = ("id", "name", "serial_number", "meter_type", "last_reading_at")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        # A last reading made before the lease (a former occupant's) is not shown.
        context["visible_since"] = self.visible_from()
        return context


# --- readings ----------------------------------------------------------------------------------

# The fields a tenant searches and orders readings by, as it sees them (``portal_readings``).
PORTAL_SEARCH_FIELDS = {"notes": "visible_notes", "reader_name": "visible_reader_name"}
PORTAL_ORDERING_FIELDS = {"consumption": "visible_consumption"}


class PortalReadingOrderingFilter(StrictOrderingFilter):
    """``ordering`` as the account API's, by what the tenant sees: ``consumption`` orders by
    ``visible_consumption`` (the first reading of the lease has none)."""

    def get_ordering(self, request, queryset, view):
        ordering = []
        for term in super().get_ordering(request, queryset, view):
            sign, name = ("-", term[1:]) if term.startswith("-") else ("", term)
            ordering.append(sign + PORTAL_ORDERING_FIELDS.get(name, name))
        return ordering


@extend_schema(tags=TAGS, parameters=[METER_ID])
class PortalMeterReadingViewSet(PortalMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Index readings of one of the tenant's meters; the tenant may send new ones."""

    queryset = Reading.objects.select_related("register")
    serializer_class = billing_serializers.PortalReadingSerializer
    filterset_class = readings_filters.ReadingFilter
    permission_classes = (PortalReadingWritePermission,)
    parser_classes = (JSONParser, MultiPartParser)
    filter_backends = tuple(
        PortalReadingOrderingFilter if backend is StrictOrderingFilter else backend
        for backend in generics.GenericAPIView.filter_backends
    )
    ordering = ["reading_date", "id"]
    ordering_fields = ORDERING_FIELDS
    # What the tenant sees of each reading (``selectors.portal_readings``), not the stored text:
    # a search must not find another person's notes on a shared meter.
    search_fields = tuple(PORTAL_SEARCH_FIELDS.get(name, name) for name in SEARCH_FIELDS)

    def scope_queryset(self, queryset):
        meter = self.meter()
        return selectors.portal_readings(
            readings=super().scope_queryset(queryset).filter(meter=meter),
            tenant=self.tenant,
            meter=meter,
            since=self.visible_since(meter),
        )

    def idempotency_credential(self) -> str:
        # Keys are the tenant's own: another tenant sharing a meter never gets its replay.
        return f"tenant:{self.tenant.pk}"

    def lease_of(self, meter: Meter) -> Lease | None:
        """The current lease of the meter's estate, if the meter has an estate."""
        if meter.estate_id is None:
            return None
        leases = self.current_leases()
        return next((lease for lease in leases if lease.estate_id == meter.estate_id), None)

    @extend_schema(
        request={
            "application/json": billing_serializers.PortalReadingSerializer,
            "multipart/form-data": billing_serializers.PortalReadingSerializer,
        },
        responses={201: billing_serializers.PortalReadingSerializer},
    )
    @idempotent
    def create(self, request, *args, **kwargs):
        """Send a reading, as JSON or as a form with a photo (source PORTAL).

        Only the INDIVIDUAL meters of your estate take readings: another meter (COLLECTIVE,
        SHARED, INCLUDED) is a 403 `permission_denied`, whatever the body. A meter read
        automatically (`communication_type` not NONE): 409 `conflict`. A reading
        dated before your lease of the meter: 400. A photo
        that is not a JPEG or PNG image by its content: 400; larger than the limit: 413 (a
        body larger than the limit and 64 KB of form is refused before it is read).
        The usual errors of a reading: 409 `duplicate_reading`, 403 `reading_locked`.
        """
        meter = self.meter()
        if meter.communication_type != "NONE":
            raise Conflict(
                f"This meter is read automatically ({meter.communication_type}): "
                "it takes no reading from the portal."
            )
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        self.check_within_lease(meter, values["reading_date"])
        photo = values.pop("photo", None)
        item = dataclasses.replace(reading_input(values), lease=self.lease_of(meter))
        stored = ""
        if photo is not None:
            stored = photos.store_photo(account_id=meter.account_id, photo=photo)
            reading_type = values.get("reading_type", "PHOTO")
            item = dataclasses.replace(item, photo=stored, reading_type=reading_type)
        try:
            result = services.create_readings(
                meter=meter, items=[item], actor=actor_of(request, "PORTAL")
            )
            if result.errors:
                raise_item_error(result.errors[0])
        except BaseException:
            if stored:  # nothing is kept of a refused reading
                photos.delete_photo(stored)
            raise
        # Shown as the list shows it (``selectors.portal_readings``).
        reading = self.get_queryset().get(pk=result.accepted[0].pk)
        return Response(self.get_serializer(reading).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=PHOTO_RESPONSES, filters=False)
    @action(detail=True, methods=["get"])
    def photo(self, request, *args, **kwargs):
        """The photo sent with the reading (JPEG or PNG); 404 when it has none, or when on a
        meter you share with others it is someone else's."""
        reading = self.get_object()
        if not reading.shows_reader:
            raise exceptions.NotFound("This reading has no photo.")
        return photo_response(reading)


# --- consumption and the allowed range ---------------------------------------------------------


@extend_schema(
    tags=TAGS,
    parameters=[METER_ID, MeterConsumptionQuerySerializer],
    responses={200: ConsumptionBucketSerializer(many=True)},
)
class PortalMeterConsumptionView(PortalMixin, MeterConsumptionView):
    """A register's consumption per day, week, month or year between two dates, as the
    account API's ``/meters/{id}/consumption/`` computes it, from the start of your lease of
    the meter on (an earlier ``start`` is a 400)."""

    def query(self) -> dict:
        values = super().query()
        since = self.meter_since()[self.meter().pk]
        if values["start"] < since:
            raise exceptions.ValidationError(
                {"start": [f"Your lease of this meter starts on {since}: start from then on."]}
            )
        return values


class AllowedRangeQuerySerializer(serializers.Serializer):
    reading_date = ReadingDateField(
        help_text="The reading's date: ISO 8601; without offset in the account's time zone; "
        "a date alone is 00:00 there."
    )
    register_id = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="A register of the meter (default: its default register).",
    )
    register = serializers.CharField(
        required=False, max_length=50, help_text="A register's code, instead of register_id."
    )

    def validate_reading_date(self, value: dt.datetime) -> dt.datetime:
        if messages := services.date_errors(value, timezone.now()):
            raise serializers.ValidationError(messages)
        return value


def _value_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=CONSUMPTION_DIGITS, decimal_places=6, **kwargs)


class AllowedRangeSerializer(serializers.Serializer):
    reading_date = AccountDateTimeField()
    register_id = serializers.IntegerField(source="register.pk")
    register = serializers.CharField(source="register.code")
    min_value = _value_field(
        help_text="The lowest value without a flag: never below previous_value (lower is "
        "NEGATIVE; on a meter with max_value it would be a whole counter turn)."
    )
    max_value = _value_field(
        allow_null=True,
        help_text="The highest value without a flag; null when there is no baseline (fewer "
        "earlier intervals within your lease than the account's anomaly_min_intervals). "
        "Capped at the meter's max_value and, on a meter without one, at next_value.",
    )
    previous_value = _value_field(
        allow_null=True,
        help_text="What the reading would count from: the reading just before it (or the new "
        "device's initial value after a replacement); null when no reading of your lease "
        "comes before it (an earlier one, a former occupant's, is not shown).",
    )
    previous_reading_date = AccountDateTimeField(allow_null=True)
    next_value = _value_field(
        allow_null=True, help_text="The register's next reading after reading_date, if any."
    )
    next_reading_date = AccountDateTimeField(allow_null=True)
    baseline_intervals = serializers.IntegerField(
        help_text="Earlier intervals (not NEGATIVE) within your lease, ending within "
        "anomaly_baseline_days."
    )
    baseline_daily_consumption = _value_field(
        allow_null=True,
        help_text="The baseline: their consumption per day (× multiplier and transformer "
        "ratio); null without a baseline.",
    )
    is_locked = serializers.BooleanField(
        help_text="A closed billing period reaches reading_date: a reading there is refused."
    )


@extend_schema(
    tags=TAGS,
    parameters=[METER_ID, AllowedRangeQuerySerializer],
    responses={200: AllowedRangeSerializer},
)
class PortalAllowedRangeView(PortalMixin, generics.GenericAPIView):
    """The values a reading at `reading_date` could take without an anomaly flag.

    CONTRACT §4.2 with the account's thresholds, from the register's reading just before
    `reading_date` and the baseline of its earlier intervals, counting only the readings
    dated within your lease (CONTRACT §6: the reading at its start may be the lower bound;
    until you have a baseline of your own, `max_value` is null; a `reading_date` before your
    lease is a 400): the rate of the new interval
    must stay within the deviation band and below the spike threshold, and not drop below
    the drop threshold; the bounds are rounded inwards to the meter's `precision_digits`.
    Without a baseline `max_value` is null. On a meter with `max_value` (a rollover counter)
    a value below `previous_value` would be read as a whole counter turn: `min_value` stays
    at `previous_value` and `max_value` at most the counter's `max_value`. A later reading is
    not re-flagged here, but on a meter without `max_value` it caps `max_value`: above it,
    that reading would turn NEGATIVE.
    """

    queryset = Meter.objects.all()
    pagination_class = None
    filter_backends = ()

    def get(self, request, *args, **kwargs):
        params = AllowedRangeQuerySerializer(
            data=request.query_params, context=self.get_serializer_context()
        )
        params.is_valid(raise_exception=True)
        values = params.validated_data
        meter = self.meter()
        self.check_within_lease(meter, values["reading_date"])
        result = readings_selectors.allowed_range(
            meter=meter,
            register=self.register(meter, values),
            reading_date=values["reading_date"],
            since=self.visible_since(meter),
        )
        return Response(AllowedRangeSerializer(result).data)

    def register(self, meter: Meter, values: dict) -> Register:
        registers = Register.objects.filter(meter=meter)
        if "register_id" in values:
            register = registers.filter(pk=values["register_id"]).first()
            field, message = "register_id", "No register with this id on this meter."
        elif "register" in values:
            register = registers.filter(code=values["register"]).first()
            field, message = "register", f"No register {values['register']!r} on this meter."
        else:
            register = registers.filter(is_default=True).first()
            field, message = "register_id", "This meter has no default register: name one."
        if register is None:
            raise exceptions.ValidationError({field: [message]})
        return register


# --- statements --------------------------------------------------------------------------------


@extend_schema(tags=TAGS)
class PortalStatementViewSet(PortalMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The tenant's statements: one per closed billing period and lease of the tenant with
    lines in it, newest period first. Draft periods are not shown."""

    queryset = Charge.objects.all()
    serializer_class = billing_serializers.PortalStatementSummarySerializer
    filter_backends = ()  # a summary per period and lease: no filter, search nor ordering

    def get_queryset(self):
        return (
            super()
            .get_queryset()
            .values(
                "billing_period_id",
                "billing_period__name",
                "billing_period__start_date",
                "billing_period__end_date",
                "billing_period__currency",
                "lease_id",
                "lease__reference",
            )
            .annotate(
                amount=Sum("amount"), vat_amount=Sum("vat_amount"), total_amount=Sum("total_amount")
            )
            .order_by("-billing_period__start_date", "billing_period_id", "lease_id")
        )


@extend_schema(
    tags=TAGS,
    parameters=[
        path_id("billing_period_id", "A closed billing period with lines of your lease."),
        path_id("lease_id", "One of your leases."),
    ],
)
class PortalStatementView(PortalMixin, StatementView):
    """What one of the tenant's leases owes for a closed billing period: JSON, CSV or a
    printable HTML page (`?format=`), as the account API's statement. A draft period, or a
    period without lines of this lease: 404."""

    def billing_period(self) -> BillingPeriod:
        if not hasattr(self, "_billing_period"):
            period = (
                self.for_tenant(BillingPeriod.objects.select_related("account", "place"))
                .filter(pk=self.kwargs["billing_period_id"])
                .first()
            )
            if period is None:
                raise exceptions.NotFound("No closed billing period with this id for you.")
            self._billing_period = period
        return self._billing_period

    def lease(self) -> Lease:
        lines = Charge.objects.filter(billing_period=self.billing_period(), lease=OuterRef("pk"))
        lease = (
            self.get_queryset()
            .filter(Exists(lines), pk=self.kwargs["lease_id"])
            .select_related("tenant", "estate")
            .first()
        )
        if lease is None:
            raise exceptions.NotFound("No lease of yours with lines in this billing period.")
        return lease
