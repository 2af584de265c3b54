"""Admin of index readings, written through the readings engine, and of period readings.

Adding, changing and deleting an index reading call ``readings.services`` as the API does, with
the user as actor and ``ADMIN`` as source, so the chain, the anomaly flags, the locks and the
audit history follow the same rules whatever the path (CONTRACT §4.1, §4.2, §4.7). The engine
decides: the form calls it as the last step of its validation, inside the admin's transaction,
so that each refusal (an invalid value, a duplicate date, a locked reading, a decommissioned
meter) is shown on the form it concerns instead of failing the request. Period readings follow
the same pattern over ``readings.periods`` (overlaps, locks and flags are its rules).

The meter's page gets a section with its latest readings and their history, added through
``MeterAdmin.page_sections`` (metering does not depend on readings).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import models
from django.db.models import Q, QuerySet
from django.forms.models import construct_instance
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header

from metering.admin import MeterAdmin
from metering.admin_base import AccountScopedAdmin, AccountScopedForm
from metering.admin_imports import IMPORT_KINDS, ImportKind, import_url
from metering.csv_files import csv_lines
from metering.domain import CURRENCIES
from metering.errors import ApiError, ReadingLocked
from metering.models import Account, Meter, Register
from readings import domain, imports, periods, selectors, services
from readings.admin_consumption import meter_consumption_section
from readings.management.commands.export_readings import COLUMNS as EXPORT_COLUMNS
from readings.management.commands.export_readings import export_rows
from readings.models import PeriodReading, Reading

# What the meter's page shows.
METER_PAGE_READINGS = 20
METER_PAGE_HISTORY = 50

# The reading's fields a person writes besides its meter, date and value.
DETAIL_FIELDS = (
    "reading_type",
    "is_estimated",
    "is_billing_reading",
    "photo_url",
    "reader_name",
    "notes",
)
# Fields of the add form passed to the engine as they are (``ReadingInput`` attributes).
INPUT_FIELDS = ("reading_type", "is_billing_reading", "photo_url", "reader_name", "notes")
# Where the engine's error details go on the form.
FORM_FIELD_OF_DETAIL = {"register": "register_code", "register_id": "register_code"}
# How the history names the fields it shows.
HISTORY_LABELS = {
    "register_id": "register",
    "lease_id": "lease",
    **{field: f"{flag} flag" for flag, field in domain.FLAG_FIELDS.items()},
}


def admin_actor(request: HttpRequest) -> services.Actor:
    """Who writes through the admin, as the audit history records it."""
    return services.Actor(f"user:{request.user.get_username()}", "ADMIN")


# --- the form --------------------------------------------------------------------------------


class ServiceWrittenForm(AccountScopedForm):
    """A form valid only once a readings service has written its row (``saved``).

    Model validation is the services' (values, duplicates, overlaps, locks): the form only
    builds the instance, which the admin uses for its log, then calls ``create`` or ``update``
    as the last step of its validation, and shows each refusal on the field it concerns.
    """

    # Who writes: set by ``ServiceWrittenAdmin.get_form`` on the form class it builds.
    actor: services.Actor | None = None
    # The service's names for what a refusal concerns → the form's fields.
    field_of_code: dict[str, str] = {}
    field_of_detail: dict[str, str] = {}
    editable_fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.saved = None

    def create(self, data: dict[str, Any]):
        """Write the new row through the service; its batch result."""
        raise NotImplementedError

    def update(self, values: dict[str, Any]):
        """Change ``self.instance`` through the service; the row written."""
        raise NotImplementedError

    def _post_clean(self) -> None:
        try:
            self.instance = construct_instance(
                self, self.instance, self._meta.fields, self._meta.exclude
            )
        except ValidationError as error:
            self._update_errors(error)
        if self._errors:
            return
        if self.actor is None:
            raise ImproperlyConfigured(f"{type(self).__name__} writes for an actor: set `actor`.")
        if self.instance._state.adding:
            self._create()
        else:
            self._update()

    def _create(self) -> None:
        try:
            result = self.create(self.cleaned_data)
        except ApiError as error:  # a decommissioned meter
            self.add_error("meter", str(error.detail))
            return
        if result.errors:
            error = result.errors[0]
            self._refused(error.code, error.message, error.details)
        else:
            self.saved = result.accepted[0]

    def _update(self) -> None:
        values = {
            name: self.cleaned_data[name]
            for name in self.changed_data
            if name in self.editable_fields and name in self.cleaned_data
        }
        if not values:
            self.saved = self.instance
            return
        try:
            self.saved = self.update(values)
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                self._refused("validation_error", "", error.message_dict)
            else:
                self.add_error(None, error)
        except ApiError as error:
            self._refused(error.error_code, str(error.detail), error.details)

    def _refused(self, code: str, message: str, details: dict[str, list[str]]) -> None:
        """Show a service's refusal on the field it concerns (on the form when none)."""
        if code in self.field_of_code:
            self.add_error(self.field_of_code[code], message)
            return
        if not details:
            self.add_error(None, message)
            return
        for key, key_messages in details.items():
            name = self.field_of_detail.get(key, key)
            self.add_error(name if name in self.fields else None, key_messages)


class ReadingForm(ServiceWrittenForm):
    """A reading's editable fields; valid only once the engine has written it (see module doc).

    On the add page the register is given by its code (empty: the meter's default register);
    when the meter is known (``?meter=<id>`` or a posted meter) its registers are offered.
    """

    register_code = forms.CharField(
        label="Register",
        required=False,
        max_length=50,
        help_text="Code of one of the meter's registers; empty: its default register.",
    )

    field_of_code = {"duplicate_reading": "reading_date"}
    field_of_detail = FORM_FIELD_OF_DETAIL
    editable_fields = services.EDITABLE_FIELDS
    field_help = {
        "is_estimated": "Ticked by itself for an ESTIMATED reading.",
        "reading_date": "Not more than 5 minutes in the future.",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, text in self.field_help.items():
            if name in self.fields:
                self.fields[name].help_text = text
        if self.instance.pk is not None:
            # A reading never moves to another register.
            self.fields.pop("register_code", None)
        else:
            self._offer_registers()

    def _offer_registers(self) -> None:
        meter_field = self.fields.get("meter")
        if meter_field is None or "register_code" not in self.fields:
            return
        meter_id = (
            self.data.get(self.add_prefix("meter")) if self.is_bound else self.initial.get("meter")
        )
        if not meter_id:
            return
        try:
            registers = list(
                Register.objects.filter(meter__in=meter_field.queryset, meter_id=meter_id).order_by(
                    "-is_default", "code"
                )
            )
        except (TypeError, ValueError, ValidationError):
            return  # not a meter id: the meter field reports it
        if registers:
            # Still a text field: the engine, not the form, says which codes exist.
            self.fields["register_code"].widget = forms.Select(
                choices=[(register.code, register_choice_label(register)) for register in registers]
            )

    def create(self, data: dict[str, Any]) -> services.BatchResult:
        item = services.ReadingInput(
            reading_date=data["reading_date"],
            value=data["value"],
            register_code=data.get("register_code") or None,
            # Unticked: the engine's default (estimated when the type is ESTIMATED).
            is_estimated=True if data.get("is_estimated") else None,
            **{name: data[name] for name in INPUT_FIELDS if name in data},
        )
        return services.create_readings(meter=data["meter"], items=[item], actor=self.actor)

    def update(self, values: dict[str, Any]) -> Reading:
        return services.update_reading(reading=self.instance, values=values, actor=self.actor)


def register_choice_label(register: Register) -> str:
    """``1.8.1 · Night (default)``, without saying twice what the code says."""
    label = register.code
    if register.name and register.name.casefold() != register.code.casefold():
        label = f"{label} · {register.name}"
    if register.is_default and register.code != Register.DEFAULT_CODE:
        label = f"{label} (default)"
    return label


# --- the list ------------------------------------------------------------------------------


class AnomalyFilter(admin.SimpleListFilter):
    """Readings with one anomaly flag (CONTRACT §4.2), with any, or with none."""

    title = "anomaly"
    parameter_name = "anomaly"

    def lookups(self, request, model_admin):
        return [
            *[(flag, flag) for flag in domain.FLAGS],
            ("any", "Any anomaly"),
            ("none", "No anomaly"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        any_flag = reduce(or_, (Q(**{field: True}) for field in domain.FLAG_FIELDS.values()))
        if value in domain.FLAG_FIELDS:
            return queryset.filter(**{domain.FLAG_FIELDS[value]: True})
        if value == "any":
            return queryset.filter(any_flag)
        if value == "none":
            return queryset.exclude(any_flag)
        return queryset


# --- history -------------------------------------------------------------------------------


def shown(value: Any) -> str:
    """A value of the history as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.datetime):
        return f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S %Z}"
    return str(value)


def is_blank(value: Any) -> bool:
    return value is None or value is False or value == ""


def history_rows(
    entries: list[selectors.HistoryEntry],
    register_codes: dict[int, str],
    readings: dict[int, Reading] | None = None,
) -> list[dict[str, Any]]:
    """What the history table shows of each entry.

    ``register_codes`` names registers by code rather than id; ``readings``, when given, names
    the reading of each entry (a column of its own, for the history of several readings).
    """

    def value(name: str, raw: Any) -> str:
        if name == "register_id" and raw is not None:
            return register_codes.get(raw, str(raw))
        return shown(raw)

    rows = []
    for entry in entries:
        changes = [
            (HISTORY_LABELS.get(name, name), value(name, before), value(name, after))
            for name, (before, after) in entry.changes.items()
            # An insert or a delete lists every field: only the ones with a value matter.
            if entry.action == "update" or not (is_blank(before) and is_blank(after))
        ]
        row = {"entry": entry, "changes": changes}
        if readings is not None:
            reading = readings.get(entry.reading_id)
            row["reading"] = reading
            row["reading_url"] = (
                reverse("admin:readings_reading_change", args=[entry.reading_id])
                if reading is not None
                else None
            )
        rows.append(row)
    return rows


# --- the admin -----------------------------------------------------------------------------


class ServiceWrittenAdmin(AccountScopedAdmin):
    """An admin whose form writes through the readings services while it validates (its
    ``saved`` row), and whose locked objects (``is_locked``) cannot be changed nor deleted."""

    @admin.display(description="anomalies")
    def anomalies(self, obj) -> str | None:
        return " ".join(obj.anomaly_flags) or None

    @admin.display(description="locked", boolean=True)
    def locked(self, obj) -> bool:
        return obj.is_locked

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change, **kwargs)
        form.actor = admin_actor(request)
        return form

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        # The form's validation wrote the row through the services: go on with that row.
        obj.pk = form.saved.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.is_locked:
            context["show_delete"] = False
        return super().render_change_form(request, context, add, change, form_url, obj)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and obj.is_locked and self.has_delete_permission(request, obj):
            self.message_user(request, ReadingLocked.default_detail, messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_change",
                    args=[obj.pk],
                    current_app=self.admin_site.name,
                )
            )
        return super().delete_view(request, object_id, extra_context)


@admin.register(Reading)
class ReadingAdmin(ServiceWrittenAdmin):
    """Index readings, written through ``readings.services`` (see the module docstring).

    A locked reading (its register's ``locked_until`` reaches it) is shown read-only and its
    deletion is refused with the ``reading_locked`` message.
    """

    scope = "readings"
    form = ReadingForm
    change_list_template = "admin/imports/reading_change_list.html"
    list_display = (
        "meter_serial",
        "register_code",
        "reading_date",
        "value",
        "previous_value",
        "consumption",
        "is_rollover",
        "anomalies",
        "reading_type",
        "source",
        "locked",
    )
    list_display_links = ("reading_date",)
    list_filter = (AnomalyFilter, "reading_type", "source", "meter", "meter__place")
    search_fields = ("meter__serial_number", "register__code")
    # The register's meter too: a row's label (``Reading.__str__``) names it.
    list_select_related = ("meter", "register__meter", "account")
    date_hierarchy = "reading_date"
    ordering = ("-reading_date", "-pk")
    autocomplete_fields = ("meter",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = (
        "register_label",
        "lock",
        "lease",
        "previous_value",
        "consumption",
        "is_rollover",
        "anomalies",
        "source",
        "created_by",
        "created_at",
        "updated_at",
        "history",
    )
    change_readonly_fields = ("meter",)
    add_fieldsets = (
        (None, {"fields": ("meter", "register_code", "reading_date", "value")}),
        ("Details", {"fields": DETAIL_FIELDS}),
    )
    fieldsets = (
        (
            None,
            {"fields": ("account", "meter", "register_label", "reading_date", "value", "lock")},
        ),
        ("Details", {"fields": (*DETAIL_FIELDS, "lease")}),
        (
            "Computed by the readings engine",
            {
                "fields": (
                    "previous_value",
                    "consumption",
                    "is_rollover",
                    "anomalies",
                    "source",
                    "created_by",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        ("History", {"fields": ("history",)}),
    )

    # --- columns and read-only fields -------------------------------------------------------

    @admin.display(description="meter", ordering="meter__serial_number")
    def meter_serial(self, reading: Reading) -> str:
        return reading.meter.serial_number

    @admin.display(description="register", ordering="register__code")
    def register_code(self, reading: Reading) -> str:
        return reading.register.code

    @admin.display(description="register")
    def register_label(self, reading: Reading) -> str:
        return register_choice_label(reading.register)

    @admin.display(description="lock")
    def lock(self, reading: Reading) -> str:
        if not reading.is_locked:
            return "Not locked."
        until = shown(reading.register.locked_until)
        return f"{ReadingLocked.default_detail} (register locked until {until})"

    @admin.display(description="changes")
    def history(self, reading: Reading) -> str:
        entries = selectors.reading_history(reading_ids=[reading.pk])
        rows = history_rows(entries, {reading.register_id: reading.register.code})
        return render_to_string("admin/readings/reading/history.html", {"rows": rows})

    # --- scoping and permissions ------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("meter", "register__meter", "account")

    def has_change_permission(self, request: HttpRequest, obj: Reading | None = None) -> bool:
        return super().has_change_permission(request, obj) and not (obj and obj.is_locked)

    # --- writes through the engine ----------------------------------------------------------

    def destroy(self, request: HttpRequest, obj: Reading) -> None:
        services.delete_reading(reading=obj, actor=admin_actor(request))

    # --- export and import ------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("export/", view(self.export_view), name="readings_reading_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        # "Export to CSV" carries the list's filters, search and date hierarchy, not its page.
        query = request.GET.copy()
        query.pop(PAGE_VAR, None)
        export_url = reverse("admin:readings_reading_export", current_app=self.admin_site.name)
        context = {
            "export_url": f"{export_url}?{query.urlencode()}" if query else export_url,
            "import_url": import_url(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The readings the list shows with the same query string (filters, search, date
        hierarchy; every page), as ``manage.py export_readings`` writes them, streamed.

        The list's own queryset selects them, so they are the member's accounts' only.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            self.message_user(
                request, "These filters are not valid: nothing exported.", messages.ERROR
            )
            return HttpResponseRedirect(
                reverse("admin:readings_reading_changelist", current_app=self.admin_site.name)
            )
        readings = changelist.get_queryset(request)
        response = StreamingHttpResponse(
            csv_lines(EXPORT_COLUMNS, export_rows(readings)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = content_disposition_header(
            as_attachment=True, filename=self.export_filename(request)
        )
        return response

    def export_filename(self, request: HttpRequest) -> str:
        """``readings-acme-20240131-1530.csv`` (the account's slug when the user has one)."""
        account_ids = self.account_ids(request, "read")
        slug = ""
        if account_ids is not None and len(account_ids) == 1:
            slug = Account.objects.filter(pk__in=account_ids).values_list("slug", flat=True).first()
        stamp = f"{timezone.localtime():%Y%m%d-%H%M}"
        return "-".join(part for part in ("readings", slug, stamp) if part) + ".csv"

    # --- the meter's page -------------------------------------------------------------------

    def meter_section(self, request: HttpRequest, meter: Meter) -> str | None:
        """The meter's latest readings and their history; None when the user may not see them.

        A constant number of queries: the latest readings, the history (two), the readings it
        names that are not among the latest, and the meter's register codes.
        """
        probe = Reading(account_id=meter.account_id, meter=meter)
        if not self.has_view_permission(request, probe):
            return None
        latest = list(
            Reading.objects.filter(meter=meter)
            .select_related("register")
            .order_by("-reading_date", "-pk")[:METER_PAGE_READINGS]
        )
        entries = selectors.reading_history(meter_id=meter.pk, limit=METER_PAGE_HISTORY)
        named = {reading.pk: reading for reading in latest}
        missing = {entry.reading_id for entry in entries} - named.keys()
        if missing:
            named |= Reading.objects.select_related("register").in_bulk(missing)
        site = self.admin_site.name
        changelist = reverse("admin:readings_reading_changelist", current_app=site)
        may_add = (
            meter.status != "DECOMMISSIONED"
            and self.has_add_permission(request)
            and self.role_allows(request, "write", probe)
        )
        context = {
            "meter": meter,
            "latest": [
                {
                    "reading": reading,
                    "url": reverse("admin:readings_reading_change", args=[reading.pk]),
                    "value": shown(reading.value),
                    "previous_value": shown(reading.previous_value),
                    "consumption": shown(reading.consumption),
                    "locked": shown(reading.is_locked),
                }
                for reading in latest
            ],
            "latest_count": METER_PAGE_READINGS,
            "list_url": f"{changelist}?{urlencode({'meter__id__exact': meter.pk})}",
            "add_url": (
                reverse("admin:readings_reading_add", current_app=site)
                + f"?{urlencode({'meter': meter.pk})}"
                if may_add
                else None
            ),
            "history_rows": history_rows(
                entries, dict(meter.registers.values_list("pk", "code")) if entries else {}, named
            ),
            "history_count": METER_PAGE_HISTORY,
        }
        return render_to_string("admin/readings/meter_readings.html", context, request=request)


def meter_readings_section(request: HttpRequest, meter: Meter) -> str | None:
    return admin.site.get_model_admin(Reading).meter_section(request, meter)


if meter_readings_section not in MeterAdmin.page_sections:
    MeterAdmin.page_sections.append(meter_readings_section)
# Its monthly consumption over two years, as a chart (readings.admin_consumption).
if meter_consumption_section not in MeterAdmin.page_sections:
    MeterAdmin.page_sections.append(meter_consumption_section)


# --- period readings ------------------------------------------------------------------------

# The currency choice of the form; empty: the account's currency.
CURRENCY_CHOICES = [("", "The account's currency"), *[(c, c) for c in sorted(CURRENCIES)]]


class PeriodReadingForm(ServiceWrittenForm):
    """A period reading's fields; valid only once ``readings.periods`` has written it."""

    cost_currency = forms.ChoiceField(choices=CURRENCY_CHOICES, required=False)
    editable_fields = periods.EDITABLE_FIELDS

    def create(self, data: dict[str, Any]) -> periods.PeriodBatchResult:
        item = periods.PeriodInput(
            **{name: data[name] for name in periods.EDITABLE_FIELDS if name in data}
        )
        return periods.create_period_readings(meter=data["meter"], items=[item], actor=self.actor)

    def update(self, values: dict[str, Any]) -> PeriodReading:
        return periods.update_period_reading(period=self.instance, values=values, actor=self.actor)


@admin.register(PeriodReading)
class PeriodReadingAdmin(ServiceWrittenAdmin):
    """Period readings (utility bills), written through ``readings.periods``.

    A locked period reading (it starts before its meter's lock instant) is shown read-only and
    its deletion is refused with the ``reading_locked`` message.
    """

    scope = "readings"
    form = PeriodReadingForm
    list_display = (
        "meter_serial",
        "start_date",
        "end_date",
        "consumption",
        "unit",
        "cost",
        "cost_currency",
        "demand_kw",
        "anomalies",
        "is_estimated",
        "source",
        "locked",
    )
    list_display_links = ("start_date",)
    list_filter = (AnomalyFilter, "is_estimated", "source", "meter", "meter__place")
    search_fields = ("meter__serial_number", "meter__name", "notes")
    list_select_related = ("meter", "account")
    date_hierarchy = "start_date"
    ordering = ("-start_date", "-pk")
    autocomplete_fields = ("meter",)
    readonly_fields = (
        "lock",
        "unit",
        "anomalies",
        "source",
        "created_by",
        "created_at",
        "updated_at",
        "history",
    )
    change_readonly_fields = ("meter",)
    add_fieldsets = (
        (None, {"fields": ("meter", "start_date", "end_date", "consumption")}),
        ("Cost", {"fields": ("cost", "cost_currency", "demand_kw")}),
        ("Details", {"fields": ("is_estimated", "notes")}),
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "account",
                    "meter",
                    "start_date",
                    "end_date",
                    "consumption",
                    "unit",
                    "lock",
                )
            },
        ),
        ("Cost", {"fields": ("cost", "cost_currency", "demand_kw")}),
        ("Details", {"fields": ("is_estimated", "notes")}),
        (
            "Computed",
            {"fields": ("anomalies", "source", "created_by", "created_at", "updated_at")},
        ),
        ("History", {"fields": ("history",)}),
    )

    # --- columns and read-only fields -------------------------------------------------------

    @admin.display(description="meter", ordering="meter__serial_number")
    def meter_serial(self, period: PeriodReading) -> str:
        return period.meter.serial_number

    @admin.display(description="unit")
    def unit(self, period: PeriodReading) -> str:
        return period.meter.unit

    @admin.display(description="lock")
    def lock(self, period: PeriodReading) -> str:
        if not period.is_locked:
            return "Not locked."
        until = shown(period.meter_locked_until)
        return f"{ReadingLocked.default_detail} (meter locked until {until})"

    @admin.display(description="changes")
    def history(self, period: PeriodReading) -> str:
        entries = selectors.period_reading_history(period_ids=[period.pk])
        rows = history_rows(entries, {})
        return render_to_string("admin/readings/reading/history.html", {"rows": rows})

    # --- scoping and permissions ------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_lock().select_related("meter", "account")

    def has_change_permission(self, request: HttpRequest, obj: PeriodReading | None = None) -> bool:
        return super().has_change_permission(request, obj) and not (obj and obj.is_locked)

    # --- writes through the services --------------------------------------------------------

    def destroy(self, request: HttpRequest, obj: PeriodReading) -> None:
        periods.delete_period_reading(period=obj, actor=admin_actor(request))


# --- the import page -------------------------------------------------------------------------


def run_readings_import(*, account, path: str, dry_run: bool, user) -> imports.ImportResult:
    return imports.import_readings(
        account=account, path=path, dry_run=dry_run, actor_label=f"user:{user.get_username()}"
    )


def run_period_readings_import(*, account, path: str, dry_run: bool, user) -> imports.ImportResult:
    return imports.import_period_readings(
        account=account, path=path, dry_run=dry_run, actor_label=f"user:{user.get_username()}"
    )


# The admin's import page (metering.admin_imports) offers readings files too: OPERATOR and up.
IMPORT_KINDS.setdefault(
    "readings",
    ImportKind(
        label="Index readings",
        scope="readings",
        run=run_readings_import,
        changelist="admin:readings_reading_changelist",
    ),
)
IMPORT_KINDS.setdefault(
    "period_readings",
    ImportKind(
        label="Period readings",
        scope="readings",
        run=run_period_readings_import,
        changelist="admin:readings_periodreading_changelist",
    ),
)


# The device replacement action on the meter list (its own module; it uses ``admin_actor``).
from readings import admin_devices  # noqa: E402, F401
