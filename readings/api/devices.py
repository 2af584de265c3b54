"""Device replacement and the serial-number history of a meter (CONTRACT §4.6).

``POST /api/v1/meters/{id}/replace/`` goes through ``readings.services.replace_device``, which
records the old device's final reading: it needs the ``meters:write`` scope (it changes the
meter's device) and honours ``Idempotency-Key`` like every POST that creates a reading.
``GET /api/v1/meters/{id}/devices/`` lists the history, oldest first.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.response import Response

from metering.api.idempotency import idempotent
from metering.api.viewsets import AccountScopedMixin, BaseModelSerializer
from metering.models import MeterDevice
from readings import services
from readings.api.serializers import ReadingDateField
from readings.api.views import MeterChildMixin, actor_of

DEVICE_FIELDS = (
    "id",
    "account_id",
    "meter_id",
    "serial_number",
    "manufacturer",
    "model_reference",
    "installed_at",
    "removed_at",
    "initial_value",
    "final_value",
    "registers",
    "created_at",
    "updated_at",
)


class RegisterSwapSerializer(serializers.Serializer):
    register = serializers.CharField(max_length=50, help_text="A register's code.")
    final_value = serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="The old device's last index on this register: recorded as its final reading.",
    )
    initial_value = serializers.DecimalField(
        max_digits=20, decimal_places=6, min_value=0, default=Decimal(0)
    )


class MeterDeviceSerializer(BaseModelSerializer):
    meter_id = serializers.IntegerField(read_only=True)
    registers = serializers.SerializerMethodField(
        help_text="The other registers' indexes at the installation (the default register's "
        "are initial_value and final_value)."
    )

    @extend_schema_field(RegisterSwapSerializer(many=True))
    def get_registers(self, device: MeterDevice) -> list[dict]:
        return [
            {
                "register": code,
                "final_value": None
                if values["final_value"] is None
                else Decimal(values["final_value"]),
                "initial_value": Decimal(values["initial_value"]),
            }
            for code, values in device.register_values.items()
        ]

    class Meta:
        model = MeterDevice
        fields = DEVICE_FIELDS
        read_only_fields = DEVICE_FIELDS


class ReplaceDeviceSerializer(serializers.Serializer):
    replaced_at = ReadingDateField(
        help_text="When the old device was removed: its final reading's date. ISO 8601; "
        "without offset in the account's time zone; a date alone is 00:00."
    )
    final_value = serializers.DecimalField(
        max_digits=20, decimal_places=6, min_value=0, help_text="The old device's last index."
    )
    new_serial_number = serializers.CharField(max_length=100)
    initial_value = serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        min_value=0,
        default=Decimal(0),
        help_text="The new device's index when installed: the next reading's previous_value.",
    )
    manufacturer = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    model_reference = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    registers = RegisterSwapSerializer(
        many=True,
        required=False,
        help_text="For meters with several registers: the others' final and initial indexes "
        "(without an entry a register restarts from 0 and its last interval is not recorded).",
    )


METER_ID = OpenApiParameter("meter_id", OpenApiTypes.INT, OpenApiParameter.PATH)


@extend_schema(tags=["meters"], parameters=[METER_ID])
class MeterDeviceViewSet(
    MeterChildMixin, AccountScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """The devices that served as this meter, oldest first (empty until a replacement)."""

    queryset = MeterDevice.objects.all()
    serializer_class = MeterDeviceSerializer
    ordering = ["id"]  # the order of installation
    ordering_fields = ("id", "installed_at", "removed_at", "created_at", "updated_at")
    search_fields = ("serial_number", "manufacturer", "model_reference")

    def scope_queryset(self, queryset):
        return queryset.filter(meter=self.meter())


@extend_schema(tags=["meters"], parameters=[METER_ID])
class MeterReplaceViewSet(MeterChildMixin, AccountScopedMixin, viewsets.GenericViewSet):
    queryset = MeterDevice.objects.all()
    serializer_class = ReplaceDeviceSerializer
    pagination_class = None
    filter_backends = ()

    @extend_schema(
        request=ReplaceDeviceSerializer,
        responses={201: MeterDeviceSerializer},
        summary="Replace the meter's device",
        description="Records the old device's final reading at `replaced_at`, closes it in "
        "the serial-number history and installs the new one (CONTRACT §4.6). Answers the new "
        "device's history entry.",
    )
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = ReplaceDeviceSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        values["registers"] = [
            services.RegisterSwap(item["register"], item.get("final_value"), item["initial_value"])
            for item in values.get("registers", [])
        ]
        try:
            device = services.replace_device(meter=self.meter(), actor=actor_of(request), **values)
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict) from None
        return Response(MeterDeviceSerializer(device).data, status=status.HTTP_201_CREATED)
