"""OpenAPI as the API really answers: envelopes, error responses, ``account_id``.

drf-spectacular's ``AutoSchema`` describes a serializer's object; here every success body is
wrapped in ``{"data": ...}`` (lists are wrapped by the paginator), and every operation lists the
error responses it can give, in the contract's error format.
"""

from __future__ import annotations

import copy
import inspect
import re

from django import forms
from django.db import models
from drf_spectacular import authentication as drf_spectacular_authentication
from drf_spectacular import openapi
from drf_spectacular.contrib import django_filters as spectacular_django_filters
from drf_spectacular.drainage import get_override
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import ResolvedComponent, force_instance
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from metering.api.fields import AccountDateTimeField
from metering.errors import ERROR_CODES

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "enum": sorted(ERROR_CODES)},
                "message": {"type": "string"},
                "details": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "For validation errors: field name → list of messages.",
                },
            },
        }
    },
}

IDEMPOTENT_REPLAYED = "Idempotent-Replayed"

_ERROR_MEANINGS = {
    "400": "Invalid request",
    "401": "Missing or invalid credentials",
    "403": "Forbidden",
    "404": "No such object in this account",
    "409": "Conflicts with stored data",
    "413": "Request body too large",
    "415": "Unsupported content type",
    "422": "Idempotency-Key reused with another body",
    "429": "Rate limit reached; see `Retry-After`",
    "503": "The request ran past the server's time limit: cancelled and rolled back",
}
# Each status with the codes it answers, from the contract's closed list (metering.errors), so
# that the descriptions name them all and nothing else (a duplicate reading is
# `duplicate_reading`, not `conflict`).
_ERROR_DESCRIPTIONS = {
    status: "{} ({}).".format(
        meaning,
        ", ".join(
            f"`{code}`" for code, code_status in ERROR_CODES.items() if code_status == int(status)
        ),
    )
    for status, meaning in _ERROR_MEANINGS.items()
}


UTC_OUTPUT = "In UTC: ISO 8601 ending in `Z`."
ACCOUNT_ZONE_INPUT = "ISO 8601; without an offset it is read in the account's time zone."
# What each action of a viewset does to its resource, for the operations' summaries.
_ACTION_SUMMARIES = {
    "list": "List {plural}",
    "retrieve": "Get {a} {name}",
    "create": "Create {a} {name}",
    "update": "Replace {a} {name}",
    "partial_update": "Change {a} {name}",
    "destroy": "Delete {a} {name}",
}
_INTEGER_PATH = r"^\d+$"


def _join(*texts: str | None) -> str:
    """Sentences, each ended by a full stop."""
    parts = [str(text).strip() for text in texts if text and str(text).strip()]
    return " ".join(part if part[-1] in ".!?)" else f"{part}." for part in parts)


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _own_doc(cls: type) -> str:
    """A class's own docstring: a base class's (``BaseModelSerializer``'s) says nothing of it."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if doc else ""


def _first_sentence(doc: str, limit: int = 80) -> str:
    """A docstring's first sentence, as a summary: cut at its last clause within ``limit``."""
    text = " ".join(doc.split("\n\n", 1)[0].split())
    text = re.split(r"(?<=[a-z)`])[.:;] ", text + " ", maxsplit=1)[0].strip().rstrip(".:;")
    while len(text) > limit and re.search(r"(, | \()[^,(]*$", text):
        text = re.sub(r"(, | \()[^,(]*$", "", text)
    return text.replace("``", "`")


def _route_nouns(path: str, model: type[models.Model]) -> tuple[str, str]:
    """What a route's objects are called (singular, plural): its own last word, as a client
    reads it in the path (``/portal/statements/`` lists statements, whatever model is behind)."""
    words = [part for part in path.strip("/").split("/") if part and not part.startswith("{")]
    plural = words[-1].replace("-", " ")
    if plural == str(model._meta.verbose_name_plural):
        return str(model._meta.verbose_name), plural
    return plural.removesuffix("s"), plural


class AutoSchema(openapi.AutoSchema):
    """Envelopes, errors and ``account_id`` (module docstring), and a schema as the server
    answers, so that a client generated from it needs no workaround
    (tests/test_schema_truthful.py): every field a response always holds is ``required``;
    ids in paths are integers, and a path parameter is never also a query filter of the
    route; datetimes are described as sent (UTC) and read (the account's zone); every
    operation has a summary; ``Idempotent-Replayed`` is a declared response header."""

    def _is_idempotent(self) -> bool:
        action = getattr(self.view, "action", None) or self.method.lower()
        return getattr(getattr(self.view, action, None), "idempotent", False)

    # --- components --------------------------------------------------------------------------

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        description = get_override(
            serializer, "description", _own_doc(type(force_instance(serializer)))
        )
        if description:
            schema["description"] = description
        else:
            schema.pop("description", None)
        if direction == "response" and schema.get("properties"):
            # DRF writes every readable field of a serializer, whatever ``required`` says
            # (that is about input): in a response each one is always there.
            schema["required"] = sorted(schema["properties"])
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, AccountDateTimeField) and isinstance(schema, dict):
            schema["description"] = self._datetime_description(field, direction)
        return schema

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        # A URL or e-mail field that may be blank holds "" when there is none (a reading's
        # `photo_url`): drf-spectacular declares it `oneOf` the format and an empty string.
        # Where formats are annotations only (JSON Schema's default), "" matches both and
        # fails `oneOf`; `anyOf` is true either way.
        if schema.get("oneOf", [None])[-1] == {"type": "string", "maxLength": 0}:
            schema["anyOf"] = schema.pop("oneOf")

    @staticmethod
    def _datetime_description(field: serializers.Field, direction: str) -> str:
        text = str(field.help_text or "")
        if direction == "response":
            # The input rules (offsets, dates alone) say nothing of what is sent.
            if "ISO 8601" in text:
                text = text.split("ISO 8601", 1)[0].strip(" :;.")
            return _join(text, UTC_OUTPUT)
        return text if "ISO 8601" in text else _join(text, ACCOUNT_ZONE_INPUT)

    # --- parameters ------------------------------------------------------------------------

    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            # Ids are integers (the routes' ``\d+``), not strings of digits.
            if parameter["schema"].get("pattern") == _INTEGER_PATH:
                parameter["schema"] = {"type": "integer"}
        return parameters

    def _get_parameters(self):
        parameters = super()._get_parameters()
        in_path = {p["name"] for p in parameters if p["in"] == "path"}
        # A nested route's parent is its path: the filter of the same name on its list (an
        # estate's meters take no ``estate_id`` query) would clash with it in a client.
        return [p for p in parameters if not (p["in"] == "query" and p["name"] in in_path)]

    # --- summaries ----------------------------------------------------------------------------

    def get_summary(self):
        return super().get_summary() or self._default_summary()

    def _default_summary(self) -> str:
        action = getattr(self.view, "action", None)
        model = getattr(getattr(self.view, "queryset", None), "model", None)
        if action in _ACTION_SUMMARIES and model is not None:
            name, plural = _route_nouns(self.path, model)
            summary = _ACTION_SUMMARIES[action].format(a=_article(name), name=name, plural=plural)
            parents = [
                v.removesuffix("_id").replace("_", " ")
                for v in re.findall(r"{(\w+)}", self.path)
                if v not in ("id", "pk")
            ]
            for parent in reversed(parents):
                summary += f" of {_article(parent)} {parent}"
        else:
            method = getattr(self.view, action or self.method.lower(), None)
            summary = _first_sentence(
                (method and inspect.getdoc(method)) or _own_doc(type(self.view)) or ""
            )
            if not summary:
                summary = (action or self.method.lower()).replace("_", " ").capitalize()
        if getattr(self.view, "portal", False):
            summary = f"Portal: {summary[0].lower()}{summary[1:]}"
        return summary

    def _error_codes(self) -> list[str]:
        # Any request may run past the time limit (metering.time_limit): 503 ``timeout``.
        codes = ["400", "401", "403", "404", "429", "503"]
        if self._is_idempotent():
            codes.append("422")
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes.append("409")
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["413", "415"]
        return sorted(set(codes))

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        component = ResolvedComponent(
            name=ERROR_COMPONENT,
            type=ResolvedComponent.SCHEMA,
            schema=ERROR_SCHEMA,
            object=ERROR_COMPONENT,
        )
        self.registry.register_on_missing(component)
        for code in self._error_codes():
            responses.setdefault(
                code,
                {
                    "content": {"application/json": {"schema": component.ref}},
                    "description": _ERROR_DESCRIPTIONS[code],
                },
            )
        if "401" in responses:
            responses["401"]["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
        if "429" in responses:
            responses["429"]["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
            }
        return responses

    def _get_response_headers_for_code(self, status_code, direction="response"):
        headers = super()._get_response_headers_for_code(status_code, direction)
        if self._is_idempotent() and str(status_code).startswith("2"):
            headers[IDEMPOTENT_REPLAYED] = {
                "schema": {"type": "string", "enum": ["true"]},
                "description": "Sent (`true`) when this is the replay of an earlier request "
                "with the same `Idempotency-Key` and body: nothing was written.",
            }
        return headers

    def _get_response_for_code(
        self, serializer, status_code, media_types=None, direction="response"
    ):
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        if not ("200" <= str(status_code) < "300") or "content" not in response:
            return response
        if self._is_list_view(serializer) and self._get_paginator() is not None:
            return response  # the paginator's schema already has data and meta
        for media_type, media in response["content"].items():
            # Only JSON bodies are enveloped: a file (CSV, HTML, an image) is sent as it is.
            if "schema" in media and media_type.endswith("json"):
                media["schema"] = {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": media["schema"]},
                }
        return response

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self._is_idempotent():
            from metering.api.idempotency import SCHEMA_PARAMETER

            parameters.append(SCHEMA_PARAMETER)
        # The portal's routes act on the key's tenant: they take no account_id.
        if self.method in ("GET", "DELETE") and not getattr(self.view, "portal", False):
            parameters.append(
                OpenApiParameter(
                    "account_id",
                    OpenApiTypes.UUID,
                    OpenApiParameter.QUERY,
                    description="Optional: must be your key's account (403 otherwise).",
                )
            )
        return parameters


class AccountKeyScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer mtr_...``: opens every route but the portal's."""

    target_class = "metering.api.authentication.AccountKeyAuthentication"
    name = "accountKey"
    description = "An account key (`mtr_...`) holding the scopes the operation needs."

    def opens(self, auto_schema) -> bool:
        return not getattr(auto_schema.view, "portal", False)

    def get_security_requirement(self, auto_schema):
        return {self.name: []} if self.opens(auto_schema) else None

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": self.description}


class PortalKeyScheme(AccountKeyScheme):
    """``Authorization: Bearer mtp_...``: a tenant's key, opening only the portal's routes."""

    target_class = "billing.api.authentication.PortalKeyAuthentication"
    name = "portalKey"
    description = "A tenant's portal key (`mtp_...`), for /api/v1/portal/ only."

    def opens(self, auto_schema) -> bool:
        return getattr(auto_schema.view, "portal", False)


class SessionScheme(drf_spectacular_authentication.SessionScheme):
    """A member's session (the browsable API): every route but the portal's."""

    priority = 1

    def get_security_requirement(self, auto_schema):
        if getattr(auto_schema.view, "portal", False):
            return None
        return super().get_security_requirement(auto_schema)


class DjangoFilterExtension(spectacular_django_filters.DjangoFilterExtension):
    """django-filter's parameters, with ids as integers, and no trace left on the filters.

    drf-spectacular maps a ``NumberFilter`` to ``number`` unless it finds an integer model
    field behind it; an id filter (``metering.api.filters.IdFilter``) parses a whole number
    whatever field it filters on (``meter__place_id``).

    drf-spectacular reads the class's own filters' form fields, which builds and caches them
    there: every filter set copied from the class afterwards would keep those fields, and the
    error messages ``metering.api.filters.FilterSet`` sets on its copies would be ignored
    (after a first schema, ``meter_type=FOO`` answered Django's generic message). It reads a
    copy here.
    """

    priority = 1

    def resolve_filter_field(self, auto_schema, model, filterset_class, field_name, filter_field):
        filter_field = copy.deepcopy(filter_field)
        parameters = super().resolve_filter_field(
            auto_schema, model, filterset_class, field_name, filter_field
        )
        if issubclass(filter_field.field_class, forms.IntegerField):
            for parameter in parameters:
                if parameter["schema"].get("type") == "number":
                    parameter["schema"]["type"] = "integer"
        return parameters
