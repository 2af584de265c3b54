"""The admin action that replaces a meter's device (CONTRACT §4.6), through the same service
as ``POST /api/v1/meters/{id}/replace/``.

Selected on the meter list, it shows a form (when, final and initial values, the new device);
submitting it calls ``readings.services.replace_device`` with the user as actor and ``ADMIN``
as source, and every refusal of the service (a locked or duplicate reading, a serial number in
use, an invalid value) is shown on the form. The history appears on the meter's page, in the
devices inline. Plugged into ``MeterAdmin`` from here: metering does not depend on readings.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers, widgets
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from metering.admin import MeterAdmin
from metering.errors import ApiError
from metering.models import Meter
from readings import services
from readings.admin import admin_actor


class ReplaceDeviceForm(forms.Form):
    replaced_at = forms.SplitDateTimeField(
        widget=widgets.AdminSplitDateTime,
        help_text="When the old device was removed: the date of its final reading, in the "
        "account's time zone.",
    )
    final_value = forms.DecimalField(
        max_digits=20, decimal_places=6, min_value=0, help_text="The old device's last index."
    )
    new_serial_number = forms.CharField(max_length=100)
    initial_value = forms.DecimalField(
        max_digits=20,
        decimal_places=6,
        min_value=0,
        initial=Decimal(0),
        help_text="The new device's index when installed.",
    )
    manufacturer = forms.CharField(max_length=100, required=False)
    model_reference = forms.CharField(max_length=100, required=False)


@admin.action(description="Replace the device of the selected meter")
def replace_device(modeladmin: MeterAdmin, request: HttpRequest, queryset: QuerySet[Meter]):
    meters = list(queryset.select_related("account")[:2])
    if len(meters) != 1:
        modeladmin.message_user(request, "Select exactly one meter.", messages.WARNING)
        return None
    (meter,) = meters
    if not modeladmin.role_allows(request, "write", meter):
        modeladmin.message_user(
            request, "Your role does not allow changing this meter.", messages.ERROR
        )
        return None
    form = ReplaceDeviceForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        values = dict(form.cleaned_data)
        # A naive time is the account's (as in the API); the admin's form gives naive ones.
        values["replaced_at"] = (
            values["replaced_at"].replace(tzinfo=None).replace(tzinfo=meter.account.zone)
        )
        try:
            device = services.replace_device(meter=meter, actor=admin_actor(request), **values)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        except ApiError as exc:
            form.add_error(None, str(exc.detail))
        else:
            modeladmin.message_user(
                request,
                f"Meter {meter.name}: device {device.serial_number} installed; the final reading "
                "of the old device was recorded.",
                messages.SUCCESS,
            )
            return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Replace the device of {meter}",
        "meter": meter,
        "form": form,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/readings/replace_device.html", context)


if replace_device not in MeterAdmin.actions:
    MeterAdmin.actions = [*MeterAdmin.actions, replace_device]
