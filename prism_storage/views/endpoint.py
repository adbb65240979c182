"""``@endpoint``: what every API view shares (method, CSRF, access, store, errors)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from ..access import (
    Operation,
    check_store_access,
    csrf_refusal,
    has_model_permission,
    key_allowed,
)
from ..backends.base import BaseStorageBackend
from ..codec import validate_key
from ..exceptions import ConfigurationError, InvalidKeyError, PrismStorageError
from ..handler import storages
from .errors import ApiError, error_response, store_error

__all__ = ["endpoint", "request_alias"]

Handler = Callable[..., Awaitable[HttpResponse]]

_ACCESS_MESSAGES = {
    "not_authenticated": "Authentication is required.",
    "permission_denied": "You do not have permission to {operation} records of this store.",
    "unknown_store": "No store {alias!r} is configured.",
    # The same answer as for a missing record: a hidden key's existence is not revealed.
    "record_not_found": "No record has this key.",
}


def _check_access(
    request: HttpRequest, alias: str | None, operation: Operation, key: str | None
) -> str | None:
    user = request.user  # resolved here, in a thread: it may query the database
    if alias is None:
        if not (user.is_authenticated and user.is_active):
            return "not_authenticated"
        return None if has_model_permission(user, operation) else "permission_denied"
    problem = check_store_access(user, alias, operation)
    if problem is not None or key is None:
        return problem
    try:
        validate_key(key)
    except InvalidKeyError:
        return None  # the view answers 400; a policy is only ever asked about valid keys
    if not key_allowed(user, alias, operation, key):
        return "record_not_found" if operation == "view" else "permission_denied"
    return None


def _authorize(
    request: HttpRequest, alias: str | None, operation: Operation, key: str | None = None
) -> HttpResponseBase | None:
    """CSRF, then access (to the store, then to the record ``key`` if the view has one):
    the refusal, or ``None`` to go on. Runs in a worker thread."""
    refusal = csrf_refusal(request)
    if refusal is not None:
        return refusal
    problem = _check_access(request, alias, operation, key)
    if problem is None:
        return None
    message = _ACCESS_MESSAGES[problem].format(alias=alias, operation=operation)
    return error_response(problem, message)


def request_alias(request: HttpRequest) -> str:
    """The alias in the URL of a store view (the store may not know its own alias)."""
    match = request.resolver_match
    assert match is not None  # a view is only reached through the URL resolver
    return str(match.kwargs["alias"])


def _store(alias: str) -> BaseStorageBackend:
    try:
        return storages[alias]
    except ConfigurationError as exc:
        raise store_error(exc, alias) from exc


def endpoint(**operations: Operation) -> Callable[[Handler], Any]:
    """Make an API view: HTTP method -> the operation it needs, then errors -> JSON.

    The wrapped handler is called as ``handler(request, store, **url_kwargs)`` (``store``
    is ``None`` for views without an alias) once the user is allowed: to the store, and,
    for a view with a ``key``, to that record under a per-key access policy.
    """

    def decorate(handler: Handler) -> Any:  # an async view (django-stubs types views as sync)
        @functools.wraps(handler)
        async def view(
            request: HttpRequest, alias: str | None = None, **kwargs: Any
        ) -> HttpResponseBase:
            operation = operations.get(request.method or "")
            if operation is None:
                response = error_response(
                    "method_not_allowed", f"{request.method} is not allowed here."
                )
                response["Allow"] = ", ".join(operations)
                return response
            refusal = await sync_to_async(_authorize)(request, alias, operation, kwargs.get("key"))
            if refusal is not None:
                return refusal
            try:
                store = None if alias is None else _store(alias)
                return await handler(request, store, **kwargs)
            except ApiError as exc:
                return error_response(exc.code, exc.message)
            except (PrismStorageError, ConfigurationError) as exc:
                error = store_error(exc, alias or "")
                return error_response(error.code, error.message)

        view.prism_api = True  # type: ignore[attr-defined]
        view.csrf_exempt = True  # type: ignore[attr-defined]  # checked in _authorize instead
        return view

    return decorate
