"""Serializers of index and period readings (CONTRACT §4.1, §4.3, §4.4): field validation only."""

from __future__ import annotations

import datetime as dt
import re

from django.utils.dateparse import parse_date
from rest_framework import serializers

from metering.api.fields import AccountDateTimeField, AccountRelatedField, DateField
from metering.api.viewsets import BaseModelSerializer
from metering.domain import CURRENCIES
from readings import domain, photos
from readings.models import PeriodReading, Reading

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ReadingDateField(AccountDateTimeField):
    """An ISO 8601 datetime; a date alone means 00:00 in the account's time zone."""

    def to_internal_value(self, value):
        if isinstance(value, str) and _DATE.fullmatch(value.strip()):
            try:
                day = parse_date(value.strip())
            except ValueError:  # a well-formed but impossible date: 2024-02-30
                day = None
            if day is None:
                self.fail("invalid", format="YYYY-MM-DD or an ISO 8601 date-time")
            value = dt.datetime.combine(day, dt.time.min).isoformat()
        return super().to_internal_value(value)


class ReadingSerializer(BaseModelSerializer):
    # The route that hands out a reading's stored photo (``readings.photos``).
    photo_route = "meter-reading-photo"

    meter_id = serializers.IntegerField(read_only=True)
    register_id = serializers.IntegerField(
        required=False, min_value=1, help_text="A register of the meter (default register)."
    )
    register = serializers.CharField(
        source="register.code",
        required=False,
        max_length=50,
        help_text="A register's code, instead of register_id (default register).",
    )
    reading_date = ReadingDateField(
        help_text="ISO 8601; without offset in the account's time zone; a date alone is 00:00."
    )
    value = serializers.DecimalField(
        max_digits=20, decimal_places=6, min_value=0, help_text="The index, ≥ 0."
    )
    is_estimated = serializers.BooleanField(
        required=False, help_text="Defaults to reading_type == ESTIMATED."
    )
    lease_id = AccountRelatedField(
        source="lease",
        queryset=Reading._meta.get_field("lease").related_model.objects.all(),
        required=False,
        allow_null=True,
    )
    anomaly_flags = serializers.ListField(
        child=serializers.ChoiceField(choices=domain.FLAGS), read_only=True
    )
    is_locked = serializers.BooleanField(read_only=True)
    consumption = serializers.DecimalField(
        max_digits=38, decimal_places=18, read_only=True, allow_null=True
    )

    class Meta:
        model = Reading
        fields = (
            "id",
            "account_id",
            "meter_id",
            "register_id",
            "register",
            "reading_date",
            "value",
            "reading_type",
            "is_estimated",
            "is_billing_reading",
            "lease_id",
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
        read_only_fields = (
            "id",
            "previous_value",
            "consumption",
            "is_rollover",
            "source",
            "created_by",
            "created_at",
            "updated_at",
        )
        extra_kwargs = {
            "photo_url": {
                "help_text": "A link to a photo of the meter. For a photo sent through the "
                "portal: its download route, .../readings/{id}/photo/ (authenticated)."
            }
        }

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if getattr(instance, "photo", None):
            data["photo_url"] = photos.photo_url(
                self.context.get("request"), self.photo_route, instance
            )
        return data


class BatchRequestSerializer(serializers.Serializer):
    """The body of a batch: 1 to 500 readings, each validated on its own."""

    readings = ReadingSerializer(many=True, min_length=1, max_length=500)


class ItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the item in `readings`, from 0.")
    code = serializers.ChoiceField(
        choices=["validation_error", "duplicate_reading", "reading_locked"]
    )
    message = serializers.CharField()
    details = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class BatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    readings = ReadingSerializer(many=True, help_text="The accepted readings.")
    errors = ItemErrorSerializer(many=True)


# --- period readings (CONTRACT §4.4) ---------------------------------------------------------


class PeriodReadingSerializer(BaseModelSerializer):
    """A period reading; the values' rules (dates, overlap, locks) are ``readings.periods``'s."""

    meter_id = serializers.IntegerField(read_only=True)
    start_date = DateField(help_text="The period's first day.")
    end_date = DateField(
        help_text="The period's last day (included): ≥ start_date, not after today."
    )
    consumption = serializers.DecimalField(
        max_digits=24,
        decimal_places=6,
        help_text="Consumption over the period, in the meter's unit (negative: flagged).",
    )
    unit = serializers.CharField(source="meter.unit", read_only=True, help_text="The meter's.")
    cost = serializers.DecimalField(
        max_digits=14, decimal_places=2, required=False, allow_null=True
    )
    cost_currency = serializers.ChoiceField(
        choices=sorted(CURRENCIES),
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="ISO 4217; default (or null): the account's currency.",
    )
    demand_kw = serializers.DecimalField(
        max_digits=14, decimal_places=3, min_value=0, required=False, allow_null=True
    )
    is_estimated = serializers.BooleanField(required=False, default=False)
    anomaly_flags = serializers.ListField(
        child=serializers.ChoiceField(choices=domain.FLAGS), read_only=True
    )
    is_locked = serializers.BooleanField(
        read_only=True, help_text="A closed billing period reaches it: it cannot change."
    )

    class Meta:
        model = PeriodReading
        fields = (
            "id",
            "account_id",
            "meter_id",
            "start_date",
            "end_date",
            "consumption",
            "unit",
            "cost",
            "cost_currency",
            "demand_kw",
            "is_estimated",
            "notes",
            "anomaly_flags",
            "is_locked",
            "source",
            "created_by",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "source", "created_by", "created_at", "updated_at")

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if "cost_currency" in values and not values["cost_currency"]:
            values["cost_currency"] = ""  # the account's currency
        return values


class PeriodBatchRequestSerializer(serializers.Serializer):
    """The body of a batch: 1 to 500 period readings, each validated on its own."""

    readings = PeriodReadingSerializer(many=True, min_length=1, max_length=500)


class PeriodItemErrorSerializer(ItemErrorSerializer):
    code = serializers.ChoiceField(choices=["validation_error", "overlap", "reading_locked"])


class PeriodBatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    readings = PeriodReadingSerializer(many=True, help_text="The accepted period readings.")
    errors = PeriodItemErrorSerializer(many=True)
