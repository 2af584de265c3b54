"""Serializers of index readings (CONTRACT §4.1, §4.3): field validation only."""

from __future__ import annotations

import datetime as dt
import re

from django.utils.dateparse import parse_date
from rest_framework import serializers

from metering.api.fields import AccountDateTimeField, AccountRelatedField
from metering.api.viewsets import BaseModelSerializer
from readings import domain
from readings.models import Reading

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
