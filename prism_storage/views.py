"""The async JSON API over ``storages`` (mounted by ``include("prism_storage.urls")``).

Every answer is JSON. Errors share one shape, ``{"error": {"code": ..., "message": ...}}``,
with the status codes listed in :data:`ERROR_STATUS`. Requests are authorized before
anything else is read (see :mod:`prism_storage.access`), bodies are checked against
``PRISM_STORAGE_API_MAX_BODY`` before they are parsed, and nothing is written unless the
whole request is valid.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from .access import (
    Operation,
    check_store_access,
    csrf_refusal,
    has_model_permission,
    visible_aliases,
)
from .backends.base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_TTL, BaseStorageBackend
from .codec import encode_value, validate_key
from .conf import api_max_body_size
from .exceptions import (
    BackendPermissionError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptRecordError,
    InvalidKeyError,
    InvalidValueError,
    PrismStorageError,
    UnsupportedOperationError,
)
from .handler import storages

__all__ = ["ERROR_STATUS", "csrf_failure", "record", "record_list", "search", "store_list"]

logger = logging.getLogger("prism_storage.api")

#: Every error code the API answers with, and its HTTP status.
ERROR_STATUS: dict[str, int] = {
    "malformed_json": 400,
    "invalid_body": 400,
    "invalid_key": 400,
    "invalid_value": 400,
    "invalid_vector": 400,
    "invalid_parameter": 400,
    "unsupported_operation": 400,
    "not_authenticated": 401,
    "permission_denied": 403,
    "csrf_failed": 403,
    "unknown_store": 404,
    "record_not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "corrupt_record": 502,
    "store_refused": 502,
    "store_error": 502,
    "store_unavailable": 503,
    "store_misconfigured": 503,
}

MAX_SEARCH_LIMIT = 100

Handler = Callable[..., Awaitable[HttpResponse]]


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


def _store_error(exc: BaseException, alias: str) -> ApiError:
    """The API error for an exception raised by a store (or by creating it)."""
    if isinstance(exc, InvalidKeyError):
        return ApiError("invalid_key", str(exc))
    if isinstance(exc, InvalidValueError):
        return ApiError("invalid_value", str(exc))
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


def _check_access(request: HttpRequest, alias: str | None, operation: Operation) -> str | None:
    user = request.user  # resolved here, in a thread: it may query the database
    if alias is None:
        if not (user.is_authenticated and user.is_active):
            return "not_authenticated"
        return None if has_model_permission(user, operation) else "permission_denied"
    return check_store_access(user, alias, operation)


def _authorize(
    request: HttpRequest, alias: str | None, operation: Operation
) -> HttpResponse | None:
    """CSRF, then access: the refusal, or ``None`` to go on. Runs in a worker thread."""
    refusal = csrf_refusal(request)
    if refusal is not None:
        return refusal
    problem = _check_access(request, alias, operation)
    if problem is None:
        return None
    return error_response(problem, _ACCESS_MESSAGES[problem].format(alias=alias,
                                                                    operation=operation))


_ACCESS_MESSAGES = {
    "not_authenticated": "Authentication is required.",
    "permission_denied": "You do not have permission to {operation} records of this store.",
    "unknown_store": "No store {alias!r} is configured.",
}


def endpoint(**operations: Operation) -> Callable[[Handler], Any]:
    """Make an API view: HTTP method -> the operation it needs, then errors -> JSON.

    The wrapped handler is called as ``handler(request, store, **url_kwargs)`` (``store``
    is ``None`` for views without an alias) once the user is allowed.
    """

    def decorate(handler: Handler) -> Any:  # an async view (django-stubs types views as sync)
        @functools.wraps(handler)
        async def view(
            request: HttpRequest, alias: str | None = None, **kwargs: Any
        ) -> HttpResponse:
            operation = operations.get(request.method or "")
            if operation is None:
                response = error_response(
                    "method_not_allowed", f"{request.method} is not allowed here."
                )
                response["Allow"] = ", ".join(operations)
                return response
            refusal = await sync_to_async(_authorize)(request, alias, operation)
            if refusal is not None:
                return refusal
            try:
                store = None if alias is None else _store(alias)
                return await handler(request, store, **kwargs)
            except ApiError as exc:
                return error_response(exc.code, exc.message)
            except (PrismStorageError, ConfigurationError) as exc:
                error = _store_error(exc, alias or "")
                return error_response(error.code, error.message)

        view.prism_api = True  # type: ignore[attr-defined]
        view.csrf_exempt = True  # type: ignore[attr-defined]  # checked in _authorize instead
        return view

    return decorate


def _store(alias: str) -> BaseStorageBackend:
    try:
        return storages[alias]
    except ConfigurationError as exc:
        raise _store_error(exc, alias) from exc


def supports_text_search(store: BaseStorageBackend) -> bool:
    """Whether ``store.search()`` takes a text: a search store with an ``embedder``
    (or one declaring ``supports_text_search``)."""
    if not store.supports_search:
        return False
    declared = getattr(store, "supports_text_search", None)
    if declared is not None:
        return bool(declared)
    return getattr(store, "embedder", None) is not None


def _capabilities(store: BaseStorageBackend) -> dict[str, bool]:
    capabilities = dict(store.capabilities)
    capabilities.setdefault("text_search", supports_text_search(store))
    return capabilities


# ------------------------------------------------------------------------ request parsing


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON data")


def read_json_object(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object, within the configured size limit."""
    limit = api_max_body_size()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError("invalid_body", "Content-Length must be an integer.") from None
    too_large = ApiError("payload_too_large", f"The request body exceeds {limit} bytes.")
    if declared > limit:
        raise too_large
    # The declared length may be absent or wrong (chunked bodies): measure the real one.
    data = request.read(limit + 1)
    if len(data) > limit:
        raise too_large
    try:
        # UTF-8 only (RFC 8259 §8.1), a leading byte order mark tolerated; json.loads would
        # otherwise guess UTF-16/32 from bytes and let UTF-8-encoded lone surrogates through.
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ApiError(
            "malformed_json", f"The body is not UTF-8: {exc.reason} at byte {exc.start}."
        ) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError("invalid_value", "The JSON body is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers of over 4300 digits
        raise ApiError("malformed_json", f"The body is not valid JSON: {exc}") from None
    if type(value) is not dict:
        raise ApiError("invalid_body", "The body must be a JSON object.")
    return value


def _int_parameter(raw: str | None, name: str, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= maximum:
        raise ApiError("invalid_parameter", f"{name} must be an integer from 1 to {maximum}.")
    return number


def _ttl_parameter(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        ttl = float(raw)
    except ValueError:
        ttl = -1.0
    if not 0 < ttl <= MAX_TTL:  # also refuses NaN
        raise ApiError(
            "invalid_parameter", f"ttl must be a positive number of seconds up to {MAX_TTL}."
        )
    return ttl


def _valid_key(key: str) -> str:
    try:
        return validate_key(key)
    except InvalidKeyError as exc:
        raise ApiError("invalid_key", str(exc)) from None


# ---------------------------------------------------------------------------------- views


@endpoint(GET="view")
async def store_list(request: HttpRequest, store: None) -> HttpResponse:
    """``GET stores/``: the stores this user may view, with backend name and capabilities."""
    aliases = await sync_to_async(visible_aliases)(request.user)
    stores: list[dict[str, Any]] = []
    for alias in aliases:
        try:
            instance = storages[alias]
        except ConfigurationError:
            stores.append({"alias": alias, "backend": None, "capabilities": None,
                           "error": "store_misconfigured"})
            continue
        stores.append({"alias": alias, "backend": instance.backend_name,
                       "capabilities": _capabilities(instance)})
    return JsonResponse({"stores": stores})


@endpoint(GET="view", PUT="change", DELETE="delete")
async def record(request: HttpRequest, store: BaseStorageBackend, key: str) -> HttpResponse:
    """``GET | PUT | DELETE stores/<alias>/records/<key>``.

    GET answers ``{"key", "value"}`` or 404. PUT stores the JSON object body as the value
    (``?ttl=seconds`` for stores that support expiry): 201 if the key was new, else 200.
    DELETE answers 204 whether or not the key existed.
    """
    key = _valid_key(key)
    if request.method == "GET":
        value = await store.get(key)
        if value is None:
            raise ApiError("record_not_found", "No record has this key.")
        return JsonResponse({"key": key, "value": value})
    if request.method == "DELETE":
        await store.delete(key)
        return HttpResponse(status=204)
    ttl = _ttl_parameter(request.GET.get("ttl"))
    value = read_json_object(request)
    try:
        encode_value(value)
    except InvalidValueError as exc:
        raise ApiError("invalid_value", str(exc)) from None
    created = not await store.exists(key)
    await store.set(key, value, ttl=ttl)
    response = JsonResponse({"key": key, "value": value}, status=201 if created else 200)
    if created:
        response["Location"] = request.path
    return response


@endpoint(GET="view")
async def record_list(request: HttpRequest, store: BaseStorageBackend) -> HttpResponse:
    """``GET stores/<alias>/records/?prefix=&cursor=&limit=``: one page of keys.

    Pass the returned ``cursor`` back for the next page; it is ``null`` on the last one.
    """
    if not store.supports_listing:
        raise ApiError(
            "unsupported_operation",
            f"Listing is not supported by the {store.backend_name!r} backend.",
        )
    prefix = request.GET.get("prefix", "")
    limit = _int_parameter(request.GET.get("limit"), "limit", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    cursor = request.GET.get("cursor") or None
    try:
        page = await store.keys(prefix, limit=limit, cursor=cursor)
    except InvalidKeyError as exc:
        raise ApiError("invalid_parameter", f"prefix: {exc}") from None
    except InvalidValueError as exc:
        raise ApiError("invalid_parameter", str(exc)) from None
    return JsonResponse({"keys": page.keys, "cursor": page.cursor})


_SEARCH_FIELDS = frozenset({"embedding", "text", "limit", "filter"})


@endpoint(POST="view")
async def search(request: HttpRequest, store: BaseStorageBackend) -> HttpResponse:
    """``POST stores/<alias>/search``: similarity search.

    Body: ``{"embedding": [floats], "limit": n, "filter": {...}}``, or ``{"text": "..."}``
    instead of ``embedding`` for stores whose ``text_search`` capability is true (an
    embedder is configured; the store embeds the text).
    Answers ``{"results": [{"key", "score", "value"}]}``, best first.
    """
    if not store.supports_search:
        raise ApiError(
            "unsupported_operation",
            f"Similarity search is not supported by the {store.backend_name!r} backend.",
        )
    body = read_json_object(request)
    unknown = sorted(set(body) - _SEARCH_FIELDS)
    if unknown:
        raise ApiError("invalid_body", f"Unknown field(s): {', '.join(unknown)}.")
    if ("embedding" in body) == ("text" in body):
        raise ApiError("invalid_body", "Give exactly one of 'embedding' or 'text'.")
    limit = body.get("limit", 5)
    if type(limit) is not int or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ApiError(
            "invalid_parameter", f"limit must be an integer from 1 to {MAX_SEARCH_LIMIT}."
        )
    filter_ = body.get("filter")
    if filter_ is not None and type(filter_) is not dict:
        raise ApiError("invalid_body", "filter must be a JSON object.")
    if "text" in body:
        query: str | list[float] = _valid_text(store, body["text"])
    else:
        query = _valid_embedding(store, body["embedding"])
    try:
        results = await store.search(query, limit, filter=filter_)  # type: ignore[arg-type]
    except InvalidValueError as exc:
        code = "invalid_vector" if (exc.path or "").startswith("embedding") else "invalid_value"
        raise ApiError(code, str(exc)) from None
    return JsonResponse({"results": results})


def _finite(x: Any) -> bool:
    try:
        return type(x) in (int, float) and math.isfinite(x)
    except OverflowError:  # a JSON integer too large for a float
        return False


def _valid_embedding(store: BaseStorageBackend, embedding: Any) -> list[float]:
    if type(embedding) is not list or not embedding or not all(map(_finite, embedding)):
        raise ApiError("invalid_vector", "embedding must be a non-empty list of finite numbers.")
    dimensions = getattr(store, "dimensions", None)
    if type(dimensions) is int and len(embedding) != dimensions:
        raise ApiError(
            "invalid_vector",
            f"embedding has {len(embedding)} dimensions; this store uses {dimensions}.",
        )
    return [float(x) for x in embedding]


def _valid_text(store: BaseStorageBackend, text: Any) -> str:
    if not supports_text_search(store):
        raise ApiError(
            "unsupported_operation",
            f"Text search is not supported by this {store.backend_name!r} store "
            "(it has no embedder); send an 'embedding' instead.",
        )
    if type(text) is not str or not text.strip():
        raise ApiError("invalid_body", "text must be a non-empty string.")
    return text


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
