"""Views of index readings (CONTRACT §4.1, §4.3): declarations over the readings engine."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from metering.api.idempotency import idempotent
from metering.api.viewsets import AccountScopedMixin, AccountScopedViewSet
from metering.errors import BatchTooLarge, DuplicateReading, ReadingLocked
from metering.models import KeyBase, Meter
from readings import filters, services
from readings.api import serializers
from readings.models import Reading

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


def raise_item_error(error: services.ItemError) -> None:
    if error.code == "duplicate_reading":
        raise DuplicateReading(error.message)
    if error.code == "reading_locked":
        raise ReadingLocked(error.message)
    raise exceptions.ValidationError(error.details)


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
class MeterReadingViewSet(ReadingListMixin, AccountScopedViewSet):
    """Index readings of one meter, on any of its registers."""

    queryset = Reading.objects.all()
    filterset_class = filters.ReadingFilter

    def meter(self) -> Meter:
        if not hasattr(self, "_meter"):
            self._meter = get_object_or_404(
                Meter.objects.for_account(self.request.account), pk=self.kwargs["meter_id"]
            )
        return self._meter

    def check_parents(self) -> None:
        self.meter()

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

    @extend_schema(
        request=serializers.BatchRequestSerializer,
        responses={201: serializers.BatchResultSerializer},
    )
    @action(detail=False, methods=["post"])
    @idempotent
    def batch(self, request, *args, **kwargs):
        """Create 1 to 500 readings: valid ones in one transaction, the others reported."""
        body = request.data
        items = body.get("readings") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise exceptions.ValidationError({"readings": ["Send a list of 1 to 500 readings."]})
        if len(items) > MAX_BATCH:
            raise BatchTooLarge(
                f"A batch holds 1 to {MAX_BATCH} readings; this one has {len(items)}."
            )
        # One serializer validates every item, as a ListSerializer would, keeping each result.
        child = self.get_serializer()
        inputs, positions, errors = [], [], []
        for index, item in enumerate(items):
            try:
                inputs.append(reading_input(child.run_validation(item)))
                positions.append(index)
            except exceptions.ValidationError as exc:
                detail = (
                    exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
                )
                errors.append(
                    services.ItemError(index, "validation_error", "The reading is invalid.", detail)
                )
        result = services.create_readings(meter=self.meter(), items=inputs, actor=actor_of(request))
        errors += [
            services.ItemError(positions[e.index], e.code, e.message, e.details)
            for e in result.errors
        ]
        errors.sort(key=lambda error: error.index)
        payload = {
            "accepted": len(result.accepted),
            "rejected": len(errors),
            "readings": self.get_serializer(result.accepted, many=True).data,
            "errors": [
                {"index": e.index, "code": e.code, "message": e.message, "details": e.details}
                for e in errors
            ],
        }
        return Response(payload, status=status.HTTP_201_CREATED)


@extend_schema(tags=["readings"])
class ReadingViewSet(
    ReadingListMixin, AccountScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """Index readings across the account."""

    queryset = Reading.objects.select_related("register")
    filterset_class = filters.AccountReadingFilter
