"""Filters of readings (CONTRACT §4.1, §4.4): dates are days of the account's time zone."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field

from metering.api.filters import FilterSet, IdFilter, StrictBooleanFilter
from readings import domain
from readings.models import READING_TYPES, SOURCES, PeriodReading, Reading


def _midnight(filterset: FilterSet, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=filterset.request.account.zone)


class ReadingFilter(FilterSet):
    reading_type = django_filters.ChoiceFilter(choices=READING_TYPES)
    is_billing_reading = StrictBooleanFilter(field_name="is_billing_reading")
    register_id = IdFilter(field_name="register_id")
    start_date = django_filters.DateFilter(
        method="filter_start_date", label="Readings on or after this day (account time zone)."
    )
    end_date = django_filters.DateFilter(
        method="filter_end_date", label="Readings on or before this day (account time zone)."
    )
    anomaly = django_filters.ChoiceFilter(
        choices=[(flag, flag) for flag in domain.FLAGS], method="filter_anomaly"
    )
    has_anomaly = StrictBooleanFilter(method="filter_has_anomaly")

    class Meta:
        model = Reading
        fields = [
            "reading_type",
            "is_billing_reading",
            "register_id",
            "start_date",
            "end_date",
            "anomaly",
            "has_anomaly",
        ]

    def filter_start_date(self, queryset, name, value):
        return queryset.filter(reading_date__gte=_midnight(self, value))

    def filter_end_date(self, queryset, name, value):
        return queryset.filter(reading_date__lt=_midnight(self, value + dt.timedelta(days=1)))

    def filter_anomaly(self, queryset, name, value):
        return queryset.filter(**{domain.FLAG_FIELDS[value]: True})

    @extend_schema_field({"type": "string", "enum": ["true", "false"]})
    def filter_has_anomaly(self, queryset, name, value):
        any_flag = Q()
        for field in domain.FLAG_FIELDS.values():
            any_flag |= Q(**{field: True})
        return queryset.filter(any_flag) if value else queryset.exclude(any_flag)


class AccountReadingFilter(ReadingFilter):
    meter_id = IdFilter(field_name="meter_id")
    place_id = IdFilter(field_name="meter__place_id")
    estate_id = IdFilter(field_name="meter__estate_id")

    class Meta(ReadingFilter.Meta):
        fields = [*ReadingFilter.Meta.fields, "meter_id", "place_id", "estate_id"]


class PeriodReadingFilter(FilterSet):
    """Period readings of a meter (CONTRACT §4.4): dates are the periods' own days."""

    start_date = django_filters.DateFilter(
        field_name="start_date", lookup_expr="gte", label="Periods starting on or after this day."
    )
    end_date = django_filters.DateFilter(
        field_name="end_date", lookup_expr="lte", label="Periods ending on or before this day."
    )
    is_estimated = StrictBooleanFilter(field_name="is_estimated")
    source = django_filters.ChoiceFilter(choices=SOURCES)
    anomaly = django_filters.ChoiceFilter(
        choices=[(flag, flag) for flag in domain.FLAGS], method="filter_anomaly"
    )
    has_anomaly = StrictBooleanFilter(method="filter_has_anomaly")

    class Meta:
        model = PeriodReading
        fields = ["start_date", "end_date", "is_estimated", "source", "anomaly", "has_anomaly"]

    # The same flag filters as index readings'.
    filter_anomaly = ReadingFilter.filter_anomaly
    filter_has_anomaly = ReadingFilter.filter_has_anomaly


class AccountPeriodReadingFilter(PeriodReadingFilter):
    meter_id = IdFilter(field_name="meter_id")
    place_id = IdFilter(field_name="meter__place_id")
    estate_id = IdFilter(field_name="meter__estate_id")

    class Meta(PeriodReadingFilter.Meta):
        fields = [*PeriodReadingFilter.Meta.fields, "meter_id", "place_id", "estate_id"]
