"""Views of index and period readings (CONTRACT §4.1, §4.3, §4.4): declarations over services."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from metering.api.idempotency import idempotent
from metering.api.viewsets import AccountScopedMixin, AccountScopedViewSet
from metering.errors import BatchTooLarge, DuplicateReading, Overlap, ReadingLocked
from metering.models import KeyBase, Meter
from readings import filters, periods, photos, services
from readings.api import serializers
from readings.models import PeriodReading, Reading

MAX_BATCH = 500
ORDERING_FIELDS = ("id", "reading_date", "value", "consumption", "created_at", "updated_at")
SEARCH_FIELDS = ("notes", "reader_name", "register__code")


def actor_of(request, source: str = "API") -> services.Actor:
    """Who makes a request: the key's prefix, or the member's username."""
    if isinstance(request.auth, KeyBase):
        return services.Actor(f"key:{request.auth.prefix}", source)
    return services.Actor(f"user:{request.user.get_username()}", source)


def reading_input(values: dict[str, Any]) -> services.ReadingInput:
    """The engine's input from a reading serializer's validated data."""
    return services.ReadingInput(
        reading_date=values["reading_date"],
        value=values["value"],
        register_code=values.get("register", {}).get("code"),
        register_id=values.get("register_id"),
        reading_type=values.get("reading_type", "MANUAL"),
        is_estimated=values.get("is_estimated"),
        is_billing_reading=values.get("is_billing_reading", False),
        lease=values.get("lease"),
        photo_url=values.get("photo_url", ""),
        reader_name=values.get("reader_name", ""),
        notes=values.get("notes", ""),
    )


def photo_response(reading: Reading) -> FileResponse:
    """The photo stored with ``reading`` (``readings.photos``), or 404 when it has none."""
    name = reading.photo.name if reading.photo else ""
    if not name or not reading.photo.storage.exists(name):
        raise exceptions.NotFound("This reading has no photo.")
    response = FileResponse(
        reading.photo.storage.open(name, "rb"), content_type=photos.media_type(name)
    )
    extension = name.rsplit(".", 1)[-1]
    response["Content-Disposition"] = f'inline; filename="reading-{reading.pk}.{extension}"'
    response["Cache-Control"] = "private, no-store"
    return response


PHOTO_RESPONSES = {
    (200, media_type): OpenApiResponse(OpenApiTypes.BINARY, description="The photo.")
    for media_type in photos.MEDIA_TYPES.values()
}


def raise_item_error(error: services.ItemError) -> None:
    if error.code == "duplicate_reading":
        raise DuplicateReading(error.message)
    if error.code == "reading_locked":
        raise ReadingLocked(error.message)
    raise exceptions.ValidationError(error.details)


class MeterChildMixin:
    """A route under ``meters/{meter_id}/``: the meter must be in the request's account (404
    before anything else), and ``meter()`` is it."""

    def meter(self) -> Meter:
        if not hasattr(self, "_meter"):
            self._meter = get_object_or_404(
                Meter.objects.for_account(self.request.account).select_related("account"),
                pk=self.kwargs["meter_id"],
            )
        return self._meter

    def check_parents(self) -> None:
        self.meter()


def run_batch(view, *, noun: str, to_input, invalid_message: str, create) -> Response:
    """A batch endpoint (CONTRACT §4.3): 1 to 500 items, each validated by the view's
    serializer on its own, the valid ones created by ``create`` in one transaction, the others
    reported by their index."""
    body = view.request.data
    items = body.get("readings") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise exceptions.ValidationError({"readings": [f"Send a list of 1 to {MAX_BATCH} {noun}."]})
    if len(items) > MAX_BATCH:
        raise BatchTooLarge(f"A batch holds 1 to {MAX_BATCH} {noun}; this one has {len(items)}.")
    # One serializer validates every item, as a ListSerializer would, keeping each result.
    child = view.get_serializer()
    inputs, positions, errors = [], [], []
    for index, item in enumerate(items):
        try:
            inputs.append(to_input(child.run_validation(item)))
            positions.append(index)
        except exceptions.ValidationError as exc:
            detail = (
                exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            )
            errors.append(services.ItemError(index, "validation_error", invalid_message, detail))
    result = create(meter=view.meter(), items=inputs, actor=actor_of(view.request))
    errors += [
        services.ItemError(positions[e.index], e.code, e.message, e.details) for e in result.errors
    ]
    errors.sort(key=lambda error: error.index)
    payload = {
        "accepted": len(result.accepted),
        "rejected": len(errors),
        "readings": view.get_serializer(result.accepted, many=True).data,
        "errors": [
            {"index": e.index, "code": e.code, "message": e.message, "details": e.details}
            for e in errors
        ],
    }
    return Response(payload, status=status.HTTP_201_CREATED)


class ReadingListMixin:
    serializer_class = serializers.ReadingSerializer
    ordering = ["reading_date", "id"]
    ordering_fields = ORDERING_FIELDS
    search_fields = SEARCH_FIELDS
    scope = "readings"


@extend_schema(
    tags=["readings"],
    parameters=[OpenApiParameter("meter_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
)
class MeterReadingViewSet(ReadingListMixin, MeterChildMixin, AccountScopedViewSet):
    """Index readings of one meter, on any of its registers."""

    queryset = Reading.objects.all()
    filterset_class = filters.ReadingFilter

    def scope_queryset(self, queryset):
        return queryset.filter(meter=self.meter()).select_related("register")

    @extend_schema(responses={201: serializers.ReadingSerializer})
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.create_readings(
            meter=self.meter(),
            items=[reading_input(serializer.validated_data)],
            actor=actor_of(request),
        )
        if result.errors:
            raise_item_error(result.errors[0])
        return Response(
            self.get_serializer(result.accepted[0]).data, status=status.HTTP_201_CREATED
        )

    def update_object(self, instance, values):
        register = values.pop("register", None)
        register_id = values.pop("register_id", None)
        if (register is not None and register["code"] != instance.register.code) or (
            register_id is not None and register_id != instance.register_id
        ):
            raise exceptions.ValidationError(
                {"register": ["A reading stays on its register: delete it and create another."]}
            )
        return services.update_reading(
            reading=instance, values=values, actor=actor_of(self.request)
        )

    def delete_object(self, instance):
        services.delete_reading(reading=instance, actor=actor_of(self.request))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "register_id", OpenApiTypes.INT, description="Default: the default register."
            )
        ],
        responses={200: serializers.ReadingSerializer},
        filters=False,
    )
    @action(detail=False, methods=["get"])
    def latest(self, request, *args, **kwargs):
        """The most recent reading of the default register (or of ``register_id``)."""
        raw = request.query_params.get("register_id")
        readings = self.get_queryset()
        if raw is None:
            readings = readings.filter(register__is_default=True)
        elif raw.isdigit():
            readings = readings.filter(register_id=int(raw))
        else:
            raise exceptions.ValidationError({"register_id": ["Must be a whole number."]})
        reading = readings.order_by("-reading_date").first()
        if reading is None:
            raise exceptions.NotFound("This meter has no reading yet.")
        return Response(self.get_serializer(reading).data)

    @extend_schema(responses=PHOTO_RESPONSES, filters=False)
    @action(detail=True, methods=["get"])
    def photo(self, request, *args, **kwargs):
        """The photo sent with the reading through the portal (JPEG or PNG); 404 when none."""
        return photo_response(self.get_object())

    @extend_schema(
        request=serializers.BatchRequestSerializer,
        responses={201: serializers.BatchResultSerializer},
    )
    @action(detail=False, methods=["post"])
    @idempotent
    def batch(self, request, *args, **kwargs):
        """Create 1 to 500 readings: valid ones in one transaction, the others reported."""
        return run_batch(
            self,
            noun="readings",
            to_input=reading_input,
            invalid_message="The reading is invalid.",
            create=services.create_readings,
        )


@extend_schema(tags=["readings"])
class ReadingViewSet(
    ReadingListMixin, AccountScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """Index readings across the account."""

    queryset = Reading.objects.select_related("register")
    filterset_class = filters.AccountReadingFilter


# --- period readings (CONTRACT §4.4) ---------------------------------------------------------

PERIOD_ORDERING_FIELDS = (
    "id",
    "start_date",
    "end_date",
    "consumption",
    "cost",
    "demand_kw",
    "created_at",
    "updated_at",
)


def period_input(values: dict[str, Any]) -> periods.PeriodInput:
    """The services' input from a period reading serializer's validated data."""
    return periods.PeriodInput(
        start_date=values["start_date"],
        end_date=values["end_date"],
        consumption=values["consumption"],
        cost=values.get("cost"),
        cost_currency=values.get("cost_currency") or None,
        demand_kw=values.get("demand_kw"),
        is_estimated=values.get("is_estimated", False),
        notes=values.get("notes", ""),
    )


def raise_period_item_error(error: services.ItemError) -> None:
    if error.code == "overlap":
        raise Overlap(error.message)
    if error.code == "reading_locked":
        raise ReadingLocked(error.message)
    raise exceptions.ValidationError(error.details)


class PeriodReadingListMixin:
    serializer_class = serializers.PeriodReadingSerializer
    ordering = ["start_date", "id"]
    ordering_fields = PERIOD_ORDERING_FIELDS
    search_fields = ("notes",)
    scope = "readings"


@extend_schema(
    tags=["readings"],
    parameters=[OpenApiParameter("meter_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
)
class MeterPeriodReadingViewSet(PeriodReadingListMixin, MeterChildMixin, AccountScopedViewSet):
    """Period readings of one meter: consumption known per period, such as utility bills.

    Two period readings of a meter never share a day (409 `overlap`); a period cannot end after
    today. Anomaly flags follow the index readings' rule with `days = end_date − start_date + 1`,
    each period standing at its `end_date`, and are kept current after every write. A period
    that starts before the lock instant of the meter's default register (closing a billing
    period sets it) is locked: it cannot be changed or deleted, and no period may be created
    or moved to start before that instant (403 `reading_locked`).
    """

    queryset = PeriodReading.objects.all()
    filterset_class = filters.PeriodReadingFilter

    def scope_queryset(self, queryset):
        return (
            queryset.filter(account=self.request.account, meter=self.meter())
            .with_lock()
            .select_related("meter", "account")
        )

    @extend_schema(responses={201: serializers.PeriodReadingSerializer})
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = periods.create_period_readings(
            meter=self.meter(),
            items=[period_input(serializer.validated_data)],
            actor=actor_of(request),
        )
        if result.errors:
            raise_period_item_error(result.errors[0])
        return Response(
            self.get_serializer(result.accepted[0]).data, status=status.HTTP_201_CREATED
        )

    def update_object(self, instance, values):
        return periods.update_period_reading(
            period=instance, values=values, actor=actor_of(self.request)
        )

    def delete_object(self, instance):
        periods.delete_period_reading(period=instance, actor=actor_of(self.request))

    @extend_schema(
        request=serializers.PeriodBatchRequestSerializer,
        responses={201: serializers.PeriodBatchResultSerializer},
    )
    @action(detail=False, methods=["post"])
    @idempotent
    def batch(self, request, *args, **kwargs):
        """Create 1 to 500 period readings: valid ones in one transaction, the others reported."""
        return run_batch(
            self,
            noun="period readings",
            to_input=period_input,
            invalid_message=periods.INVALID_MESSAGE,
            create=periods.create_period_readings,
        )


@extend_schema(tags=["readings"])
class PeriodReadingViewSet(
    PeriodReadingListMixin, AccountScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """Period readings across the account."""

    queryset = PeriodReading.objects.with_lock().select_related("meter", "account")
    filterset_class = filters.AccountPeriodReadingFilter
