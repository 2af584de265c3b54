"""Pages of the metering app outside the admin and the API: a member invitation's link."""

from django.urls import path

from metering.views import InvitationView

urlpatterns = [
    path("<str:token>/", InvitationView.as_view(), name="invitation"),
]
