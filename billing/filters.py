"""Filters of the billing resources (CONTRACT §5): an unknown value is a 400, not an empty list."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema_field

from billing.models import (
    AllocationRule,
    BillingPeriod,
    Charge,
    Lease,
    MeterShare,
    Tariff,
    Tenant,
    days_overlap,
)
from metering.api.filters import FilterSet, IdFilter, StrictBooleanFilter
from metering.models import METER_TYPE_CHOICES


class TenantFilter(FilterSet):
    external_reference = django_filters.CharFilter()
    email = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Tenant
        fields = ["external_reference", "email"]


class LeaseFilter(FilterSet):
    tenant_id = IdFilter(field_name="tenant_id")
    estate_id = IdFilter(field_name="estate_id")
    place_id = IdFilter(field_name="estate__place_id")
    is_current = StrictBooleanFilter(
        method="filter_is_current",
        label="true: leases running today (account time zone); false: the others.",
    )

    class Meta:
        model = Lease
        fields = ["tenant_id", "estate_id", "place_id", "is_current"]

    @extend_schema_field({"type": "string", "enum": ["true", "false"]})
    def filter_is_current(self, queryset, name, value):
        today = self.request.account.today()
        current = days_overlap("start_date", "end_date", today, today)
        return queryset.filter(current) if value else queryset.exclude(current)


class MeterShareFilter(FilterSet):
    meter_id = IdFilter(field_name="meter_id")
    estate_id = IdFilter(field_name="estate_id")

    class Meta:
        model = MeterShare
        fields = ["meter_id", "estate_id"]


class TariffFilter(FilterSet):
    meter_type = django_filters.ChoiceFilter(choices=METER_TYPE_CHOICES)
    tariff_slot = django_filters.CharFilter()
    valid_on = django_filters.DateFilter(
        method="filter_valid_on", label="Tariffs valid that day (YYYY-MM-DD)."
    )

    class Meta:
        model = Tariff
        fields = ["meter_type", "tariff_slot", "valid_on"]

    def filter_valid_on(self, queryset, name, value):
        return queryset.filter(days_overlap("valid_from", "valid_to", value, value))


class AllocationRuleFilter(FilterSet):
    meter_id = IdFilter(field_name="meter_id")
    basis = django_filters.ChoiceFilter(choices=AllocationRule.BASES)

    class Meta:
        model = AllocationRule
        fields = ["meter_id", "basis"]


class BillingPeriodFilter(FilterSet):
    place_id = IdFilter(field_name="place_id")
    status = django_filters.ChoiceFilter(choices=BillingPeriod.STATUSES)

    class Meta:
        model = BillingPeriod
        fields = ["place_id", "status"]


class ChargeFilter(FilterSet):
    lease_id = IdFilter(field_name="lease_id")
    meter_id = IdFilter(field_name="meter_id")
    estate_id = IdFilter(field_name="estate_id")
    is_vacancy = StrictBooleanFilter(field_name="is_vacancy")

    class Meta:
        model = Charge
        fields = ["lease_id", "meter_id", "estate_id", "is_vacancy"]
