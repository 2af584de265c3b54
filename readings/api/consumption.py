"""Consumption over time, per place and the main-meter balance (CONTRACT §4.5).

Thin views over ``readings.selectors``: the query parameters are validated here, the spreading
rules live in ``readings.domain`` and the aggregation in ``readings.selectors``. The routes
need the ``readings`` scope (``readings:*`` covers consumption, CONTRACT §1); the meter or
place in the path is looked up in the request's account before anything else (404).
"""

from __future__ import annotations

import datetime as dt

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response

from metering import domain as metering_domain
from metering.api.fields import DateField
from metering.api.views import path_id
from metering.api.viewsets import AccountScopedMixin
from metering.models import Meter, Place, Register
from readings import domain, selectors
from readings.api.views import MeterChildMixin

# Sums of many stored consumptions (NUMERIC(38, 18)) need more than 38 digits.
CONSUMPTION_DIGITS = 60


def consumption_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=CONSUMPTION_DIGITS, decimal_places=domain.SPREAD_DECIMALS, **kwargs
    )


# --- query parameters ------------------------------------------------------------------------


class RangeQuerySerializer(serializers.Serializer):
    # Within the product's calendar (``metering.domain.FIRST_DATE``..``LAST_DATE``), which
    # ``readings.domain``'s ``FIRST_DAY``..``LAST_DAY`` contain.
    start = DateField(
        help_text="First day of the range (YYYY-MM-DD, included), in the account's time zone."
    )
    end = DateField(help_text="Last day of the range (YYYY-MM-DD, included).")

    def validate(self, values):
        if values["end"] < values["start"]:
            raise serializers.ValidationError({"end": ["Must be on or after start."]})
        return values


class ConsumptionQuerySerializer(RangeQuerySerializer):
    granularity = serializers.ChoiceField(
        choices=domain.GRANULARITIES,
        default="month",
        help_text=(
            "Size of the buckets: local days, weeks from Monday, calendar months or years "
            f"(default month); at most {domain.MAX_BUCKETS} buckets."
        ),
    )

    def validate(self, values):
        values = super().validate(values)
        count = domain.bucket_count(values["start"], values["end"], values["granularity"])
        if count > domain.MAX_BUCKETS:
            raise serializers.ValidationError(
                {
                    "granularity": [
                        f"This range makes {count} {values['granularity']} buckets; at most"
                        f" {domain.MAX_BUCKETS}: choose a coarser granularity or a shorter range."
                    ]
                }
            )
        return values


class MeterConsumptionQuerySerializer(ConsumptionQuerySerializer):
    register_id = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="A register of the meter (default: its default register).",
    )


class PlaceConsumptionQuerySerializer(ConsumptionQuerySerializer):
    meter_type = serializers.ChoiceField(
        choices=list(metering_domain.METER_TYPES),
        help_text="The type of the meters to add up.",
    )


# --- responses -------------------------------------------------------------------------------


class ConsumptionBucketSerializer(serializers.Serializer):
    period_start = serializers.DateField(help_text="First day of the bucket.")
    period_end = serializers.DateField(help_text="Last day of the bucket (included).")
    consumption = consumption_field(
        help_text=(
            "Consumption over [period_start 00:00, period_end + 1 day 00:00) local time: each "
            "interval between two readings (and each period reading) spread evenly over time."
        )
    )
    unit = serializers.CharField()
    is_estimated = serializers.BooleanField(
        help_text=(
            "A spread part of an interval that is only partly in the bucket, or an estimated "
            "reading or period reading, counts in it."
        )
    )
    readings_count = serializers.IntegerField(
        help_text="Index readings of the register dated in the bucket (period readings aside)."
    )


class BalanceSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    unit = serializers.CharField()
    main_consumption = consumption_field(help_text="The meter's consumption over the range.")
    sub_meters_consumption = consumption_field(
        help_text="The sum of its direct sub-meters' consumption over the range."
    )
    difference = consumption_field(
        help_text="main_consumption − sub_meters_consumption: common use and losses."
    )
    difference_ratio = serializers.DecimalField(
        max_digits=CONSUMPTION_DIGITS,
        decimal_places=domain.BALANCE_RATIO_DECIMALS,
        allow_null=True,
        help_text="difference / main_consumption, a fraction (0.1 is 10 %); null when it is 0.",
    )
    sub_meters_count = serializers.IntegerField(help_text="Direct sub-meters of the meter.")
    is_estimated = serializers.BooleanField(
        help_text="Part of a figure comes from an interval spread over the range's edge, or "
        "from an estimated reading or period reading."
    )


def bucket_rows(
    ranges: list[domain.Bucket], totals: list[selectors.BucketTotal], unit: str
) -> list[dict]:
    """The response's buckets (``ConsumptionBucketSerializer``)."""
    rows = [
        {
            "period_start": bucket.period_start,
            "period_end": bucket.period_end,
            "consumption": total.consumption,
            "unit": unit,
            "is_estimated": total.is_estimated,
            "readings_count": total.readings_count,
        }
        for bucket, total in zip(ranges, totals, strict=True)
    ]
    return ConsumptionBucketSerializer(rows, many=True).data


# --- views -----------------------------------------------------------------------------------


class ConsumptionView(AccountScopedMixin, generics.GenericAPIView):
    """A read-only computation on one meter or place of the account (no list, no filters)."""

    scope = "readings"
    pagination_class = None
    filter_backends = ()
    query_serializer_class: type[serializers.Serializer] = ConsumptionQuerySerializer

    def query(self) -> dict:
        params = self.query_serializer_class(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return params.validated_data

    def ranges(self, values: dict) -> list[domain.Bucket]:
        return domain.buckets(
            values["start"], values["end"], values["granularity"], self.request.account.zone
        )


class MeterScopedView(MeterChildMixin, ConsumptionView):
    queryset = Meter.objects.all()


@extend_schema(
    tags=["consumption"],
    parameters=[path_id("meter_id", "A meter of the account."), MeterConsumptionQuerySerializer],
    responses={200: ConsumptionBucketSerializer(many=True)},
)
class MeterConsumptionView(MeterScopedView):
    """A register's consumption per day, week, month or year between two dates.

    Buckets are in the account's time zone and clipped to ``start``..``end``. Each interval
    between two index readings is spread evenly over time across the buckets it spans, with
    a rounding that keeps the sum of the buckets exactly the consumption of the readings in
    between; the default register also takes the meter's period readings, spread the same way.
    """

    query_serializer_class = MeterConsumptionQuerySerializer

    def get(self, request, *args, **kwargs):
        values = self.query()
        meter = self.meter()
        register = self.register(values.get("register_id"))
        ranges = self.ranges(values)
        totals = selectors.meter_consumption(meter=meter, register=register, ranges=ranges)
        return Response(bucket_rows(ranges, totals, selectors.unit_of(register, meter)))

    def register(self, register_id: int | None) -> Register:
        registers = Register.objects.filter(meter=self.meter())
        if register_id is None:
            register = registers.filter(is_default=True).first()
            message = "This meter has no default register: name one."
        else:
            register = registers.filter(pk=register_id).first()
            message = "No register with this id on this meter."
        if register is None:
            raise serializers.ValidationError({"register_id": [message]})
        return register


@extend_schema(
    tags=["consumption"],
    parameters=[path_id("place_id", "A place of the account."), PlaceConsumptionQuerySerializer],
    responses={200: ConsumptionBucketSerializer(many=True)},
)
class PlaceConsumptionView(ConsumptionView):
    """The consumption of a place's meters of one type, per bucket (as a meter's).

    Adds up the default registers (and period readings) of the place's meters of
    ``meter_type`` that have no ancestor among them: a sub-meter's consumption is already in
    its main meter's, so it is not counted twice. Meters read in different units: 400.
    """

    queryset = Place.objects.all()
    query_serializer_class = PlaceConsumptionQuerySerializer

    def place(self) -> Place:
        if not hasattr(self, "_place"):
            self._place = get_object_or_404(
                Place.objects.for_account(self.request.account).select_related("account"),
                pk=self.kwargs["place_id"],
            )
        return self._place

    def check_parents(self) -> None:
        self.place()

    def get(self, request, *args, **kwargs):
        values = self.query()
        ranges = self.ranges(values)
        unit, totals = selectors.place_consumption(
            place=self.place(), meter_type=values["meter_type"], ranges=ranges
        )
        return Response(bucket_rows(ranges, totals, unit))


@extend_schema(
    tags=["consumption"],
    parameters=[path_id("meter_id", "A meter of the account."), RangeQuerySerializer],
    responses={200: BalanceSerializer},
)
class MeterBalanceView(MeterScopedView):
    """A main meter against its direct sub-meters between two dates (both included).

    Default registers and period readings, spread over ``[start 00:00, end + 1 day 00:00)``
    in the account's time zone as the consumption route does. Sub-meters read in another
    unit than the meter: 400.
    """

    query_serializer_class = RangeQuerySerializer

    def get(self, request, *args, **kwargs):
        values = self.query()
        start: dt.date = values["start"]
        end: dt.date = values["end"]
        balance = selectors.meter_balance(meter=self.meter(), start=start, end=end)
        return Response(
            BalanceSerializer(
                {
                    "start": start,
                    "end": end,
                    "unit": balance.unit,
                    "main_consumption": balance.main_consumption,
                    "sub_meters_consumption": balance.sub_meters_consumption,
                    "difference": balance.difference,
                    "difference_ratio": balance.difference_ratio,
                    "sub_meters_count": balance.sub_meters_count,
                    "is_estimated": balance.is_estimated,
                }
            ).data
        )
