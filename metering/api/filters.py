"""Filtering, search and ordering that refuse what they do not understand (CONTRACT §2)."""

from __future__ import annotations

import re

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from rest_framework import exceptions
from rest_framework.filters import OrderingFilter
from rest_framework.filters import SearchFilter as DrfSearchFilter

from metering import domain


def supported_date(value) -> None:
    """A date (or a datetime's calendar day) within the product's calendar, else a 400."""
    if value is not None and not domain.date_in_range(value):
        raise ValidationError(domain.DATE_RANGE_MESSAGE, code="out_of_range")


class IdFilter(django_filters.NumberFilter):
    """Filter on an integer id; anything but a whole number is a 400."""

    field_class = forms.IntegerField


class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """``true`` or ``false``; any other value is a 400 (django-filter's own ignores it)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [("true", "true"), ("false", "false")])
        kwargs.setdefault("coerce", lambda value: value == "true")
        super().__init__(*args, **kwargs)


class FilterSet(django_filters.FilterSet):
    """Base filter set: an unknown choice is a 400 whose message lists the valid ones, and a
    date outside the product's calendar (``metering.domain.FIRST_DATE``..``LAST_DATE``) too:
    filters turn days into instants and next days, which overflow at the calendar's ends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for filter_ in self.filters.values():
            if isinstance(filter_, (django_filters.DateFilter, django_filters.DateTimeFilter)):
                validators = filter_.extra.get("validators", [])
                filter_.extra["validators"] = [*validators, supported_date]
            if isinstance(filter_, django_filters.ChoiceFilter) and not isinstance(
                filter_, StrictBooleanFilter
            ):
                valid = ", ".join(str(value) for value, _ in filter_.extra["choices"])
                filter_.extra["error_messages"] = {
                    "invalid_choice": f"%(value)s is not one of: {valid}."
                }


class SearchFilter(DrfSearchFilter):
    search_description = "Free text search."


# One term of ``ordering``: a field name, with at most one ``-`` before it.
_ORDERING_TERM = re.compile(r"-?(\w+)")


class StrictOrderingFilter(OrderingFilter):
    """``ordering=field`` or ``-field``, among the view's ``ordering_fields``; else 400.

    Every ordering ends with ``id`` so that pages never overlap.
    """

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if not params:
            return self.get_default_ordering(view) or ["id"]
        fields = [param.strip() for param in params.split(",") if param.strip()]
        allowed = set(getattr(view, "ordering_fields", ()) or ())
        # ``--id`` or ``-`` alone is no field: the database would fail on it (a 500).
        unknown = [
            field
            for field in fields
            if not (term := _ORDERING_TERM.fullmatch(field)) or term[1] not in allowed
        ]
        if unknown:
            raise exceptions.ValidationError(
                {
                    "ordering": [
                        f"Cannot order by {', '.join(unknown)}; "
                        f"use one of {', '.join(sorted(allowed))} (prefix - for descending)."
                    ]
                }
            )
        if not any(field.lstrip("-") == "id" for field in fields):
            fields.append("id")
        return fields

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        allowed = sorted(getattr(view, "ordering_fields", ()) or ())
        # One string of comma-separated fields (``-reading_date,id``), as parsed above: an
        # array would be sent by clients as repeated parameters, which this filter does not
        # read.
        field = "-?(?:{})".format("|".join(re.escape(name) for name in allowed))
        for parameter in parameters:
            parameter["description"] = (
                "Fields to order by, separated by commas, each prefixed with - for descending: "
                f"{', '.join(allowed)}. Ties are ordered by id."
            )
            parameter["schema"] = {"type": "string", "pattern": f"^{field}(?:,{field})*$"}
        return parameters
