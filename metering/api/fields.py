"""Serializer fields for the contract's conventions (CONTRACT §2)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from rest_framework import serializers

from metering import domain


class DateField(serializers.DateField):
    """``YYYY-MM-DD`` within the product's calendar (``metering.domain.FIRST_DATE`` to
    ``LAST_DATE``); a date outside it is a 400, never a computation that overflows later."""

    default_error_messages = {"out_of_range": domain.DATE_RANGE_MESSAGE}

    def to_internal_value(self, value):
        day = super().to_internal_value(value)
        if not domain.date_in_range(day):
            self.fail("out_of_range")
        return day


class AccountDateTimeField(serializers.DateTimeField):
    """ISO 8601 in, UTC with ``Z`` out; an input without offset is in the account's time zone.

    Its calendar day as written must lie within the product's dates (``metering.domain``):
    ``0001-01-01`` in Paris is before the first instant Python represents in UTC.
    """

    default_error_messages = {"out_of_range": domain.DATE_RANGE_MESSAGE}

    def enforce_timezone(self, value):
        # Before any conversion: converting a time at the ends of the calendar overflows.
        if not domain.date_in_range(value):
            self.fail("out_of_range")
        return super().enforce_timezone(value)

    def default_timezone(self):
        request = self.context.get("request")
        account = getattr(request, "account", None) or self.context.get("account")
        return account.zone if account is not None else dt.UTC

    def to_internal_value(self, value):
        # A naive time repeated by a DST change back (02:30 twice) is its first occurrence.
        parsed = super().to_internal_value(value)
        # In UTC: two aware times in one zone compare by wall clock, so 02:30+02:00 and
        # 02:30+01:00 on the night of the change would otherwise be taken as equal. Within the
        # product's calendar (``enforce_timezone``) the conversion cannot overflow.
        return parsed.astimezone(dt.UTC)

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
        if isinstance(data, float):
            # JSON's 1e400 is an infinite float, and int() of it overflows: not is_integer().
            if not data.is_integer():
                self.fail("incorrect_type", data_type="a number that is not a whole number")
            data = int(data)
        if isinstance(data, bool) or (isinstance(data, str) and not data.strip().isdigit()):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


def storable_json(value: object) -> None:
    """A free JSON value that PostgreSQL's jsonb can store (``metering.domain.json_problem``)."""
    if (problem := domain.json_problem(value)) is not None:
        raise serializers.ValidationError(problem)
