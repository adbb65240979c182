"""The API's one error shape, ``{"error": {"code": ..., "message": ...}}``, and its codes."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse

from ..exceptions import (
    BackendPermissionError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptRecordError,
    InvalidKeyError,
    InvalidValueError,
    UnsupportedOperationError,
    VersionConflictError,
)

__all__ = ["ERROR_STATUS", "ApiError", "csrf_failure", "error_response", "store_error"]

logger = logging.getLogger("prism_storage.api")

#: Every error code the API answers with, and its HTTP status.
ERROR_STATUS: dict[str, int] = {
    "malformed_json": 400,
    "invalid_body": 400,
    "invalid_key": 400,
    "invalid_value": 400,
    "invalid_vector": 400,
    "invalid_parameter": 400,
    "invalid_header": 400,
    "unsupported_operation": 400,
    "not_authenticated": 401,
    "permission_denied": 403,
    "csrf_failed": 403,
    "unknown_store": 404,
    "record_not_found": 404,
    "method_not_allowed": 405,
    "precondition_failed": 412,
    "payload_too_large": 413,
    "precondition_unsupported": 501,
    "corrupt_record": 502,
    "store_refused": 502,
    "store_error": 502,
    "store_unavailable": 503,
    "store_misconfigured": 503,
}


class ApiError(Exception):
    """Ends a request with the JSON error ``code`` (its status comes from ERROR_STATUS)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_response(code: str, message: str) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": code, "message": message}}, status=ERROR_STATUS[code]
    )
    if code == "not_authenticated":
        response["WWW-Authenticate"] = 'Session realm="prism-storage"'
    return response


def store_error(exc: BaseException, alias: str) -> ApiError:
    """The API error for an exception raised by a store (or by creating it)."""
    if isinstance(exc, InvalidKeyError):
        return ApiError("invalid_key", str(exc))
    if isinstance(exc, InvalidValueError):
        return ApiError("invalid_value", str(exc))
    if isinstance(exc, VersionConflictError):
        return ApiError("precondition_failed", f"Precondition failed: {exc}")
    if isinstance(exc, UnsupportedOperationError):
        return ApiError("unsupported_operation", str(exc))
    if isinstance(exc, ConfigurationError):
        logger.error("Store %r is misconfigured: %s", alias, exc)
        return ApiError(
            "store_misconfigured",
            f"The store {alias!r} is not configured correctly (see manage.py check).",
        )
    # Driver details (hosts, ports) stay in the server log, not in the answer.
    logger.warning("Store %r failed: %s", alias, exc)
    if isinstance(exc, BackendUnavailableError):
        return ApiError("store_unavailable", f"The store {alias!r} is unavailable; retry later.")
    if isinstance(exc, CorruptRecordError):
        return ApiError("corrupt_record", f"The store {alias!r} holds a record it cannot read.")
    if isinstance(exc, BackendPermissionError):
        return ApiError("store_refused", f"The store {alias!r} refused the operation.")
    return ApiError("store_error", f"The store {alias!r} failed: {type(exc).__name__}.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A ``CSRF_FAILURE_VIEW`` answering API requests in the API's error shape.

    Other requests get Django's own CSRF failure page. Opt in with
    ``CSRF_FAILURE_VIEW = "prism_storage.views.csrf_failure"``.
    """
    match = request.resolver_match
    if match is not None and getattr(match.func, "prism_api", False):
        return error_response("csrf_failed", f"CSRF verification failed: {reason}")
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)
