"""Routes of the metering resources under /api/v1/ (CONTRACT §3)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from metering.api import views

router = SimpleRouter()
router.register("places", views.PlaceViewSet, basename="place")
router.register("estates", views.EstateViewSet, basename="estate")
router.register("service-places", views.ServicePlaceViewSet, basename="service-place")
router.register("gateways", views.GatewayViewSet, basename="gateway")
router.register("meters", views.MeterViewSet, basename="meter")
router.register(r"meters/(?P<meter_id>\d+)/registers", views.RegisterViewSet, basename="register")
router.register(r"places/(?P<place_id>\d+)/meters", views.PlaceMeterViewSet, basename="place-meter")
router.register(
    r"estates/(?P<estate_id>\d+)/meters", views.EstateMeterViewSet, basename="estate-meter"
)
router.register(
    r"places/(?P<place_id>\d+)/estates/(?P<estate_id>\d+)/meters",
    views.PlaceEstateMeterViewSet,
    basename="place-estate-meter",
)

urlpatterns = [
    path("account/", views.AccountView.as_view(), name="account"),
    *router.urls,
]
