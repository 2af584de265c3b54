"""Filters of the metering resources (CONTRACT §3)."""

from __future__ import annotations

import django_filters

from metering.api.filters import FilterSet, IdFilter, StrictBooleanFilter
from metering.models import (
    COMMUNICATION_CHOICES,
    METER_TYPE_CHOICES,
    Estate,
    Gateway,
    Meter,
    Place,
    Register,
    ServicePlace,
)


class PlaceFilter(FilterSet):
    code = django_filters.CharFilter()
    city = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Place
        fields = ["code", "city"]


class EstateFilter(FilterSet):
    place_id = IdFilter(field_name="place_id")
    usage = django_filters.ChoiceFilter(choices=Estate._meta.get_field("usage").choices)

    class Meta:
        model = Estate
        fields = ["place_id", "usage"]


class ServicePlaceFilter(FilterSet):
    place_id = IdFilter(field_name="place_id")
    meter_type = django_filters.ChoiceFilter(choices=METER_TYPE_CHOICES)

    class Meta:
        model = ServicePlace
        fields = ["place_id", "meter_type"]


class GatewayFilter(FilterSet):
    place_id = IdFilter(field_name="place_id")
    communication_type = django_filters.ChoiceFilter(choices=COMMUNICATION_CHOICES)

    class Meta:
        model = Gateway
        fields = ["place_id", "communication_type"]


class MeterFilter(FilterSet):
    place_id = IdFilter(field_name="place_id")
    estate_id = IdFilter(field_name="estate_id")
    service_place_id = IdFilter(field_name="service_place_id")
    gateway_id = IdFilter(field_name="gateway_id")
    parent_meter_id = IdFilter(field_name="parent_meter_id")
    meter_type = django_filters.ChoiceFilter(choices=METER_TYPE_CHOICES)
    status = django_filters.ChoiceFilter(choices=Meter.STATUSES)
    billing_type = django_filters.ChoiceFilter(choices=Meter.BILLING_TYPES)
    billing_direction = django_filters.ChoiceFilter(choices=Meter.BILLING_DIRECTIONS)
    communication_type = django_filters.ChoiceFilter(choices=COMMUNICATION_CHOICES)
    is_main_meter = StrictBooleanFilter(field_name="is_main_meter")

    class Meta:
        model = Meter
        fields = [
            "place_id",
            "estate_id",
            "service_place_id",
            "gateway_id",
            "parent_meter_id",
            "meter_type",
            "status",
            "billing_type",
            "billing_direction",
            "communication_type",
            "is_main_meter",
        ]


class RegisterFilter(FilterSet):
    direction = django_filters.ChoiceFilter(choices=Register.DIRECTIONS)
    is_default = StrictBooleanFilter(field_name="is_default")
    tariff_slot = django_filters.CharFilter()

    class Meta:
        model = Register
        fields = ["direction", "is_default", "tariff_slot"]
