"""URL configuration: the admin, the API under /api/v1/, its schema and documentation."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from metering.api.errors import json_not_found

api_v1 = [
    path("", include("metering.api.urls")),
    path("", include("readings.api.urls")),
    path("", include("billing.api.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # The one-time link mailed with a member invitation (CONTRACT §1).
    path("invitations/", include("metering.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # Any other path under /api/ answers the contract's 404, in JSON, whatever DEBUG says.
    re_path(r"^api/", json_not_found),
]

handler500 = "metering.api.errors.handler500"
