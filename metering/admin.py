"""Admin of accounts, members, API keys, places, estates, service places, gateways and meters.

Scoping, role permissions and writes through the services come from ``metering.admin_base``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from metering import domain, services
from metering.admin_base import (
    AccountScopedAdmin,
    AccountScopedForm,
    AccountScopedInline,
    AccountScopedInlineFormSet,
    KeyAdmin,
    model_values,
    save_inline_through_services,
)
from metering.admin_imports import import_url, import_urls
from metering.models import (
    Account,
    ApiKey,
    Estate,
    Gateway,
    Invitation,
    Membership,
    Meter,
    MeterDevice,
    Place,
    Register,
    ServicePlace,
)

admin.site.site_header = "Metering administration"
admin.site.site_title = "Metering"
admin.site.index_title = "Meters, readings and billing"


# --- accounts, members, keys ---------------------------------------------------------------


class AccountForm(AccountScopedForm):
    currency = forms.ChoiceField(choices=lambda: [(c, c) for c in sorted(domain.CURRENCIES)])
    timezone = forms.ChoiceField(choices=lambda: [(z, z) for z in sorted(domain.time_zones())])


ANOMALY_FIELDS = (
    "anomaly_deviation_ratio",
    "anomaly_spike_ratio",
    "anomaly_drop_ratio",
    "anomaly_baseline_days",
    "anomaly_min_intervals",
)


@admin.register(Account)
class AccountAdmin(AccountScopedAdmin):
    """An ADMIN changes their account's settings; only superusers add or delete accounts."""

    scope = None
    form = AccountForm
    list_display = ("name", "slug", "currency", "timezone", "created_at")
    search_fields = ("name", "slug")
    add_fieldsets = ((None, {"fields": ("name", "slug", "currency", "timezone")}),)
    fieldsets = (
        (None, {"fields": ("name", "slug", "currency", "timezone")}),
        ("Anomaly thresholds (CONTRACT §4.2)", {"fields": ANOMALY_FIELDS}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        readonly = super().get_readonly_fields(request, obj)
        if obj is not None and not request.user.is_superuser:
            # Clients may know the account by its slug.
            readonly.append("slug")
        return readonly

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def create(self, request: HttpRequest, form: forms.ModelForm) -> Account:
        return services.create_account(**model_values(form, form.cleaned_data))

    def update(self, request: HttpRequest, instance: Account, values: dict[str, Any]) -> Account:
        # The service derives the flags of the account's readings again when thresholds change.
        return services.update_account(account=instance, values=values)


@admin.register(Membership)
class MembershipAdmin(AccountScopedAdmin):
    """Members and their roles, managed by the account's ADMINs.

    Members join only through an invitation by e-mail address (``InvitationAdmin``), accepted
    by the person: no page adds a login of the installation to an account, nor tells whether
    a username or an address exists (CONTRACT §1). A member cannot change or delete their own
    membership, so that no ADMIN locks themself out by mistake.
    """

    scope = None
    change_list_template = "admin/metering/membership/change_list.html"
    list_display = ("user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "user__email", "user__first_name", "user__last_name")
    list_select_related = ("user", "account")
    fieldsets = ((None, {"fields": ("account", "user", "role")}),)
    readonly_fields = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invite instead

    def changelist_view(self, request: HttpRequest, extra_context=None):
        context = {
            "invite_url": reverse("admin:metering_invitation_add"),
            "can_invite": self.role_allows(request, "write"),  # ADMINs, as for invitations
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.user_id == request.user.pk and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.user_id == request.user.pk and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


class InvitationForm(AccountScopedForm):
    def validate_unique(self) -> None:
        # Inviting an address again replaces its open invitation (services.invite_member):
        # the database's one-open-invitation constraint is not the form's to check.
        pass


class InvitationStatusFilter(admin.SimpleListFilter):
    title = gettext_lazy("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("pending", gettext_lazy("Pending")),
            ("accepted", gettext_lazy("Accepted")),
            ("revoked", gettext_lazy("Revoked")),
            ("expired", gettext_lazy("Expired")),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value == "pending":
            return queryset.usable(now)
        if value == "accepted":
            return queryset.filter(accepted_at__isnull=False)
        if value == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if value == "expired":
            return queryset.open().filter(expires_at__lte=now)
        return queryset


# Who invited, who accepted and when: set by the services only, shown read-only.
INVITATION_HISTORY_FIELDS = (
    "invited_by",
    "created_at",
    "expires_at",
    "accepted_at",
    "accepted_by",
    "revoked_at",
)


@admin.register(Invitation)
class InvitationAdmin(AccountScopedAdmin):
    """Invitations of members by e-mail address (CONTRACT §1), by the account's ADMINs.

    Adding one mails its one-time link (``services.invite_member``); the page answers the same
    whoever the address belongs to. An invitation is never edited: it is revoked (action), or
    replaced by inviting the address again.
    """

    scope = None
    form = InvitationForm
    list_display = ("email", "role", "status", "created_at", "expires_at", "invited_by")
    list_filter = (InvitationStatusFilter, "role")
    search_fields = ("email",)
    list_select_related = ("account", "invited_by")
    add_fieldsets = ((None, {"fields": ("account", "email", "role")}),)
    fieldsets = (
        (None, {"fields": ("account", "email", "role", "status")}),
        (gettext_lazy("History"), {"fields": INVITATION_HISTORY_FIELDS}),
    )
    readonly_fields = ("status", *INVITATION_HISTORY_FIELDS)
    actions = ("revoke_selected_invitations",)

    @admin.display(description=gettext_lazy("status"))
    def status(self, invitation: Invitation) -> str:
        return invitation.status(timezone.now())

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # The list's revoke action needs it; a stored invitation's page is read-only.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # revoked, kept as the history of who was invited

    @admin.action(description=gettext_lazy("Revoke selected invitations"), permissions=["change"])
    def revoke_selected_invitations(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = services.revoke_invitations(invitations=queryset)
        self.message_user(
            request, _("%(count)d invitation(s) revoked.") % {"count": count}, messages.SUCCESS
        )

    def create(self, request: HttpRequest, form: forms.ModelForm) -> Invitation:
        data = form.cleaned_data
        return services.invite_member(
            account=data["account"],
            email=data["email"],
            role=data["role"],
            invited_by=request.user,
        )

    def response_add(self, request: HttpRequest, obj: Invitation, post_url_continue=None):
        # One message, the same for every address (a new person, a login, a member already).
        self.message_user(
            request,
            _(
                "An invitation was sent to %(email)s. The person joins the account once they "
                "follow its link and accept."
            )
            % {"email": obj.email},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:metering_invitation_changelist"))


class ApiKeyForm(AccountScopedForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in domain.SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="A write scope implies the matching read scope.",
    )


@admin.register(ApiKey)
class ApiKeyAdmin(KeyAdmin):
    """Account keys, created through ``services.create_api_key``."""

    form = ApiKeyForm
    list_display = (*KeyAdmin.list_display, "scope_list", "created_by")
    list_select_related = ("created_by", "account")
    add_fieldsets = ((None, {"fields": ("account", "name", "scopes", "expires_at")}),)
    fieldsets = (
        (None, {"fields": ("account", "name", "prefix", "scopes", "expires_at")}),
        ("Usage", {"fields": ("created_by", "created_at", "last_used_at", "revoked_at")}),
    )
    readonly_fields = (*KeyAdmin.readonly_fields, "created_by")

    @admin.display(description="scopes")
    def scope_list(self, key: ApiKey) -> str:
        return " ".join(key.scopes)

    def create(self, request: HttpRequest, form: forms.ModelForm) -> ApiKey:
        data = form.cleaned_data
        api_key, raw = services.create_api_key(
            account=data["account"],
            name=data["name"],
            scopes=data["scopes"],
            expires_at=data.get("expires_at"),
            created_by=request.user,
        )
        self.show_raw_key(request, raw)
        return api_key


# --- places --------------------------------------------------------------------------------


@admin.register(Place)
class PlaceAdmin(AccountScopedAdmin):
    list_display = ("code", "name", "city", "postal_code", "country", "surface_m2")
    list_filter = ("country",)
    search_fields = ("code", "name", "city", "postal_code")
    fieldsets = (
        (None, {"fields": ("account", "code", "name", "surface_m2")}),
        (
            "Address",
            {
                "fields": (
                    "address_line1",
                    "address_line2",
                    "postal_code",
                    "city",
                    "country",
                    "latitude",
                    "longitude",
                )
            },
        ),
    )


@admin.register(Estate)
class EstateAdmin(AccountScopedAdmin):
    list_display = ("code", "name", "place", "floor", "usage", "shares", "surface_m2")
    list_filter = ("usage", "place")
    search_fields = ("code", "name", "place__code", "place__name")
    list_select_related = ("place", "account")
    autocomplete_fields = ("place",)
    fieldsets = (
        (None, {"fields": ("account", "place", "code", "name", "floor", "usage")}),
        ("Size", {"fields": ("surface_m2", "shares")}),
    )


@admin.register(ServicePlace)
class ServicePlaceAdmin(AccountScopedAdmin):
    list_display = ("delivery_point", "meter_type", "provider", "contract_reference", "place")
    list_filter = ("meter_type", "place")
    search_fields = ("delivery_point", "provider", "contract_reference")
    list_select_related = ("place", "account")
    autocomplete_fields = ("place",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "account",
                    "place",
                    "meter_type",
                    "provider",
                    "contract_reference",
                    "delivery_point",
                )
            },
        ),
    )


@admin.register(Gateway)
class GatewayAdmin(AccountScopedAdmin):
    list_display = ("name", "identifier", "communication_type", "place", "last_seen_at")
    list_filter = ("communication_type", "place")
    search_fields = ("name", "identifier")
    list_select_related = ("place", "account")
    autocomplete_fields = ("place",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "account",
                    "name",
                    "identifier",
                    "communication_type",
                    "place",
                    "last_seen_at",
                )
            },
        ),
    )


# --- meters and registers ------------------------------------------------------------------


class RegisterInlineFormSet(AccountScopedInlineFormSet):
    """A meter keeps exactly one default register, which cannot be deleted (as in the services)."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        kept = [
            form for form in self.forms if form.cleaned_data and not self._should_delete_form(form)
        ]
        if sum(1 for form in kept if form.cleaned_data.get("is_default")) != 1:
            raise ValidationError("A meter has exactly one default register: tick one.")
        for form in self.deleted_forms:
            register = form.instance
            if register.pk is None:
                continue
            if form.initial.get("is_default"):
                raise ValidationError(
                    "The default register cannot be deleted: make another one the default first."
                )
            if register.readings.exists():
                raise ValidationError(f"Register {register.code} has readings: it is kept.")


class RegisterInline(AccountScopedInline):
    """The meter's registers; saved by ``MeterAdmin.save_formset`` through the services."""

    model = Register
    formset = RegisterInlineFormSet
    fields = (
        "code",
        "obis_code",
        "name",
        "direction",
        "tariff_slot",
        "unit",
        "transformer_ratio",
        "conversion_factor",
        "is_default",
    )


class SubMeterInline(AccountScopedInline):
    """The meter's direct sub-meters, read-only, each with a link to its page."""

    model = Meter
    fk_name = "parent_meter"
    writable = False
    fields = ("serial_number", "name", "meter_type", "status", "place")
    readonly_fields = fields
    show_change_link = True
    verbose_name = "sub-meter"
    verbose_name_plural = "sub-meters"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("place")


class MeterDeviceInline(AccountScopedInline):
    """The serial-number history: written only by a device replacement (action on the list)."""

    model = MeterDevice
    writable = False
    fields = (
        "serial_number",
        "manufacturer",
        "model_reference",
        "installed_at",
        "removed_at",
        "initial_value",
        "final_value",
    )
    readonly_fields = fields
    verbose_name = "device"
    verbose_name_plural = "devices (serial-number history)"


@admin.register(Meter)
class MeterAdmin(AccountScopedAdmin):
    """Meters, created and changed through ``services.create_meter``/``update_meter``.

    The serial number is fixed once the meter exists (it changes by device replacement only);
    deleting goes through ``services.delete_meter``, whose refusals become error messages.
    Other apps add read-only sections below the form through ``page_sections``.
    """

    # Each ``section(request, meter)`` returns HTML for the meter's change page, or None. The
    # readings app adds the meter's latest readings and their history: metering does not
    # depend on readings (STYLE.md), so readings plugs itself in here.
    page_sections: list[Callable[[HttpRequest, Meter], str | None]] = []
    change_list_template = "admin/imports/meter_change_list.html"

    list_display = (
        "serial_number",
        "name",
        "meter_type",
        "status",
        "billing_type",
        "place",
        "estate",
        "parent_meter",
        "last_reading_value",
        "last_reading_at",
    )
    list_filter = ("meter_type", "status", "billing_type", "place")
    search_fields = ("serial_number", "name", "manufacturer", "location")
    list_select_related = ("place", "estate", "parent_meter", "account")
    autocomplete_fields = ("place", "estate", "service_place", "gateway", "tariff", "parent_meter")
    readonly_fields = ("last_reading_value", "last_reading_at")
    change_readonly_fields = ("serial_number",)
    inlines = (RegisterInline, SubMeterInline, MeterDeviceInline)
    fieldsets = (
        (None, {"fields": ("account", "serial_number", "name", "meter_type", "unit", "status")}),
        ("Billing", {"fields": ("billing_type", "billing_direction", "tariff")}),
        ("Location", {"fields": ("place", "estate", "service_place", "location")}),
        ("Hierarchy", {"fields": ("parent_meter", "is_main_meter")}),
        (
            "Device",
            {
                "fields": (
                    "communication_type",
                    "gateway",
                    "manufacturer",
                    "model_reference",
                    "multiplier",
                    "precision_digits",
                    "max_value",
                    "reading_interval",
                )
            },
        ),
        (
            "Inspections",
            {"fields": ("installation_date", "last_inspection_date", "next_inspection_date")},
        ),
        ("Notes", {"fields": ("description", "notes", "properties")}),
        ("Latest reading", {"fields": ("last_reading_value", "last_reading_at")}),
    )

    def get_urls(self):
        # The "Import from CSV" page (metering.admin_imports), linked from the list.
        return [*import_urls(self), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        context = {"import_url": import_url(request), **(extra_context or {})}
        return super().changelist_view(request, context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            sections = (section(request, obj) for section in self.page_sections)
            context["page_sections"] = [html for html in sections if html]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_inline_instances(self, request: HttpRequest, obj=None) -> list:
        # A new meter gets its default register from the service; registers come after.
        if obj is None:
            return []
        return super().get_inline_instances(request, obj)

    def create(self, request: HttpRequest, form: forms.ModelForm) -> Meter:
        return services.create_meter(
            account=form.cleaned_data["account"], values=model_values(form, form.cleaned_data)
        )

    def update(self, request: HttpRequest, instance: Meter, values: dict[str, Any]) -> Meter:
        return services.update_meter(meter=instance, values=values)

    def destroy(self, request: HttpRequest, obj: Meter) -> None:
        services.delete_meter(meter=obj)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not Register:
            return super().save_formset(request, form, formset, change)
        meter = form.instance
        save_inline_through_services(
            formset,
            parent_field="meter",
            create=lambda values: services.create_register(meter=meter, values=values),
            update=lambda register, values: services.update_register(
                register=register, values=values
            ),
            delete=lambda register: services.delete_register(register=register),
            # The new default first: it takes the role over before the old one gives it up.
            order=lambda register_form: not register_form.cleaned_data.get("is_default"),
        )
        return None
