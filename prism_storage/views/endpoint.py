"""``@endpoint``: what every API view shares (method, CSRF, access, store, errors)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from ..access import Operation, check_store_access, csrf_refusal, has_model_permission
from ..backends.base import BaseStorageBackend
from ..exceptions import ConfigurationError, PrismStorageError
from ..handler import storages
from .errors import ApiError, error_response, store_error

__all__ = ["endpoint"]

Handler = Callable[..., Awaitable[HttpResponse]]

_ACCESS_MESSAGES = {
    "not_authenticated": "Authentication is required.",
    "permission_denied": "You do not have permission to {operation} records of this store.",
    "unknown_store": "No store {alias!r} is configured.",
}


def _check_access(request: HttpRequest, alias: str | None, operation: Operation) -> str | None:
    user = request.user  # resolved here, in a thread: it may query the database
    if alias is None:
        if not (user.is_authenticated and user.is_active):
            return "not_authenticated"
        return None if has_model_permission(user, operation) else "permission_denied"
    return check_store_access(user, alias, operation)


def _authorize(
    request: HttpRequest, alias: str | None, operation: Operation
) -> HttpResponseBase | None:
    """CSRF, then access: the refusal, or ``None`` to go on. Runs in a worker thread."""
    refusal = csrf_refusal(request)
    if refusal is not None:
        return refusal
    problem = _check_access(request, alias, operation)
    if problem is None:
        return None
    message = _ACCESS_MESSAGES[problem].format(alias=alias, operation=operation)
    return error_response(problem, message)


def _store(alias: str) -> BaseStorageBackend:
    try:
        return storages[alias]
    except ConfigurationError as exc:
        raise store_error(exc, alias) from exc


def endpoint(**operations: Operation) -> Callable[[Handler], Any]:
    """Make an API view: HTTP method -> the operation it needs, then errors -> JSON.

    The wrapped handler is called as ``handler(request, store, **url_kwargs)`` (``store``
    is ``None`` for views without an alias) once the user is allowed.
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
            refusal = await sync_to_async(_authorize)(request, alias, operation)
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
