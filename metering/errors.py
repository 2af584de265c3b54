"""The contract's closed list of error codes (CONTRACT §2), as exceptions services can raise.

``metering.api.errors.exception_handler`` renders any of them as
``{"error": {"code", "message", "details"}}`` with the code's status.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions

ERROR_CODES = {
    "validation_error": 400,
    "batch_too_large": 400,
    "not_authenticated": 401,
    "permission_denied": 403,
    "insufficient_scope": 403,
    "reading_locked": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "duplicate_reading": 409,
    "overlap": 409,
    "meter_has_readings": 409,
    "meter_has_sub_meters": 409,
    "conflict": 409,
    "idempotency_key_reused": 422,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "timeout": 503,
}


class ApiError(exceptions.APIException):
    """An error of the contract's closed list; ``error_code`` names it."""

    error_code = "conflict"
    status_code = 409
    default_detail = "The request conflicts with the stored data."

    def __init__(self, detail: str | None = None, *, details: dict[str, Any] | None = None):
        super().__init__(detail or self.default_detail)
        self.details = details or {}


class InsufficientScope(ApiError):
    error_code, status_code = "insufficient_scope", 403
    default_detail = "This key does not hold the scope this request needs."


class Conflict(ApiError):
    error_code, status_code = "conflict", 409


class DuplicateReading(ApiError):
    error_code, status_code = "duplicate_reading", 409
    default_detail = "This register already has a reading at this date."


class Overlap(ApiError):
    error_code, status_code = "overlap", 409
    default_detail = "This period overlaps another period reading of the meter."


class MeterHasReadings(ApiError):
    error_code, status_code = "meter_has_readings", 409
    default_detail = "This meter has readings: decommission it instead of deleting it."


class MeterHasSubMeters(ApiError):
    error_code, status_code = "meter_has_sub_meters", 409
    default_detail = "This meter has sub-meters: delete or re-parent them first."


class ReadingLocked(ApiError):
    error_code, status_code = "reading_locked", 403
    default_detail = "This reading belongs to a closed billing period and cannot change."


class BatchTooLarge(ApiError):
    error_code, status_code = "batch_too_large", 400
    default_detail = "A batch holds 1 to 500 readings."


class IdempotencyKeyReused(ApiError):
    error_code, status_code = "idempotency_key_reused", 422
    default_detail = "This Idempotency-Key was already used with another request body."


class PayloadTooLarge(ApiError):
    error_code, status_code = "payload_too_large", 413
    default_detail = "The request body is too large."


class RequestTimeout(ApiError):
    """A request past ``REQUEST_TIME_LIMIT_SECONDS``: cancelled in the database, rolled back."""

    error_code, status_code = "timeout", 503
    default_detail = "The request ran past the server's time limit and was cancelled."


class InvitationNotUsable(ApiError):
    """A member invitation's link that was used, revoked or has expired (or never existed)."""

    error_code, status_code = "not_found", 404
    default_detail = "This invitation link has expired, was used already or was revoked."


class InvitationForAnotherLogin(ApiError):
    """Accepting a member invitation with a login that is not the invited address's."""

    error_code, status_code = "permission_denied", 403
    default_detail = "This invitation is for another login."
