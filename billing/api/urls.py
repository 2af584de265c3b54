"""Routes of the billing resources and the tenant portal under /api/v1/ (CONTRACT §5, §6)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from billing.api import views

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

urlpatterns = [
    *router.urls,
    path(
        "billing-periods/<int:billing_period_id>/statements/<int:lease_id>/",
        views.StatementView.as_view(),
        name="billing-period-statement",
    ),
]
