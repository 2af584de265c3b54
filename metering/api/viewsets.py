"""The base of every account route: scoping, envelope, services, schema (CONTRACT §1, §2).

A resource's viewset is a declaration: ``queryset``, ``serializer_class``, ``filterset_class``,
``scope``; it inherits the rules every route must follow from here, not view by view:
- its queryset is filtered to ``request.account`` (another account's object is a 404);
- responses are wrapped in ``{"data": ...}``;
- writes go through services (``create_object``/``update_object``/``delete_object``), whose
  model validation errors are reported under the API's field names.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.serializers import as_serializer_error

from metering import services
from metering.api.fields import AccountDateTimeField, DateField, OptionalTextField


class BaseModelSerializer(serializers.ModelSerializer):
    """Datetimes in the account's zone, dates and datetimes within the product's calendar;
    uniqueness left to the database (409 ``conflict``)."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateField: DateField,
        models.DateTimeField: AccountDateTimeField,
    }

    account_id = serializers.UUIDField(
        required=False,
        help_text="The object's account. On input it is optional and must be your key's (403).",
    )

    def get_unique_together_validators(self):
        return []

    def build_standard_field(self, field_name, model_field):
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        if (
            isinstance(model_field, (models.CharField, models.TextField))
            and model_field.blank
            and not model_field.null
            and field_class is serializers.CharField
        ):
            field_class = OptionalTextField
            field_kwargs["allow_null"] = True
        return field_class, field_kwargs

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        values.pop("account_id", None)
        return values


def api_errors(serializer: serializers.Serializer, exc: DjangoValidationError) -> dict:
    """A model's validation errors keyed by the API's field names (``place`` → ``place_id``)."""
    by_source = {field.source: name for name, field in serializer.fields.items()}
    errors = as_serializer_error(exc)
    return {by_source.get(key, key): value for key, value in errors.items()}


class AccountScopedMixin:
    """What every account route shares: scoping, envelope, writes through services.

    Mixed into DRF generic views and viewsets (it comes first in their bases).
    """

    scope: str = "meters"
    lookup_value_regex = r"\d+"
    ordering = ["id"]
    ordering_fields: tuple[str, ...] = ("id", "created_at", "updated_at")
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    # --- scoping --------------------------------------------------------------------------

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Objects named in the path are looked up before the body is validated, so another
        # account's parent is a 404 whatever the body holds.
        self.check_parents()

    def check_parents(self) -> None:
        """Nested routes look up their parent objects here (404 when not in the account)."""

    def get_queryset(self):
        return self.scope_queryset(super().get_queryset())

    def scope_queryset(self, queryset):
        return queryset.filter(account=self.request.account)

    def get_object(self):
        try:
            return super().get_object()
        except exceptions.NotFound:
            name = self.get_queryset().model._meta.verbose_name
            raise exceptions.NotFound(f"No {name} with this id in this account.") from None

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["account"] = getattr(self.request, "account", None)
        return context

    # --- envelope ---------------------------------------------------------------------------

    def finalize_response(self, request, response, *args, **kwargs):
        # A file (``FileResponse``, no ``data``) is sent as it is.
        if (
            response.status_code < 400
            and getattr(response, "data", None) is not None
            and not getattr(response, "enveloped", False)
        ):
            response.data = {"data": response.data}
            response.enveloped = True
        return super().finalize_response(request, response, *args, **kwargs)

    # --- writes through services ---------------------------------------------------------

    def create_object(self, values: dict[str, Any]):
        return services.create_object(
            model=self.get_queryset().model, account=self.request.account, values=values
        )

    def update_object(self, instance, values: dict[str, Any]):
        return services.update_object(instance=instance, values=values)

    def delete_object(self, instance) -> None:
        services.delete_object(instance=instance)

    def perform_create(self, serializer) -> None:
        try:
            serializer.instance = self.create_object(dict(serializer.validated_data))
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(api_errors(serializer, exc)) from None

    def perform_update(self, serializer) -> None:
        try:
            serializer.instance = self.update_object(
                serializer.instance, dict(serializer.validated_data)
            )
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(api_errors(serializer, exc)) from None

    def perform_destroy(self, instance) -> None:
        self.delete_object(instance)


class AccountScopedViewSet(
    AccountScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """CRUD on one resource of the request's account."""


class ListAccountScopedViewSet(AccountScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """A list of one resource of the request's account (nested routes)."""
