"""Admin of tenants, portal keys and tariffs (scoping and roles from ``metering.admin_base``)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from billing import services as billing_services
from billing.models import PortalKey, Tariff, Tenant
from metering.admin_base import AccountScopedAdmin, KeyAdmin


@admin.register(Tenant)
class TenantAdmin(AccountScopedAdmin):
    scope = "billing"
    list_display = ("name", "email", "phone", "external_reference")
    search_fields = ("name", "email", "phone", "external_reference")
    fieldsets = (
        (None, {"fields": ("account", "name", "external_reference")}),
        ("Contact", {"fields": ("email", "phone")}),
    )


@admin.register(PortalKey)
class PortalKeyAdmin(KeyAdmin):
    """A tenant's portal keys, created through ``billing.services.create_portal_key``.

    The key's account is the tenant's.
    """

    list_display = (*KeyAdmin.list_display, "tenant")
    list_select_related = ("tenant", "account")
    search_fields = (*KeyAdmin.search_fields, "tenant__name")
    autocomplete_fields = ("tenant",)
    add_fieldsets = ((None, {"fields": ("tenant", "name", "expires_at")}),)
    fieldsets = (
        (None, {"fields": ("account", "tenant", "name", "prefix", "expires_at")}),
        ("Usage", {"fields": ("created_at", "last_used_at", "revoked_at")}),
    )
    change_readonly_fields = ("tenant",)

    def create(self, request: HttpRequest, form: forms.ModelForm) -> PortalKey:
        data = form.cleaned_data
        portal_key, raw = billing_services.create_portal_key(
            tenant=data["tenant"], name=data["name"], expires_at=data.get("expires_at")
        )
        self.show_raw_key(request, raw)
        return portal_key


@admin.register(Tariff)
class TariffAdmin(AccountScopedAdmin):
    scope = "billing"
    list_display = (
        "name",
        "meter_type",
        "tariff_slot",
        "unit_price",
        "standing_charge_per_day",
        "vat_rate",
        "currency",
        "valid_from",
        "valid_to",
    )
    list_filter = ("meter_type", "currency")
    search_fields = ("name", "tariff_slot")
    date_hierarchy = "valid_from"
    fieldsets = (
        (None, {"fields": ("account", "name", "meter_type", "tariff_slot")}),
        (
            "Prices",
            {"fields": ("unit_price", "standing_charge_per_day", "vat_rate", "currency")},
        ),
        ("Validity", {"fields": ("valid_from", "valid_to")}),
    )
