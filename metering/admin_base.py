"""The base of every admin page: account scoping, role permissions, writes through services.

Every ``ModelAdmin`` of the project derives from ``AccountScopedAdmin`` and every inline from
``AccountScopedInline``; the rules of CONTRACT §1 are applied here, not admin by admin:

- a member sees and changes only the objects of their accounts: changelists, change pages
  (another account's object is "not found"), foreign-key choices, autocomplete and list
  filters; superusers see every account;
- what a member may do follows their role in the object's account (``domain.ROLE_SCOPES``):
  an admin declares its ``scope`` area (``meters``, ``readings``, ``billing``), reads need
  ``<scope>:read`` and writes ``<scope>:write``; ``scope = None`` means the ``ADMIN`` role only.
  Django's per-model auth permissions play no part for members;
- adding, changing and deleting go through the services (``create``/``update``/``destroy``
  hooks), and a service's refusal to delete becomes an error message, never a 500.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from metering import domain, services
from metering.errors import ApiError
from metering.models import Account, KeyBase, Membership

# What a delete service may refuse with; the admin shows it as an error message.
DELETE_ERRORS = (ApiError, models.ProtectedError, models.RestrictedError)

AccountIds = frozenset[uuid.UUID] | None  # None: every account (superusers)


# --- which account an object belongs to ----------------------------------------------------


@cache
def account_lookup(model: type[models.Model]) -> str | None:
    """The ORM path from ``model`` to its account (``account``, ``meter__account``, ``pk``).

    None for models that belong to no account (users).
    """
    if model is Account:
        return "pk"
    for field in model._meta.fields:
        if field.name == "account" and field.many_to_one:
            return "account"
    # An object without an account of its own (a register) belongs to its parent's.
    for field in model._meta.fields:
        if field.many_to_one and not field.null and field.related_model is not model:
            inner = account_lookup(field.related_model)
            if inner is not None:
                return field.name if inner == "pk" else f"{field.name}__{inner}"
    return None


def scope_q(model: type[models.Model], account_ids: AccountIds) -> Q:
    """A filter keeping the rows of ``model`` that belong to ``account_ids``."""
    lookup = account_lookup(model)
    if account_ids is None or lookup is None:
        return Q()
    return Q(**{f"{lookup}__in": account_ids})


def account_id_of(obj: models.Model) -> uuid.UUID | None:
    """The id of the account ``obj`` belongs to, None when not known yet (a new object)."""
    lookup = account_lookup(type(obj))
    if lookup is None:
        return None
    if lookup == "pk":
        return obj.pk
    *path, last = lookup.split("__")
    for name in path:
        if getattr(obj, f"{name}_id") is None:
            return None
        obj = getattr(obj, name)
    return getattr(obj, f"{last}_id")


def has_account_field(model: type[models.Model]) -> bool:
    return account_lookup(model) == "account"


# --- roles ---------------------------------------------------------------------------------


def member_roles(request: HttpRequest) -> dict[uuid.UUID, domain.Role]:
    """The requesting user's role in each of their accounts, read once per request."""
    roles = getattr(request, "_member_roles", None)
    if roles is None:
        user = request.user
        memberships = Membership.objects.filter(user=user) if user.is_authenticated else []
        roles = {m.account_id: domain.Role(m.role) for m in memberships}
        request._member_roles = roles
    return roles


def role_grants(role: domain.Role, scope: str | None, access: str) -> bool:
    """Whether ``role`` may ``access`` (``read``/``write``) the objects of ``scope``."""
    if scope is None:
        return role is domain.Role.ADMIN
    return f"{scope}:{access}" in domain.effective_scopes(domain.ROLE_SCOPES[role])


class AccountScopeMixin:
    """Account scoping and role permissions shared by ``ModelAdmin`` and inlines."""

    # The scope area of the model (CONTRACT §1); None: managed by the ADMIN role only.
    scope: str | None = "meters"
    # False: nobody adds, changes or deletes here (the writes belong to another path).
    writable: bool = True

    def account_ids(self, request: HttpRequest, access: str) -> AccountIds:
        """The accounts where the user may ``access`` this model; None for superusers."""
        if request.user.is_superuser:
            return None
        return frozenset(
            account_id
            for account_id, role in member_roles(request).items()
            if role_grants(role, self.scope, access)
        )

    def role_allows(
        self, request: HttpRequest, access: str, obj: models.Model | None = None
    ) -> bool:
        """Whether the user may ``access`` ``obj`` (or, without one, objects of some account)."""
        if not request.user.is_active or (access == "write" and not self.writable):
            return False
        account_ids = self.account_ids(request, access)
        if account_ids is None:
            return True
        if obj is None:
            return bool(account_ids)
        return account_id_of(obj) in account_ids

    def scoped(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(scope_q(queryset.model, self.account_ids(request, "read")))

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.role_allows(request, "read", obj)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.role_allows(request, "write", obj)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.role_allows(request, "write", obj)


# --- forms and filters ---------------------------------------------------------------------


class AccountScopedForm(forms.ModelForm):
    """Offers only objects of the accounts the user may write in, or of the object's own account.

    ``scope_account_ids`` is set by the admin on the form class it builds for a request. With a
    single account the ``account`` field is fixed to it (shown, not editable) and set on the
    new instance before validation, since ``clean()`` rules compare accounts.
    """

    scope_account_ids: AccountIds = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_fields = [
            field for field in self.fields.values() if isinstance(field, forms.ModelChoiceField)
        ]
        if not choice_fields:
            return
        allowed = self.scope_account_ids
        owner = account_id_of(self.instance)
        if owner is not None and (allowed is None or owner in allowed):
            # An object only ever refers to objects of its own account.
            allowed = frozenset({owner})
        for field in choice_fields:
            field.queryset = field.queryset.filter(scope_q(field.queryset.model, allowed))
        account_field = self.fields.get("account")
        if account_field is not None and allowed is not None and len(allowed) == 1:
            (only,) = allowed
            self.initial["account"] = only
            account_field.disabled = True
            self.instance.account_id = only


class AccountScopedRelatedFilter(admin.RelatedFieldListFilter):
    """A foreign-key list filter that lists only the user's accounts' objects."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        limit = scope_q(field.related_model, model_admin.account_ids(request, "read"))
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to=limit)


def model_values(
    form: forms.ModelForm, names: Iterable[str], *, exclude: Iterable[str] = ("account",)
) -> dict[str, Any]:
    """The cleaned values of the model fields ``names`` of ``form``, for a service."""
    model = form._meta.model
    editable = {f.name for f in model._meta.fields if f.editable and not f.primary_key}
    skipped = set(exclude)
    return {
        name: form.cleaned_data[name]
        for name in names
        if name in editable and name not in skipped and name in form.cleaned_data
    }


def save_inline_through_services(
    formset: forms.BaseModelFormSet,
    *,
    parent_field: str,
    create: Callable[[dict[str, Any]], Any],
    update: Callable[[Any, dict[str, Any]], Any],
    delete: Callable[[Any], Any],
    order: Callable[[forms.ModelForm], Any] | None = None,
) -> None:
    """Save an inline formset through services instead of ``formset.save()``.

    Deletions first, then each changed form (in ``order`` when given): a new one through
    ``create(values)``, a stored one through ``update(stored, changed values)``; the parent's
    field (``parent_field``) is the service's to set. The formset's ``new_objects``,
    ``changed_objects`` and ``deleted_objects`` are filled for the admin's change messages.
    """
    model = formset.model
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    deleted = formset.deleted_forms
    for item_form in deleted:
        if item_form.instance.pk is not None:
            stored = model.objects.get(pk=item_form.instance.pk)
            delete(stored)
            formset.deleted_objects.append(stored)
    changed = [f for f in formset.forms if f not in deleted and f.has_changed()]
    if order is not None:
        changed.sort(key=order)
    for item_form in changed:
        if item_form.instance.pk is None:
            values = model_values(item_form, item_form.cleaned_data, exclude=[parent_field])
            formset.new_objects.append(create(values))
        else:
            stored = model.objects.get(pk=item_form.instance.pk)
            values = model_values(item_form, item_form.changed_data, exclude=[parent_field])
            formset.changed_objects.append((update(stored, values), item_form.changed_data))


def deletion_error(error: Exception, obj_label: str) -> str:
    if isinstance(error, ApiError):
        return str(error.detail)
    blocking = getattr(error, "restricted_objects", None) or getattr(error, "protected_objects", ())
    names = ", ".join(str(o) for o in list(blocking)[:5])
    return f"{obj_label} cannot be deleted: still referred to by {names}."


# --- admins --------------------------------------------------------------------------------


class AccountScopedAdmin(AccountScopeMixin, admin.ModelAdmin):
    """The base of every admin: see the module docstring for the rules it applies.

    Subclasses declare ``fieldsets`` (``add_fieldsets`` for a different add page),
    ``change_readonly_fields`` (fixed once the object exists) and override ``create``,
    ``update`` or ``destroy`` when their model has a service of its own.
    """

    form = AccountScopedForm
    add_fieldsets: tuple | None = None
    change_readonly_fields: tuple[str, ...] = ()

    # --- scoping ----------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scoped(request, super().get_queryset(request))

    def shows_accounts(self, request: HttpRequest) -> bool:
        """Whether the user sees several accounts here (then lists show an account column)."""
        account_ids = self.account_ids(request, "read")
        return has_account_field(self.model) and (account_ids is None or len(account_ids) > 1)

    def get_list_display(self, request: HttpRequest) -> list:
        display = list(super().get_list_display(request))
        if self.shows_accounts(request) and "account" not in display:
            display.append("account")
        return display

    def get_list_filter(self, request: HttpRequest) -> list:
        filters = list(super().get_list_filter(request))
        if self.shows_accounts(request) and "account" not in filters:
            filters.append("account")
        return [self._scoped_filter(item) for item in filters]

    def _scoped_filter(self, item: Any) -> Any:
        if not isinstance(item, str):
            return item
        field = get_fields_from_path(self.model, item)[-1]
        if field.many_to_one and account_lookup(field.related_model) is not None:
            return (item, AccountScopedRelatedFilter)
        return item

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change, **kwargs)
        # modelform_factory built a new class for this request: setting on it is safe.
        form.scope_account_ids = self.account_ids(request, "write")
        return form

    def get_fieldsets(self, request: HttpRequest, obj=None):
        if obj is None and self.add_fieldsets is not None:
            return self.add_fieldsets
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # An object never moves to another account; other fields are fixed by the model.
            if has_account_field(self.model):
                readonly.append("account")
            readonly.extend(self.change_readonly_fields)
        return readonly

    # --- permissions ------------------------------------------------------------------------

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.role_allows(request, "read")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.role_allows(request, "write")

    # --- writes through the services --------------------------------------------------------

    def create(self, request: HttpRequest, form: forms.ModelForm) -> models.Model:
        """Create the object of a valid add form."""
        return services.create_object(
            model=self.model,
            account=form.cleaned_data["account"],
            values=model_values(form, form.cleaned_data),
        )

    def update(
        self, request: HttpRequest, instance: models.Model, values: dict[str, Any]
    ) -> models.Model:
        """Apply the changed ``values`` of a valid change form to the stored ``instance``."""
        return services.update_object(instance=instance, values=values)

    def destroy(self, request: HttpRequest, obj: models.Model) -> None:
        services.delete_object(instance=obj)

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        if change:
            # The service gets the stored row, so it sees old and new values (a unit change...).
            stored = self.model._default_manager.get(pk=obj.pk)
            saved = self.update(request, stored, model_values(form, form.changed_data))
        else:
            saved = self.create(request, form)
        # The admin goes on with ``obj`` (inlines, log entry, redirect): make it the saved row.
        obj.pk = saved.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj) -> None:
        self.destroy(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.destroy(request, obj)

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if request.POST.get("post"):
            # On confirmation the delete service decides; its refusal becomes a message.
            protected = []
        return deleted, counts, perms_needed, protected

    def delete_view(self, request: HttpRequest, object_id: str, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except DELETE_ERRORS as error:
            self.message_user(
                request, deletion_error(error, str(self.opts.verbose_name)), messages.ERROR
            )
            opts = self.opts
            return HttpResponseRedirect(
                reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_change",
                    args=[object_id],
                    current_app=self.admin_site.name,
                )
            )

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        try:
            with transaction.atomic():
                return super().response_action(request, queryset)
        except DELETE_ERRORS as error:
            label = str(self.opts.verbose_name_plural)
            self.message_user(request, deletion_error(error, label), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class AccountScopedInlineFormSet(BaseInlineFormSet):
    """New inline objects that have an account of their own get their parent's."""

    def _construct_form(self, i: int, **kwargs: Any) -> forms.Form:
        form = super()._construct_form(i, **kwargs)
        if has_account_field(self.model) and form.instance.account_id is None:
            form.instance.account_id = account_id_of(self.instance)
        return form


class AccountScopedInline(AccountScopeMixin, admin.TabularInline):
    """The base of every inline: the parent's account and the user's role in it decide."""

    form = AccountScopedForm
    formset = AccountScopedInlineFormSet
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scoped(request, super().get_queryset(request))

    def get_formset(self, request: HttpRequest, obj=None, **kwargs: Any):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.scope_account_ids = self.account_ids(request, "write")
        return formset

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.role_allows(request, "write", obj)


# --- keys ----------------------------------------------------------------------------------


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            )
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


class KeyAdmin(AccountScopedAdmin):
    """API keys and portal keys: the clear key is shown once, in the creation message.

    Only ``prefix`` stays visible afterwards; ``key_hash`` is never shown.
    """

    scope = None
    list_display = ("name", "prefix", "status", "expires_at", "last_used_at", "revoked_at")
    list_filter = (KeyStatusFilter,)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke_selected_keys",)

    @admin.display(description="status")
    def status(self, key: KeyBase) -> str:
        if key.revoked_at is not None:
            return "revoked"
        return "active" if key.is_usable(timezone.now()) else "expired"

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = services.revoke_keys(keys=queryset)
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)

    def show_raw_key(self, request: HttpRequest, raw: str) -> None:
        self.message_user(
            request,
            f"The new key is {raw} — copy it now: only its hash is stored and it will not be "
            "shown again.",
            messages.SUCCESS,
        )
