"""Serializer fields for the contract's conventions (CONTRACT §2)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from rest_framework import serializers


class AccountDateTimeField(serializers.DateTimeField):
    """ISO 8601 in, UTC with ``Z`` out; an input without offset is in the account's time zone."""

    def default_timezone(self):
        request = self.context.get("request")
        account = getattr(request, "account", None) or self.context.get("account")
        return account.zone if account is not None else dt.UTC

    def to_internal_value(self, value):
        # A naive time repeated by a DST change back (02:30 twice) is its first occurrence.
        parsed = super().to_internal_value(value)
        try:
            # In UTC: two aware times in one zone compare by wall clock, so 02:30+02:00 and
            # 02:30+01:00 on the night of the change would otherwise be taken as equal.
            return parsed.astimezone(dt.UTC)
        except (OverflowError, ValueError):
            self.fail("invalid", format="a date-time between years 1 and 9999 in UTC")

    def to_representation(self, value):
        if not value:
            return None
        if timezone.is_naive(value):
            value = timezone.make_aware(value, dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class OptionalTextField(serializers.CharField):
    """Optional text: null is taken as "no value" and stored as an empty string."""

    def validate_empty_values(self, data):
        if data is None:
            return True, ""
        return super().validate_empty_values(data)


class AccountRelatedField(serializers.PrimaryKeyRelatedField):
    """A reference by id to an object of the request's account; another account's is a 400."""

    default_error_messages = {
        "does_not_exist": "No object with id {pk_value} in this account.",
        "incorrect_type": "Expected an integer id, got {data_type}.",
    }

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        account = getattr(request, "account", None) or self.context.get("account")
        return queryset.filter(account=account) if account is not None else queryset.none()

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, str) and not data.strip().isdigit()):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


def no_null_characters(value: object) -> None:
    """PostgreSQL text and jsonb cannot hold U+0000: refuse it anywhere in a JSON value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            raise serializers.ValidationError("Null characters are not allowed.")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
