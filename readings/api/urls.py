"""Routes of the readings resources under /api/v1/ (CONTRACT §4)."""

from rest_framework.routers import SimpleRouter

from readings.api import views

router = SimpleRouter()
router.register(
    r"meters/(?P<meter_id>\d+)/readings", views.MeterReadingViewSet, basename="meter-reading"
)
router.register("readings", views.ReadingViewSet, basename="reading")

urlpatterns = router.urls
