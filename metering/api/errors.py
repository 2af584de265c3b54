"""The contract's error format and codes (CONTRACT §2), for every API response.

Every exception raised while serving an API request ends here and leaves as
``{"error": {"code", "message", "details"}}`` with the status of its code.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import set_rollback

from metering.api.throttling import count_refused_request
from metering.errors import (
    ERROR_CODES,
    ApiError,
    Conflict,
    Overlap,
    PayloadTooLarge,
    RequestTimeout,
)
from metering.time_limit import is_timeout, time_limit_message

logger = logging.getLogger(__name__)

_DRF_CODES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.ValidationError, "validation_error"),
    (exceptions.ParseError, "validation_error"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "not_authenticated"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "rate_limited"),
]


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _integrity_error(exc: IntegrityError) -> ApiError | exceptions.ValidationError:
    """Map a database constraint violation to the contract: uniqueness is a 409 conflict."""
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    text = str(exc)
    if sqlstate == "23505" or "UNIQUE constraint failed" in text:
        constraint = getattr(getattr(cause, "diag", None), "constraint_name", None) or ""
        return Conflict(_UNIQUE_MESSAGES.get(constraint, "An object with these values exists."))
    if sqlstate == "23P01":  # exclusion constraint: overlapping periods
        return Overlap()
    return exceptions.ValidationError({"non_field_errors": ["The values break a data rule."]})


_UNIQUE_MESSAGES = {
    "place_unique_code": "A place with this code exists in the account.",
    "estate_unique_code": "An estate with this code exists in the place.",
    "gateway_unique_identifier": "A gateway with this identifier exists in the account.",
    "meter_unique_serial": "A meter with this serial number exists in the account.",
    "register_unique_code": "A register with this code exists on the meter.",
    "service_place_unique_delivery_point": "A service place with this delivery point exists.",
    "meter_share_unique_estate": "The estate already has a share of this meter: change it.",
}


def _to_api_exception(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, (RestrictedError, ProtectedError)):
        names = sorted({str(obj._meta.verbose_name_plural) for obj in exc.args[1]})
        return Conflict(f"Other objects still refer to this one: {', '.join(names)}.")
    if is_timeout(exc):  # the database's cancel (our own RequestTimeout is an APIException)
        return RequestTimeout(time_limit_message())
    if isinstance(exc, IntegrityError):
        return _integrity_error(exc)
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ValidationError({"non_field_errors": [str(exc) or "Bad request."]})
    return None


def error_code_of(exc: exceptions.APIException) -> str:
    if isinstance(exc, ApiError):
        return exc.error_code
    for cls, code in _DRF_CODES:
        if isinstance(exc, cls):
            return code
    return {401: "not_authenticated", 403: "permission_denied", 404: "not_found"}.get(
        exc.status_code, "validation_error"
    )


def exception_handler(exc: Exception, context: dict) -> Response | None:
    api_exc = _to_api_exception(exc)
    if api_exc is None:
        return None  # a bug: Django's handler500 answers, and the traceback is logged

    request = context.get("request")
    if not isinstance(api_exc, exceptions.Throttled):
        # Refused before DRF's throttles ran (credentials, scope): it still counts.
        api_exc = count_refused_request(request, context.get("view")) or api_exc
    _render_as_json(request)

    code = error_code_of(api_exc)
    headers: dict[str, str] = {}
    if getattr(api_exc, "auth_header", None):
        headers["WWW-Authenticate"] = api_exc.auth_header
    if code == "not_authenticated":
        headers["WWW-Authenticate"] = "Bearer"
    wait = getattr(api_exc, "wait", None)
    if wait is not None:
        headers["Retry-After"] = str(max(1, int(wait + 0.999)))

    details: dict[str, Any] = getattr(api_exc, "details", {}) or {}
    if isinstance(api_exc, exceptions.ValidationError):
        message = "The request is invalid: see details."
        detail = api_exc.detail
        details = detail if isinstance(detail, dict) else {"non_field_errors": detail}
    elif isinstance(api_exc, exceptions.ParseError):
        message = f"The request body is not valid JSON: {api_exc.detail}"
        details = {}
    else:
        message = str(api_exc.detail)

    set_rollback()
    status_code = ERROR_CODES.get(code, api_exc.status_code)
    return Response(error_body(code, message, details), status=status_code, headers=headers)


def _render_as_json(request) -> None:
    """Errors are JSON even where the route renders something else (the schema's YAML, the
    docs' HTML); the browsable API keeps showing them in its page."""
    if request is None:
        return
    renderer = getattr(request, "accepted_renderer", None)
    if type(renderer) is not JSONRenderer and not isinstance(renderer, BrowsableAPIRenderer):
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type


@csrf_exempt
def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """404 for any URL under /api/ that matches no route, whatever the method.

    CSRF-exempt: it changes nothing, and a POST with an unmatched path must get the JSON 404,
    not Django's HTML 403.
    """
    return JsonResponse(
        error_body("not_found", f"No API route matches {request.path}."),
        status=status.HTTP_404_NOT_FOUND,
    )


def handler500(request: HttpRequest) -> HttpResponse:
    """A bug: JSON under /api/, Django's page elsewhere. The traceback is in the log."""
    if not request.path.startswith("/api/"):
        return defaults.server_error(request)
    return JsonResponse(
        error_body("server_error", "An unexpected error occurred; it has been logged."),
        status=500,
    )
