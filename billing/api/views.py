"""Views of the billing resources (CONTRACT §5): declarations over ``billing.services``."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular import openapi
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings

from billing import filters, selectors, services, statements
from billing.api import serializers
from billing.models import (
    AllocationRule,
    BillingPeriod,
    Charge,
    Lease,
    MeterShare,
    Tariff,
    Tenant,
)
from metering.api.negotiation import JsonFallbackNegotiation
from metering.api.schema import AutoSchema
from metering.api.views import path_id
from metering.api.viewsets import (
    AccountScopedMixin,
    AccountScopedViewSet,
    ListAccountScopedViewSet,
)
from metering.models import KeyBase


class BillingViewSet(AccountScopedViewSet):
    """CRUD on a billing resource: writes through ``billing.services`` (409 ``overlap``)."""

    scope = "billing"

    def create_object(self, values):
        return services.create_object(
            model=self.get_queryset().model, account=self.request.account, values=values
        )

    def update_object(self, instance, values):
        return services.update_object(instance=instance, values=values)


@extend_schema(tags=["tenants"])
class TenantViewSet(BillingViewSet):
    """Occupants billed through leases; they reach the portal with portal keys."""

    queryset = Tenant.objects.all()
    serializer_class = serializers.TenantSerializer
    filterset_class = filters.TenantFilter
    search_fields = ("name", "email", "external_reference")
    ordering_fields = ("id", "name", "email", "external_reference", "created_at", "updated_at")

    @extend_schema(
        request=serializers.PortalKeySerializer,
        responses={201: serializers.PortalKeySerializer},
        filters=False,
    )
    @action(detail=True, methods=["post"], url_path="portal-keys")
    def portal_keys(self, request, pk=None):
        """A new portal key of the tenant: `key` is shown in this response only."""
        tenant = self.get_object()
        serializer = serializers.PortalKeySerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        portal_key, raw = services.create_portal_key(
            tenant=tenant,
            name=serializer.validated_data["name"],
            expires_at=serializer.validated_data.get("expires_at"),
        )
        portal_key.key = raw
        return Response(
            serializers.PortalKeySerializer(portal_key, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )


@extend_schema(tags=["leases"])
class LeaseViewSet(BillingViewSet):
    """A tenant's occupation of an estate; two leases of one estate never overlap (409
    `overlap`). A lease with charges cannot be deleted (409 `conflict`)."""

    queryset = Lease.objects.all()
    serializer_class = serializers.LeaseSerializer
    filterset_class = filters.LeaseFilter
    search_fields = ("reference", "tenant__name", "estate__code", "estate__name")
    ordering_fields = (
        "id",
        "reference",
        "start_date",
        "end_date",
        "tenant_id",
        "estate_id",
        "created_at",
        "updated_at",
    )


@extend_schema(tags=["meter shares"])
class MeterShareViewSet(BillingViewSet):
    """The estates' ratios of SHARED meters; one share per meter and estate (409 `conflict`)."""

    queryset = MeterShare.objects.all()
    serializer_class = serializers.MeterShareSerializer
    filterset_class = filters.MeterShareFilter
    search_fields = ("meter__serial_number", "meter__name", "estate__code", "estate__name")
    ordering_fields = ("id", "meter_id", "estate_id", "ratio", "created_at", "updated_at")


@extend_schema(tags=["tariffs"])
class TariffViewSet(BillingViewSet):
    """Prices per unit and per day of one meter type (and optionally one register slot).

    Two tariffs of one type and slot never share a day (409 `overlap`). A tariff that meters
    or charges refer to cannot be deleted (409 `conflict`).
    """

    queryset = Tariff.objects.all()
    serializer_class = serializers.TariffSerializer
    filterset_class = filters.TariffFilter
    search_fields = ("name", "tariff_slot")
    ordering_fields = (
        "id",
        "name",
        "meter_type",
        "tariff_slot",
        "unit_price",
        "valid_from",
        "valid_to",
        "created_at",
        "updated_at",
    )

    def create_object(self, values):
        values.setdefault("currency", self.request.account.currency)
        return super().create_object(values)


@extend_schema(tags=["allocation rules"])
class AllocationRuleViewSet(BillingViewSet):
    """How a COLLECTIVE meter's cost is split over its place's estates (one rule per meter)."""

    queryset = AllocationRule.objects.all()
    serializer_class = serializers.AllocationRuleSerializer
    filterset_class = filters.AllocationRuleFilter
    search_fields = ("meter__serial_number", "meter__name")
    ordering_fields = (
        "id",
        "meter_id",
        "basis",
        "consumption_part_percent",
        "created_at",
        "updated_at",
    )


def closed_by(request) -> str:
    """Who closes a period: the key's name and prefix, or the member's username."""
    if isinstance(request.auth, KeyBase):
        return str(request.auth)
    return request.user.get_username()


@extend_schema(tags=["billing periods"])
class BillingPeriodViewSet(BillingViewSet):
    """The days of a place to bill. A draft is computed (and recomputed) at will; closing
    freezes its charges and locks the readings they used. A closed period cannot be changed,
    computed again nor deleted (409 `conflict`); two closed periods of a place never overlap.
    """

    queryset = BillingPeriod.objects.all()
    serializer_class = serializers.BillingPeriodSerializer
    filterset_class = filters.BillingPeriodFilter
    search_fields = ("name",)
    ordering = ["-start_date", "id"]
    ordering_fields = (
        "id",
        "name",
        "start_date",
        "end_date",
        "status",
        "total_amount",
        "computed_at",
        "closed_at",
        "created_at",
        "updated_at",
    )

    def create_object(self, values):
        return services.create_period(account=self.request.account, values=values)

    def update_object(self, instance, values):
        return services.update_period(period=instance, values=values)

    def delete_object(self, instance):
        services.delete_period(period=instance)

    @extend_schema(
        request=None, responses={200: serializers.BillingPeriodSerializer}, filters=False
    )
    @action(detail=True, methods=["post"])
    def compute(self, request, pk=None):
        """(Re)compute the charges and issues of a draft, synchronously."""
        period = services.compute_period(period=self.get_object())
        return Response(self.get_serializer(period).data)

    @extend_schema(
        request=serializers.ClosePeriodSerializer,
        responses={200: serializers.BillingPeriodSerializer},
        filters=False,
    )
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """Compute the draft once more, freeze its charges and lock the readings they used.

        With unresolved `issues` and no `{"force": true}`: 409 `conflict` (details list them).
        """
        period = self.get_object()
        body = serializers.ClosePeriodSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        period = services.close_period(
            period=period, force=body.validated_data["force"], closed_by=closed_by(request)
        )
        return Response(self.get_serializer(period).data)


class BillingPeriodChildMixin:
    """A route under ``billing-periods/{billing_period_id}/``: the period must be in the
    request's account (404 before anything else)."""

    def billing_period(self) -> BillingPeriod:
        if not hasattr(self, "_billing_period"):
            self._billing_period = get_object_or_404(
                BillingPeriod.objects.for_account(self.request.account).select_related(
                    "account", "place"
                ),
                pk=self.kwargs["billing_period_id"],
            )
        return self._billing_period

    def check_parents(self) -> None:
        self.billing_period()


@extend_schema(
    tags=["billing periods"],
    parameters=[path_id("billing_period_id", "A billing period of the account.")],
)
class ChargeViewSet(BillingPeriodChildMixin, ListAccountScopedViewSet):
    """The charge lines of a period (read-only: `compute` writes them)."""

    scope = "billing"
    queryset = Charge.objects.all()
    serializer_class = serializers.ChargeSerializer
    filterset_class = filters.ChargeFilter
    search_fields = ("basis", "unit", "meter__serial_number", "meter__name", "lease__reference")
    ordering_fields = (
        "id",
        "meter_id",
        "lease_id",
        "start_date",
        "end_date",
        "consumption",
        "amount",
        "total_amount",
        "created_at",
        "updated_at",
    )

    def scope_queryset(self, queryset):
        return super().scope_queryset(queryset).filter(billing_period=self.billing_period())


# --- statements -------------------------------------------------------------------------------


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode(self.charset)


class HTMLRenderer(CSVRenderer):
    media_type = "text/html"
    format = "html"


FORMATS = ("json", "csv", "html")


class StatementNegotiation(JsonFallbackNegotiation):
    """``?format=json|csv|html`` wins over the ``Accept`` header; another format is a 400."""

    def select_renderer(self, request, renderers, format_suffix=None):
        requested = format_suffix or request.query_params.get(api_settings.URL_FORMAT_OVERRIDE)
        if requested:
            for renderer in renderers:
                if renderer.format == requested:
                    return renderer, renderer.media_type
            raise exceptions.ValidationError({"format": [f"Must be one of: {', '.join(FORMATS)}."]})
        return super().select_renderer(request, renderers, format_suffix)


class StatementSchema(AutoSchema):
    """Only the JSON response is in the ``{"data": ...}`` envelope; CSV and HTML are bare."""

    def _get_response_for_code(
        self, serializer, status_code, media_types=None, direction="response"
    ):
        if media_types and "application/json" not in media_types:
            return openapi.AutoSchema._get_response_for_code(
                self, serializer, status_code, media_types, direction
            )
        return super()._get_response_for_code(serializer, status_code, media_types, direction)


@extend_schema(
    tags=["billing periods"],
    parameters=[
        path_id("billing_period_id", "A billing period of the account."),
        path_id("lease_id", "A lease of the period's place during the period."),
        OpenApiParameter(
            "format",
            OpenApiTypes.STR,
            enum=list(FORMATS),
            description="json (default), csv (a download) or html (a printable page); "
            "`Accept: text/csv` or `text/html` does the same.",
        ),
    ],
    responses={
        (200, "application/json"): serializers.StatementSerializer,
        (200, "text/csv"): OpenApiResponse(
            OpenApiTypes.STR, description="One row per line, then a TOTAL row."
        ),
        (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="A printable A4 page."),
    },
)
class StatementView(BillingPeriodChildMixin, AccountScopedMixin, generics.GenericAPIView):
    """What a lease owes for a period: its charge lines and their totals.

    The lease must be of the period's place and run during the period (or have lines in it).
    A draft's statement shows its last computation.
    """

    scope = "billing"
    queryset = Lease.objects.all()
    pagination_class = None
    filter_backends = ()
    renderer_classes = (JSONRenderer, CSVRenderer, HTMLRenderer)
    content_negotiation_class = StatementNegotiation
    schema = StatementSchema()

    def lease(self) -> Lease:
        """The lease in the path: of an estate of the period's place with days in the period,
        or with lines in it (404 otherwise, as for another account's)."""
        period = self.billing_period()
        leases = self.scope_queryset(selectors.period_leases(period=period))
        lease = leases.filter(pk=self.kwargs["lease_id"]).first()
        if lease is None:
            raise exceptions.NotFound("No lease with this id in this billing period.")
        return lease

    def check_parents(self) -> None:
        super().check_parents()
        self._lease = self.lease()

    def get(self, request, *args, **kwargs):
        statement = selectors.statement(period=self.billing_period(), lease=self._lease)
        rendering = request.accepted_renderer.format
        if rendering == "json":
            return Response(statements.statement_data(statement))
        if rendering == "csv":
            response = Response(statements.render_csv(statement))
            name = statements.filename(statement, "csv")
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        else:
            response = Response(statements.render_html(statement, request=request))
        response.enveloped = True  # the file itself, not a JSON envelope
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors (and anything not rendered here) are JSON whatever format was asked for.
        if not isinstance(getattr(response, "data", None), str):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
