"""The billing periods' admin (CONTRACT §5): created, changed and deleted through
``billing.services.create_period``/``update_period``/``delete_period``, computed and closed
through ``compute_period``/``close_period``, as the API does.

- A closed period is read-only: no change, no delete (the services refuse them too).
- Computing and closing: actions on the list ("Compute selected periods", "Close selected
  periods", and "Close selected periods, even with issues", which first shows a confirmation
  page listing the issues), and buttons on the period's page (its "Close…" page lists the
  issues and asks before closing with them). A refusal of a service (a 409 ``conflict``: the
  period is closed, it has unresolved issues...) is an error message, never a 500.
- The period's page shows its issues, its charges and, per lease, a link to the printable
  statement (``billing.statements.render_html``), an admin view scoped like the page.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse

from billing import selectors, statements
from billing import services as billing_services
from billing.admin import SAVE_ERRORS, BillingAdmin, decimal_shown, refusal_message
from billing.models import BillingPeriod, Charge, Lease
from metering.models import Register

# The period's page lists this many charges at most; the charges' list has them all.
PAGE_CHARGES = 500
CLOSE_TEMPLATE = "admin/billing/billingperiod/close_confirmation.html"
FORCE_CLOSE_ACTION = "force_close_selected_periods"


def closed_by(request: HttpRequest) -> str:
    """Who closes, as the readings' audit names admin users."""
    return f"user:{request.user.get_username()}"


def issue_texts(issues: list[Any]) -> list[str]:
    """A period's ``issues`` as sentences: ``SERIAL (register CODE): message [code]``.

    One query for the register codes they name.
    """
    register_ids = {
        issue.get("register_id")
        for issue in issues
        if isinstance(issue, dict) and issue.get("register_id")
    }
    codes = (
        dict(Register.objects.filter(pk__in=register_ids).values_list("pk", "code"))
        if register_ids
        else {}
    )
    return [issue_text(issue, codes) for issue in issues]


def issue_text(issue: Any, register_codes: dict[int, str]) -> str:
    if not isinstance(issue, dict):
        return str(issue)
    where = issue.get("serial_number") or ""
    code = register_codes.get(issue.get("register_id"))
    if code:
        where = f"{where} (register {code})"
    text = f"{where}: {issue.get('message', '')}" if where else str(issue.get("message", ""))
    known = {"serial_number", "register_id", "message", "meter_id"}
    details = [
        str(value) if key == "code" else f"{key}: {value}"
        for key, value in issue.items()
        if key not in known and value not in (None, "")
    ]
    return f"{text} [{', '.join(details)}]" if details else text


def period_summary(period: BillingPeriod) -> str:
    total = "—" if period.total_amount is None else f"{period.total_amount} {period.currency}"
    return (
        f"{period.charges.count()} charge line(s), total {total} (VAT included), "
        f"{len(period.issues)} issue(s)"
    )


@admin.register(BillingPeriod)
class BillingPeriodAdmin(BillingAdmin):
    """Billing periods: see the module docstring."""

    change_form_template = "admin/billing/billingperiod/change_form.html"
    list_display = (
        "name",
        "place",
        "start_date",
        "end_date",
        "status",
        "total",
        "issue_count",
        "computed_at",
        "closed_at",
    )
    list_filter = ("status", "place")
    search_fields = ("name", "place__code", "place__name")
    list_select_related = ("place", "account")
    date_hierarchy = "start_date"
    ordering = ("-start_date", "place__code", "pk")
    actions = ("compute_selected_periods", "close_selected_periods", FORCE_CLOSE_ACTION)
    autocomplete_fields = ("place",)
    readonly_fields = (
        "days",
        "status",
        "currency",
        "total",
        "issue_list",
        "computed_at",
        "closed_at",
        "closed_by",
    )
    add_fieldsets = (
        (
            None,
            {
                "fields": ("account", "place", "name", "start_date", "end_date"),
                "description": "The currency is the account's. Compute the period once saved.",
            },
        ),
    )
    fieldsets = (
        (
            None,
            {
                "fields": ("account", "place", "name", "start_date", "end_date", "days"),
                "description": "Changing a draft drops its charges: compute it again.",
            },
        ),
        ("Status", {"fields": ("status", "computed_at", "closed_at", "closed_by")}),
        ("Result", {"fields": ("total", "currency", "issue_list")}),
    )

    # --- columns and read-only fields -------------------------------------------------------

    @admin.display(description="days")
    def days(self, period: BillingPeriod) -> int:
        return period.days

    @admin.display(description="total (VAT incl.)", ordering="total_amount")
    def total(self, period: BillingPeriod) -> str:
        if period.total_amount is None:
            return "—"
        return f"{period.total_amount} {period.currency}"

    @admin.display(description="issues")
    def issue_count(self, period: BillingPeriod) -> int:
        return len(period.issues or [])

    @admin.display(description="issues")
    def issue_list(self, period: BillingPeriod) -> str:
        return render_to_string(
            "admin/billing/billingperiod/issues.html",
            {"issues": issue_texts(period.issues or []), "period": period},
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The statement needs the account (time zone) and the place.
        return super().get_queryset(request).select_related("place", "account")

    # --- permissions: a closed period is frozen ---------------------------------------------

    def has_change_permission(self, request: HttpRequest, obj: BillingPeriod | None = None) -> bool:
        return super().has_change_permission(request, obj) and not (obj and obj.is_closed)

    def has_delete_permission(self, request: HttpRequest, obj: BillingPeriod | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj and obj.is_closed)

    def may_write(self, request: HttpRequest, period: BillingPeriod) -> bool:
        """Whether the user may compute or close ``period`` (their role in its account)."""
        return self.role_allows(request, "write", period)

    # --- writes through the services --------------------------------------------------------

    def create(self, request: HttpRequest, form: forms.ModelForm) -> BillingPeriod:
        return billing_services.create_period(
            account=form.cleaned_data["account"], values=self.period_values(form, form.cleaned_data)
        )

    def update(
        self, request: HttpRequest, instance: BillingPeriod, values: dict[str, Any]
    ) -> BillingPeriod:
        # Saving an unchanged page keeps the charges (a change drops them).
        if not values:
            return instance
        return billing_services.update_period(period=instance, values=values)

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        if change:
            stored = BillingPeriod.objects.get(pk=obj.pk)
            saved = self.update(request, stored, self.period_values(form, form.changed_data))
        else:
            saved = self.create(request, form)
        obj.pk = saved.pk
        obj.refresh_from_db()
        obj._state.adding = False

    @staticmethod
    def period_values(form: forms.ModelForm, names) -> dict[str, Any]:
        editable = ("place", "name", "start_date", "end_date")
        return {name: form.cleaned_data[name] for name in names if name in editable}

    def destroy(self, request: HttpRequest, obj: BillingPeriod) -> None:
        billing_services.delete_period(period=obj)

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # A draft's charges go with it (``delete_period``): nobody deletes charges by hand.
        perms_needed.discard(str(Charge._meta.verbose_name))
        return deleted, counts, perms_needed, protected

    # --- actions ----------------------------------------------------------------------------

    def writable_periods(self, request: HttpRequest, queryset: QuerySet) -> list[BillingPeriod]:
        """The selected periods the user may write, in date order; a message for the others."""
        periods = []
        for period in queryset.select_related("place", "account").order_by("start_date", "pk"):
            if not self.may_write(request, period):
                self.message_user(
                    request,
                    f"{period}: your role does not allow computing or closing it.",
                    messages.ERROR,
                )
            elif period.is_closed:
                self.message_user(
                    request, f"{period} is closed: its charges are frozen.", messages.WARNING
                )
            else:
                periods.append(period)
        return periods

    def compute(self, request: HttpRequest, period: BillingPeriod) -> bool:
        try:
            period = billing_services.compute_period(period=period)
        except SAVE_ERRORS as error:
            self.message_user(
                request, f"{period}: {refusal_message(error, 'period')}", messages.ERROR
            )
            return False
        self.message_user(
            request, f"{period} computed: {period_summary(period)}.", messages.SUCCESS
        )
        return True

    def close(self, request: HttpRequest, period: BillingPeriod, *, force: bool) -> bool:
        try:
            period = billing_services.close_period(
                period=period, force=force, closed_by=closed_by(request)
            )
        except SAVE_ERRORS as error:
            message = f"{period} is not closed: {refusal_message(error, 'period')}"
            if getattr(error, "details", {}).get("issues"):
                message += " To close it with its issues, use “Close…” on its page or the "
                message += "action “Close selected periods, even with issues”."
            self.message_user(request, message, messages.ERROR)
            return False
        self.message_user(request, f"{period} closed: {period_summary(period)}.", messages.SUCCESS)
        return True

    @admin.action(description="Compute selected periods", permissions=["change"])
    def compute_selected_periods(self, request: HttpRequest, queryset: QuerySet) -> None:
        for period in self.writable_periods(request, queryset):
            self.compute(request, period)

    @admin.action(
        description="Close selected periods (refused when they have issues)",
        permissions=["change"],
    )
    def close_selected_periods(self, request: HttpRequest, queryset: QuerySet) -> None:
        for period in self.writable_periods(request, queryset):
            self.close(request, period, force=False)

    @admin.action(
        description="Close selected periods, even with issues (asks first)",
        permissions=["change"],
    )
    def force_close_selected_periods(self, request: HttpRequest, queryset: QuerySet):
        if request.POST.get("confirm") != "yes":
            periods = self.writable_periods(request, queryset)
            if not periods:
                return None
            return self.close_confirmation(request, periods, action=FORCE_CLOSE_ACTION)
        for period in self.writable_periods(request, queryset):
            self.close(request, period, force=True)
        return None

    def close_confirmation(
        self, request: HttpRequest, periods: list[BillingPeriod], *, action: str | None = None
    ) -> TemplateResponse:
        """The page asking before closing ``periods``: each one's issues at its last computation.

        ``action``: posted back to the list as that action; else to the period's close view.
        """
        rows = [
            {
                "period": period,
                "url": reverse("admin:billing_billingperiod_change", args=[period.pk]),
                "issues": issue_texts(period.issues or []),
            }
            for period in periods
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Close billing periods, even with issues" if action else f"Close {periods[0]}",
            "opts": self.opts,
            "rows": rows,
            "with_issues": any(row["issues"] for row in rows),
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "form_url": (
                reverse("admin:billing_billingperiod_changelist")
                if action
                else reverse("admin:billing_billingperiod_close", args=[periods[0].pk])
            ),
            "period": None if action else periods[0],
        }
        return TemplateResponse(request, CLOSE_TEMPLATE, context)

    # --- the period's own views -------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/compute/",
                view(self.compute_view),
                name="billing_billingperiod_compute",
            ),
            path(
                "<path:object_id>/close/", view(self.close_view), name="billing_billingperiod_close"
            ),
            path(
                "<path:object_id>/statements/<int:lease_id>/",
                view(self.statement_view),
                name="billing_billingperiod_statement",
            ),
            *super().get_urls(),
        ]

    def period_or_redirect(
        self, request: HttpRequest, object_id: str
    ) -> BillingPeriod | HttpResponse:
        """The period, or the admin's "not found" redirect (another account's period too)."""
        period = self.get_object(request, unquote(object_id))
        if period is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return period

    def change_url(self, period: BillingPeriod) -> str:
        return reverse(
            "admin:billing_billingperiod_change", args=[period.pk], current_app=self.admin_site.name
        )

    def compute_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        period = self.period_or_redirect(request, object_id)
        if isinstance(period, HttpResponse):
            return period
        if not self.may_write(request, period):
            raise PermissionDenied
        if period.is_closed:
            self.message_user(
                request, f"{period} is closed: its charges are frozen.", messages.ERROR
            )
        else:
            self.compute(request, period)
        return HttpResponseRedirect(self.change_url(period))

    def close_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what closing means and the period's issues; POST: close (``force`` to close it
        with its issues)."""
        period = self.period_or_redirect(request, object_id)
        if isinstance(period, HttpResponse):
            return period
        if not self.may_write(request, period):
            raise PermissionDenied
        if period.is_closed:
            self.message_user(request, f"{period} is already closed.", messages.WARNING)
            return HttpResponseRedirect(self.change_url(period))
        if request.method == "POST":
            if self.close(request, period, force="force" in request.POST):
                return HttpResponseRedirect(self.change_url(period))
            # Closing computed first, then was refused and rolled back: compute again, so that
            # this page, shown again, lists the issues that stopped it.
            try:
                billing_services.compute_period(period=period)
            except SAVE_ERRORS:
                return HttpResponseRedirect(self.change_url(period))
            return HttpResponseRedirect(request.get_full_path())
        return self.close_confirmation(request, [period])

    def statement_view(self, request: HttpRequest, object_id: str, lease_id: int) -> HttpResponse:
        """The printable statement of a lease for the period (``billing.statements``)."""
        period = self.period_or_redirect(request, object_id)
        if isinstance(period, HttpResponse):
            return period
        lease = (
            Lease.objects.filter(pk=lease_id, account_id=period.account_id)
            .select_related("tenant", "estate__place")
            .first()
        )
        if lease is None:
            raise Http404("No such lease in this period's account.")
        page = statements.render_html(
            selectors.statement(period=period, lease=lease), request=request
        )
        return page if isinstance(page, HttpResponse) else HttpResponse(page)

    # --- the period's page ------------------------------------------------------------------

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            writable = not obj.is_closed and self.may_write(request, obj)
            context["period_tools"] = {
                "compute_url": (
                    reverse("admin:billing_billingperiod_compute", args=[obj.pk])
                    if writable
                    else None
                ),
                "close_url": (
                    reverse("admin:billing_billingperiod_close", args=[obj.pk])
                    if writable
                    else None
                ),
            }
            context["period_section"] = self.period_section(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def period_section(self, request: HttpRequest, period: BillingPeriod) -> str:
        """The period's statements (a link per lease) and charges, read-only.

        Three queries: the charges, their count, and the leases.
        """
        charges = list(
            Charge.objects.filter(billing_period=period)
            .select_related("lease__tenant", "estate", "meter", "register")
            .order_by(
                "estate__code",
                "is_vacancy",
                "start_date",
                "meter__serial_number",
                "register__code",
                "pk",
            )[:PAGE_CHARGES]
        )
        count = len(charges)
        if count == PAGE_CHARGES:
            count = period.charges.count()
        totals: dict[int, Decimal] = defaultdict(Decimal)
        for charge in charges:
            if charge.lease_id is not None:
                totals[charge.lease_id] += charge.total_amount
        leases = selectors.period_leases(period=period).order_by("estate__code", "start_date")
        changelist = reverse("admin:billing_charge_changelist")
        context = {
            "period": period,
            "statements": [
                {
                    "lease": lease,
                    "total": totals.get(lease.pk),
                    "url": reverse(
                        "admin:billing_billingperiod_statement", args=[period.pk, lease.pk]
                    ),
                }
                for lease in leases
            ],
            "charges": [charge_row(charge) for charge in charges],
            "charge_count": count,
            "charges_shown": PAGE_CHARGES,
            "charges_url": f"{changelist}?{urlencode({'billing_period__id__exact': period.pk})}",
        }
        return render_to_string(
            "admin/billing/billingperiod/period_section.html", context, request=request
        )


def charge_row(charge: Charge) -> dict[str, Any]:
    """A charge line as the period's page shows it."""
    if charge.is_vacancy:
        who = f"vacancy ({charge.estate.code})" if charge.estate_id else "vacancy"
    else:
        who = str(charge.lease) if charge.lease_id else "—"
    return {
        "charge": charge,
        "who": who,
        "register": charge.register.code if charge.register_id else "—",
        "index_start": decimal_shown(charge.index_start),
        "index_end": decimal_shown(charge.index_end),
        "consumption": decimal_shown(charge.consumption),
        "unit_price": decimal_shown(charge.unit_price),
        "share": decimal_shown(charge.share),
    }
