"""OpenAPI as the API really answers: envelopes, error responses, ``account_id``.

drf-spectacular's ``AutoSchema`` describes a serializer's object; here every success body is
wrapped in ``{"data": ...}`` (lists are wrapped by the paginator), and every operation lists the
error responses it can give, in the contract's error format.
"""

from __future__ import annotations

from drf_spectacular import authentication as drf_spectacular_authentication
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

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

_ERROR_DESCRIPTIONS = {
    "400": "Invalid request (`validation_error`, `batch_too_large`).",
    "401": "Missing or invalid credentials (`not_authenticated`).",
    "403": "Forbidden (`permission_denied`, `insufficient_scope`, `reading_locked`).",
    "404": "No such object in this account (`not_found`).",
    "409": "Conflicts with stored data (`conflict` or a more specific code).",
    "413": "Request body too large (`payload_too_large`).",
    "415": "Unsupported content type (`unsupported_media_type`).",
    "422": "Idempotency-Key reused with another body (`idempotency_key_reused`).",
    "429": "Rate limit reached (`rate_limited`); see `Retry-After`.",
}


class AutoSchema(openapi.AutoSchema):
    def _is_idempotent(self) -> bool:
        action = getattr(self.view, "action", None) or self.method.lower()
        return getattr(getattr(self.view, action, None), "idempotent", False)

    def _error_codes(self) -> list[str]:
        codes = ["400", "401", "403", "404", "429"]
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
