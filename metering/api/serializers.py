"""Serializers of the metering resources: field validation only (rules live on the models)."""

from __future__ import annotations

from rest_framework import serializers

from billing.models import Tariff
from metering import domain
from metering.api.fields import AccountRelatedField, storable_json
from metering.api.viewsets import BaseModelSerializer
from metering.models import Account, Estate, Gateway, Meter, Place, Register, ServicePlace

TIMESTAMPS = ("id", "created_at", "updated_at")


class AccountSettingsSerializer(serializers.Serializer):
    anomaly_deviation_ratio = serializers.DecimalField(max_digits=8, decimal_places=4)
    anomaly_spike_ratio = serializers.DecimalField(max_digits=8, decimal_places=4)
    anomaly_drop_ratio = serializers.DecimalField(max_digits=8, decimal_places=4)
    anomaly_baseline_days = serializers.IntegerField()
    anomaly_min_intervals = serializers.IntegerField()


class AccountSerializer(BaseModelSerializer):
    settings = AccountSettingsSerializer(source="*", read_only=True)
    scopes = serializers.SerializerMethodField()

    class Meta:
        model = Account
        fields = (
            "id",
            "name",
            "slug",
            "currency",
            "timezone",
            "settings",
            "scopes",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    def get_scopes(self, account: Account) -> list[str]:
        """The scopes the request's credential holds in this account."""
        request = self.context.get("request")
        return sorted(getattr(request, "scopes", ()))


class PlaceSerializer(BaseModelSerializer):
    class Meta:
        model = Place
        fields = (
            "id",
            "account_id",
            "name",
            "code",
            "address_line1",
            "address_line2",
            "postal_code",
            "city",
            "country",
            "latitude",
            "longitude",
            "surface_m2",
            "created_at",
            "updated_at",
        )
        read_only_fields = TIMESTAMPS


class EstateSerializer(BaseModelSerializer):
    place_id = AccountRelatedField(source="place", queryset=Place.objects.all())

    class Meta:
        model = Estate
        fields = (
            "id",
            "account_id",
            "place_id",
            "code",
            "name",
            "floor",
            "surface_m2",
            "shares",
            "usage",
            "created_at",
            "updated_at",
        )
        read_only_fields = TIMESTAMPS


class ServicePlaceSerializer(BaseModelSerializer):
    place_id = AccountRelatedField(source="place", queryset=Place.objects.all())

    class Meta:
        model = ServicePlace
        fields = (
            "id",
            "account_id",
            "place_id",
            "meter_type",
            "provider",
            "contract_reference",
            "delivery_point",
            "created_at",
            "updated_at",
        )
        read_only_fields = TIMESTAMPS


class GatewaySerializer(BaseModelSerializer):
    place_id = AccountRelatedField(
        source="place", queryset=Place.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = Gateway
        fields = (
            "id",
            "account_id",
            "name",
            "communication_type",
            "identifier",
            "place_id",
            "last_seen_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = TIMESTAMPS


class RegisterSerializer(BaseModelSerializer):
    account_id = serializers.UUIDField(
        write_only=True, required=False, help_text="Optional: must be your key's account."
    )
    meter_id = serializers.IntegerField(read_only=True)
    unit = serializers.ChoiceField(
        choices=sorted({u for units in domain.UNITS.values() for u in units}),
        required=False,
        help_text="Defaults to the meter's unit; must measure the meter type's quantity.",
    )

    class Meta:
        model = Register
        fields = (
            "id",
            "account_id",
            "meter_id",
            "code",
            "obis_code",
            "name",
            "direction",
            "tariff_slot",
            "unit",
            "transformer_ratio",
            "conversion_factor",
            "is_default",
            "created_at",
            "updated_at",
        )
        read_only_fields = TIMESTAMPS


class MeterSerializer(BaseModelSerializer):
    unit = serializers.ChoiceField(
        choices=sorted({u for units in domain.UNITS.values() for u in units}),
        required=False,
        help_text="Defaults by type (kWh, m3, L or kg); must measure the type's quantity.",
    )
    parent_meter_id = AccountRelatedField(
        source="parent_meter", queryset=Meter.objects.all(), required=False, allow_null=True
    )
    place_id = AccountRelatedField(
        source="place", queryset=Place.objects.all(), required=False, allow_null=True
    )
    estate_id = AccountRelatedField(
        source="estate", queryset=Estate.objects.all(), required=False, allow_null=True
    )
    service_place_id = AccountRelatedField(
        source="service_place",
        queryset=ServicePlace.objects.all(),
        required=False,
        allow_null=True,
    )
    gateway_id = AccountRelatedField(
        source="gateway", queryset=Gateway.objects.all(), required=False, allow_null=True
    )
    tariff_id = AccountRelatedField(
        source="tariff", queryset=Tariff.objects.all(), required=False, allow_null=True
    )
    properties = serializers.JSONField(
        required=False, validators=[storable_json], help_text="A free JSON object."
    )
    registers = RegisterSerializer(many=True, read_only=True)

    class Meta:
        model = Meter
        fields = (
            "id",
            "account_id",
            "name",
            "serial_number",
            "meter_type",
            "unit",
            "billing_type",
            "billing_direction",
            "communication_type",
            "status",
            "multiplier",
            "precision_digits",
            "max_value",
            "is_main_meter",
            "parent_meter_id",
            "place_id",
            "estate_id",
            "service_place_id",
            "gateway_id",
            "tariff_id",
            "manufacturer",
            "model_reference",
            "description",
            "location",
            "notes",
            "installation_date",
            "last_inspection_date",
            "next_inspection_date",
            "reading_interval",
            "properties",
            "last_reading_value",
            "last_reading_at",
            "registers",
            "created_at",
            "updated_at",
        )
        read_only_fields = (*TIMESTAMPS, "last_reading_value", "last_reading_at")

    def validate_properties(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Properties must be a JSON object.")
        return value
