"""Admin of the billing app (CONTRACT §5): tenants, leases, portal keys, tariffs, meter shares,
allocation rules and charges; billing periods in ``billing.admin_periods``.

Scoping and roles come from ``metering.admin_base`` (the ``billing`` scope: a VIEWER reads, a
MANAGER or an ADMIN writes). Writes go through ``billing.services``; the models' ``clean()``
rules (an overlapping lease or tariff, a share of a meter that is not ``SHARED``...) are form
errors, and a refusal the services raise after the form was valid (a concurrent overlap, a
lease still referred to by charges) becomes an error message, never a 500.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.utils import timezone

from billing import services as billing_services
from billing.models import (
    AllocationRule,
    Charge,
    Lease,
    MeterShare,
    PortalKey,
    Tariff,
    Tenant,
)
from metering import services as metering_services
from metering.admin_base import (
    DELETE_ERRORS,
    AccountScopedAdmin,
    AccountScopedForm,
    AccountScopedInline,
    KeyAdmin,
    account_id_of,
    deletion_error,
    model_values,
    save_inline_through_services,
)
from metering.models import Meter

# What a service may refuse a valid form with; shown as an error message.
SAVE_ERRORS = (*DELETE_ERRORS, ValidationError)


def refusal_message(error: Exception, label: str) -> str:
    """What the user reads when a service refuses a write."""
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return deletion_error(error, label)


# --- the base of the billing admins -----------------------------------------------------------


class SameAccountForm(AccountScopedForm):
    """Refuses related objects of another account than the object's (a member of several
    accounts picks the account and the related objects separately)."""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        account = data.get("account")
        account_id = account.pk if account is not None else account_id_of(self.instance)
        if account_id is None:
            return data
        for name, value in list(data.items()):
            if name == "account" or not isinstance(value, models.Model):
                continue
            owner = account_id_of(value)
            if owner is not None and owner != account_id:
                self.add_error(name, "This belongs to another account.")
        return data


class BillingAdmin(AccountScopedAdmin):
    """Writes through ``billing.services.create_object``/``update_object`` (an overlap there is
    a 409 ``overlap``); a refusal after the form was valid is shown as a message."""

    scope = "billing"
    form = SameAccountForm

    def create(self, request: HttpRequest, form: forms.ModelForm) -> models.Model:
        return billing_services.create_object(
            model=self.model,
            account=form.cleaned_data["account"],
            values=model_values(form, form.cleaned_data),
        )

    def update(
        self, request: HttpRequest, instance: models.Model, values: dict[str, Any]
    ) -> models.Model:
        return billing_services.update_object(instance=instance, values=values)

    def changeform_view(
        self, request: HttpRequest, object_id=None, form_url="", extra_context=None
    ):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SAVE_ERRORS as error:
            # The admin's transaction was rolled back: nothing of the request was stored.
            label = str(self.opts.verbose_name)
            self.message_user(request, refusal_message(error, label), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


# --- tenants and leases -----------------------------------------------------------------------


class LeaseStatusFilter(admin.SimpleListFilter):
    """Current, past or future leases, on the server's date."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("current", "Current"), ("ended", "Ended"), ("future", "Not started yet")]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        if self.value() == "current":
            return queryset.current(today)
        if self.value() == "ended":
            return queryset.filter(end_date__lt=today)
        if self.value() == "future":
            return queryset.filter(start_date__gt=today)
        return queryset


def lease_is_current(lease: Lease) -> bool:
    """Whether ``lease`` runs today, in its account's time zone."""
    return lease.is_current(lease.account.today())


class LeaseInline(AccountScopedInline):
    """The tenant's leases, written through ``billing.services`` (``TenantAdmin.save_formset``)."""

    model = Lease
    scope = "billing"
    form = SameAccountForm
    fields = ("reference", "estate", "start_date", "end_date", "current")
    readonly_fields = ("current",)
    autocomplete_fields = ("estate",)
    show_change_link = True

    @admin.display(description="current", boolean=True)
    def current(self, lease: Lease) -> bool | None:
        return lease_is_current(lease) if lease.pk else None

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("estate__place", "account")


@admin.register(Tenant)
class TenantAdmin(BillingAdmin):
    list_display = ("name", "email", "phone", "external_reference")
    search_fields = ("name", "email", "phone", "external_reference")
    inlines = (LeaseInline,)
    fieldsets = (
        (None, {"fields": ("account", "name", "external_reference")}),
        ("Contact", {"fields": ("email", "phone")}),
    )

    def get_inline_instances(self, request: HttpRequest, obj=None) -> list:
        # Leases come once the tenant exists: their account is the tenant's.
        if obj is None:
            return []
        return super().get_inline_instances(request, obj)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not Lease:
            return super().save_formset(request, form, formset, change)
        tenant = form.instance
        save_inline_through_services(
            formset,
            parent_field="tenant",
            create=lambda values: billing_services.create_object(
                model=Lease, account=tenant.account, values={**values, "tenant": tenant}
            ),
            update=lambda lease, values: billing_services.update_object(
                instance=lease, values=values
            ),
            # Restricted while charges refer to it: an error message (``changeform_view``).
            delete=lambda lease: metering_services.delete_object(instance=lease),
        )
        return None


@admin.register(Lease)
class LeaseAdmin(BillingAdmin):
    """Leases: two leases of one estate never overlap (``Lease.clean``, code ``overlap``)."""

    list_display = ("reference", "tenant", "estate", "place", "start_date", "end_date", "current")
    list_display_links = ("reference", "tenant")
    list_filter = (LeaseStatusFilter, "estate__place")
    search_fields = (
        "reference",
        "tenant__name",
        "tenant__external_reference",
        "estate__code",
        "estate__name",
    )
    list_select_related = ("tenant", "estate__place", "account")
    autocomplete_fields = ("tenant", "estate")
    date_hierarchy = "start_date"
    ordering = ("estate__place__code", "estate__code", "start_date")
    readonly_fields = ("current",)
    fieldsets = (
        (None, {"fields": ("account", "reference", "tenant", "estate")}),
        ("Term", {"fields": ("start_date", "end_date", "current")}),
    )

    @admin.display(description="place", ordering="estate__place__code")
    def place(self, lease: Lease) -> str:
        return str(lease.estate.place)

    @admin.display(description="current", boolean=True)
    def current(self, lease: Lease) -> bool | None:
        return lease_is_current(lease) if lease.pk else None


# --- keys and tariffs -------------------------------------------------------------------------


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
class TariffAdmin(BillingAdmin):
    """Tariffs: two of one account, meter type and slot never overlap in time."""

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


# --- meter shares and allocation rules --------------------------------------------------------


class MeterOfTypeAdmin(BillingAdmin):
    """An admin whose ``meter`` is chosen among the meters of one billing type."""

    meter_billing_type = ""

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs: Any):
        if db_field.name == "meter":
            kwargs["queryset"] = Meter.objects.filter(
                billing_type=self.meter_billing_type
            ).select_related("place")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(MeterShare)
class MeterShareAdmin(MeterOfTypeAdmin):
    """An estate's ratio of a ``SHARED`` meter: the meter's cost is split by the ratios."""

    meter_billing_type = "SHARED"
    list_display = ("meter", "estate", "ratio", "place")
    list_filter = ("meter__place",)
    search_fields = ("meter__serial_number", "meter__name", "estate__code", "estate__name")
    list_select_related = ("meter", "estate", "meter__place", "account")
    autocomplete_fields = ("estate",)
    ordering = ("meter__serial_number", "estate__code")
    fieldsets = ((None, {"fields": ("account", "meter", "estate", "ratio")}),)

    @admin.display(description="place", ordering="meter__place__code")
    def place(self, share: MeterShare) -> str:
        return str(share.meter.place or "—")


@admin.register(AllocationRule)
class AllocationRuleAdmin(MeterOfTypeAdmin):
    """How a ``COLLECTIVE`` meter's cost is split over its place's estates."""

    meter_billing_type = "COLLECTIVE"
    list_display = ("meter", "place", "basis", "consumption_part_percent")
    list_filter = ("basis", "meter__place")
    search_fields = ("meter__serial_number", "meter__name")
    list_select_related = ("meter__place", "account")
    ordering = ("meter__serial_number",)
    fieldsets = (
        (None, {"fields": ("account", "meter")}),
        ("Split", {"fields": ("consumption_part_percent", "basis")}),
    )

    @admin.display(description="place", ordering="meter__place__code")
    def place(self, rule: AllocationRule) -> str:
        return str(rule.meter.place or "—")


# --- charges ----------------------------------------------------------------------------------


@admin.register(Charge)
class ChargeAdmin(AccountScopedAdmin):
    """The lines of billing periods: written by ``billing.services.compute_period`` only."""

    scope = "billing"
    writable = False
    actions = None
    list_display = (
        "billing_period",
        "who",
        "meter",
        "register_code",
        "start_date",
        "end_date",
        "consumption_shown",
        "unit",
        "unit_price",
        "share_shown",
        "basis",
        "amount",
        "vat_amount",
        "total_amount",
        "is_estimated",
        "is_included",
    )
    list_filter = ("billing_period", "is_vacancy", "is_included", "is_estimated", "meter__place")
    search_fields = (
        "meter__serial_number",
        "lease__reference",
        "lease__tenant__name",
        "estate__code",
        "billing_period__name",
    )
    list_select_related = (
        "billing_period",
        "lease__tenant",
        "estate",
        "meter",
        "register",
        "account",
    )
    ordering = ("billing_period", "estate__code", "meter__serial_number", "start_date", "pk")
    fieldsets = (
        (None, {"fields": ("account", "billing_period", "lease", "estate", "is_vacancy")}),
        ("Meter", {"fields": ("meter", "register", "tariff")}),
        (
            "Consumption",
            {
                "fields": (
                    "start_date",
                    "end_date",
                    "index_start",
                    "index_end",
                    "consumption",
                    "unit",
                    "is_estimated",
                )
            },
        ),
        (
            "Amounts",
            {
                "fields": (
                    "unit_price",
                    "share",
                    "basis",
                    "amount",
                    "vat_amount",
                    "total_amount",
                    "is_included",
                )
            },
        ),
    )

    @admin.display(description="lease", ordering="lease__reference")
    def who(self, charge: Charge) -> str:
        if charge.is_vacancy:
            return f"vacancy ({charge.estate.code})" if charge.estate_id else "vacancy"
        return str(charge.lease) if charge.lease_id else "—"

    @admin.display(description="register", ordering="register__code")
    def register_code(self, charge: Charge) -> str:
        return charge.register.code if charge.register_id else "—"

    @admin.display(description="consumption", ordering="consumption")
    def consumption_shown(self, charge: Charge) -> str:
        return decimal_shown(charge.consumption)

    @admin.display(description="share", ordering="share")
    def share_shown(self, charge: Charge) -> str:
        return decimal_shown(charge.share)


def decimal_shown(value: Any) -> str:
    """A stored decimal without its trailing zeros (``12.500000000000000000`` reads ``12.5``)."""
    if value is None:
        return "—"
    return format(value.normalize(), "f")


# The billing periods' admin: its own module (actions, views and templates of its own).
from billing import admin_periods  # noqa: E402, F401
