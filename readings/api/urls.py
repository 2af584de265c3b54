"""Routes of the readings resources under /api/v1/ (CONTRACT §4)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from readings.api import consumption, devices, views

router = SimpleRouter()
router.register(
    r"meters/(?P<meter_id>\d+)/readings", views.MeterReadingViewSet, basename="meter-reading"
)
router.register("readings", views.ReadingViewSet, basename="reading")
router.register(
    r"meters/(?P<meter_id>\d+)/period-readings",
    views.MeterPeriodReadingViewSet,
    basename="meter-period-reading",
)
router.register("period-readings", views.PeriodReadingViewSet, basename="period-reading")
router.register(
    r"meters/(?P<meter_id>\d+)/devices", devices.MeterDeviceViewSet, basename="meter-device"
)
router.register(
    r"meters/(?P<meter_id>\d+)/replace", devices.MeterReplaceViewSet, basename="meter-replace"
)

urlpatterns = router.urls

# Consumption over time (CONTRACT §4.5): computations, not resources.
urlpatterns += [
    path(
        "meters/<int:meter_id>/consumption/",
        consumption.MeterConsumptionView.as_view(),
        name="meter-consumption",
    ),
    path(
        "meters/<int:meter_id>/balance/",
        consumption.MeterBalanceView.as_view(),
        name="meter-balance",
    ),
    path(
        "places/<int:place_id>/consumption/",
        consumption.PlaceConsumptionView.as_view(),
        name="place-consumption",
    ),
]
