"""Routes of the billing resources and the tenant portal under /api/v1/ (CONTRACT §5, §6)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from billing.api import portal, views

router = SimpleRouter()
router.register("tenants", views.TenantViewSet, basename="tenant")
router.register("leases", views.LeaseViewSet, basename="lease")
router.register("meter-shares", views.MeterShareViewSet, basename="meter-share")
router.register("tariffs", views.TariffViewSet, basename="tariff")
router.register("allocation-rules", views.AllocationRuleViewSet, basename="allocation-rule")
router.register("billing-periods", views.BillingPeriodViewSet, basename="billing-period")
router.register(
    r"billing-periods/(?P<billing_period_id>\d+)/charges",
    views.ChargeViewSet,
    basename="billing-period-charge",
)
# The tenant portal (CONTRACT §6): portal keys only.
router.register("portal/meters", portal.PortalMeterViewSet, basename="portal-meter")
router.register(
    r"portal/meters/(?P<meter_id>\d+)/readings",
    portal.PortalMeterReadingViewSet,
    basename="portal-meter-reading",
)
router.register("portal/statements", portal.PortalStatementViewSet, basename="portal-statement")

urlpatterns = [
    *router.urls,
    path(
        "billing-periods/<int:billing_period_id>/statements/<int:lease_id>/",
        views.StatementView.as_view(),
        name="billing-period-statement",
    ),
    path("portal/me/", portal.PortalMeView.as_view(), name="portal-me"),
    path(
        "portal/meters/<int:meter_id>/consumption/",
        portal.PortalMeterConsumptionView.as_view(),
        name="portal-meter-consumption",
    ),
    path(
        "portal/meters/<int:meter_id>/allowed-range/",
        portal.PortalAllowedRangeView.as_view(),
        name="portal-meter-allowed-range",
    ),
    path(
        "portal/statements/<int:billing_period_id>/<int:lease_id>/",
        portal.PortalStatementView.as_view(),
        name="portal-statement-detail",
    ),
]
