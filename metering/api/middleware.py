"""Middleware of the API paths (``/api/``): body size limits, trailing slash, no caching."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from metering.api.errors import error_body

API_PREFIX = "/api/"
# Room for the form fields and part headers around the photo of a multipart upload.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def body_limit(*, multipart: bool) -> int:
    """The largest body accepted, in bytes: a photo (plus its form) for multipart uploads."""
    if multipart:
        return settings.PORTAL_PHOTO_MAX_BYTES + MULTIPART_OVERHEAD_BYTES
    return settings.API_MAX_BODY_BYTES


class ApiRequestSizeLimitMiddleware:
    """Refuses an API request whose body is too large before anything reads it.

    The declared ``Content-Length`` decides: above the limit, 413 ``payload_too_large`` and the
    body is never read, nor authenticated, nor parsed. A body without ``Content-Length``
    (``Transfer-Encoding: chunked``) is refused with a 400: a WSGI application would read it as
    empty (Django reads ``Content-Length`` bytes), which would be a confusing answer.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            refusal = self.refusal(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        declared = request.META.get("CONTENT_LENGTH") or ""
        if not declared:
            if request.META.get("HTTP_TRANSFER_ENCODING"):
                return _refuse(
                    400,
                    "validation_error",
                    "Send the request body with a Content-Length header: chunked transfer "
                    "encoding is not accepted.",
                )
            return None
        try:
            length = int(declared)
        except ValueError:
            return _refuse(400, "validation_error", "The Content-Length header is not a number.")
        multipart = request.content_type == "multipart/form-data"
        limit = body_limit(multipart=multipart)
        if length > limit:
            return _refuse(
                413,
                "payload_too_large",
                f"The request body is {length} bytes; at most {limit} bytes are accepted"
                + (" for a multipart upload." if multipart else "."),
            )
        return None


def _refuse(status: int, code: str, message: str) -> JsonResponse:
    details = {"non_field_errors": [message]} if code == "validation_error" else {}
    return JsonResponse(error_body(code, message, details), status=status)


class ApiTrailingSlashMiddleware:
    """API paths answer with or without their trailing slash.

    The seeds' clients call ``/api/v1/meters``; the contract writes ``/api/v1/meters/``. Rather
    than redirect (which loses a POST body), the path is completed before URL resolution.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX) and not request.path_info.endswith("/"):
            request.path_info += "/"
            request.path += "/"
        return self.get_response(request)


class ApiNoStoreMiddleware:
    """API responses hold account data: no browser or proxy cache keeps them.

    ``Cache-Control: no-store`` on every response under ``/api/`` that sets no cache policy of
    its own (none does today).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path_info.startswith(API_PREFIX) and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response
