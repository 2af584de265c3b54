"""Views of the metering resources: declarations on ``AccountScopedViewSet``."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics
from rest_framework.decorators import action

from metering import filters, selectors, services
from metering.api import serializers
from metering.api.viewsets import AccountScopedMixin, AccountScopedViewSet, ListAccountScopedViewSet
from metering.models import Estate, Gateway, Meter, Place, Register, ServicePlace


def path_id(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.INT, OpenApiParameter.PATH, description=description)


@extend_schema(tags=["account"])
class AccountView(AccountScopedMixin, generics.RetrieveAPIView):
    """The account of the credential, its settings and the scopes the credential holds."""

    serializer_class = serializers.AccountSerializer
    pagination_class = None
    filter_backends = ()
    scope = None  # any valid account credential may read its own account

    def get_object(self):
        return self.request.account


@extend_schema(tags=["places"])
class PlaceViewSet(AccountScopedViewSet):
    """Buildings and sites."""

    queryset = Place.objects.all()
    serializer_class = serializers.PlaceSerializer
    filterset_class = filters.PlaceFilter
    search_fields = ("name", "code", "city", "address_line1", "postal_code")
    ordering_fields = ("id", "name", "code", "city", "created_at", "updated_at")


@extend_schema(tags=["estates"])
class EstateViewSet(AccountScopedViewSet):
    """Lots and units inside places."""

    queryset = Estate.objects.all()
    serializer_class = serializers.EstateSerializer
    filterset_class = filters.EstateFilter
    search_fields = ("name", "code")
    ordering_fields = (
        "id",
        "code",
        "name",
        "floor",
        "shares",
        "surface_m2",
        "created_at",
        "updated_at",
    )


@extend_schema(tags=["service places"])
class ServicePlaceViewSet(AccountScopedViewSet):
    """Supply points of utility services."""

    queryset = ServicePlace.objects.all()
    serializer_class = serializers.ServicePlaceSerializer
    filterset_class = filters.ServicePlaceFilter
    search_fields = ("provider", "contract_reference", "delivery_point")
    ordering_fields = ("id", "meter_type", "provider", "created_at", "updated_at")


@extend_schema(tags=["gateways"])
class GatewayViewSet(AccountScopedViewSet):
    """Data concentrators."""

    queryset = Gateway.objects.all()
    serializer_class = serializers.GatewaySerializer
    filterset_class = filters.GatewayFilter
    search_fields = ("name", "identifier")
    ordering_fields = ("id", "name", "identifier", "last_seen_at", "created_at", "updated_at")


class MeterListMixin:
    """What every list of meters shares: registers prefetched, filters, search, ordering."""

    serializer_class = serializers.MeterSerializer
    filterset_class = filters.MeterFilter
    search_fields = ("name", "serial_number", "manufacturer", "location")
    ordering_fields = (
        "id",
        "name",
        "serial_number",
        "meter_type",
        "status",
        "installation_date",
        "last_reading_at",
        "created_at",
        "updated_at",
    )

    def get_queryset(self):
        return selectors.meters(account=self.request.account)


@extend_schema(tags=["meters"])
class MeterViewSet(MeterListMixin, AccountScopedViewSet):
    """Meters and sub-meters."""

    queryset = Meter.objects.all()

    def create_object(self, values):
        return services.create_meter(account=self.request.account, values=values)

    def update_object(self, instance, values):
        return services.update_meter(meter=instance, values=values)

    def delete_object(self, instance):
        services.delete_meter(meter=instance)

    @extend_schema(
        responses=serializers.MeterSerializer(many=True),
        filters=True,
        parameters=[
            OpenApiParameter("recursive", OpenApiTypes.BOOL, description="true: the whole subtree.")
        ],
    )
    @action(detail=True, methods=["get"], url_path="sub-meters")
    def sub_meters(self, request, pk=None):
        """The meter's direct sub-meters; with ``recursive=true`` every meter below it."""
        meter = self.get_object()
        recursive = request.query_params.get("recursive", "false")
        if recursive not in ("true", "false"):
            raise exceptions.ValidationError({"recursive": ["Must be true or false."]})
        queryset = self.get_queryset()
        if recursive == "true":
            queryset = queryset.filter(id__in=meter.descendant_ids())
        else:
            queryset = queryset.filter(parent_meter=meter)
        return self._list(queryset)

    def _list(self, queryset):
        queryset = self.filter_queryset(queryset)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


@extend_schema(tags=["meters"], parameters=[path_id("place_id", "A place of the account.")])
class PlaceMeterViewSet(MeterListMixin, ListAccountScopedViewSet):
    """The meters of one place."""

    queryset = Meter.objects.all()

    def get_queryset(self):
        place = get_object_or_404(
            Place.objects.for_account(self.request.account), pk=self.kwargs["place_id"]
        )
        return super().get_queryset().filter(place=place)


@extend_schema(tags=["meters"], parameters=[path_id("estate_id", "An estate of the account.")])
class EstateMeterViewSet(MeterListMixin, ListAccountScopedViewSet):
    """The meters of one estate (optionally checked to be in a place)."""

    queryset = Meter.objects.all()

    def get_queryset(self):
        estates = Estate.objects.for_account(self.request.account)
        if "place_id" in self.kwargs:
            estates = estates.filter(place_id=self.kwargs["place_id"])
        estate = get_object_or_404(estates, pk=self.kwargs["estate_id"])
        return super().get_queryset().filter(estate=estate)


@extend_schema(
    tags=["meters"],
    parameters=[
        path_id("place_id", "A place of the account."),
        path_id("estate_id", "An estate of that place."),
    ],
)
class PlaceEstateMeterViewSet(EstateMeterViewSet):
    pass


@extend_schema(tags=["registers"], parameters=[path_id("meter_id", "A meter of the account.")])
class RegisterViewSet(AccountScopedViewSet):
    """The registers (counters) of one meter."""

    queryset = Register.objects.all()
    serializer_class = serializers.RegisterSerializer
    filterset_class = filters.RegisterFilter
    search_fields = ("code", "obis_code", "name")
    ordering_fields = ("id", "code", "created_at", "updated_at")

    def meter(self) -> Meter:
        if not hasattr(self, "_meter"):
            self._meter = get_object_or_404(
                Meter.objects.for_account(self.request.account), pk=self.kwargs["meter_id"]
            )
        return self._meter

    def check_parents(self) -> None:
        self.meter()

    def scope_queryset(self, queryset):
        return queryset.filter(meter=self.meter())

    def create_object(self, values):
        return services.create_register(meter=self.meter(), values=values)

    def update_object(self, instance, values):
        return services.update_register(register=instance, values=values)

    def delete_object(self, instance):
        services.delete_register(register=instance)
