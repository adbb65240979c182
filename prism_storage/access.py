"""Who may do what to which store: shared by the JSON API and the admin store browser.

Two layers, both must allow an operation:

1. Django permissions on the ``Record`` model, for records of *every* store:
   ``view`` needs ``prism_storage.view_record`` (or ``change_record``, as in the admin),
   ``change`` (create or replace) needs ``prism_storage.change_record``,
   ``delete`` needs ``prism_storage.delete_record``. Superusers have them all.
2. The optional per-user hook ``PRISM_STORAGE_ACCESS``: a callable (or its dotted path)
   ``policy(user, alias, operation) -> bool``, consulted for every user, superusers
   included. A store the policy refuses to ``"view"`` is hidden: it is left out of
   listings and answered as unknown (404); refusing another operation is a 403.
   A policy that takes a fourth parameter (or ``**kwargs``) is also asked about each key:
   ``policy(user, alias, operation, key)``, with ``key=None`` for decisions about the
   store as a whole. A key it refuses to ``"view"`` is left out of listings and search
   results and read as missing (404); refusing a write to a key is a 403.

CSRF protection of session-authenticated writes is checked here too (:func:`csrf_refusal`),
exactly as Django's ``CsrfViewMiddleware`` would, except that the token is taken from the
``X-CSRFToken`` header only and the body is never parsed as a form.

The functions here are synchronous (permissions, policies and sessions may query the
database); async callers run them through ``sync_to_async``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Literal

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import decorator_from_middleware
from django.utils.module_loading import import_string

from .conf import access_policy
from .handler import storages

__all__ = [
    "OPERATIONS",
    "Operation",
    "csrf_refusal",
    "has_model_permission",
    "key_allowed",
    "policy_allows",
    "policy_checks_keys",
    "visible_aliases",
    "visible_keys",
]

Operation = Literal["view", "change", "delete"]
OPERATIONS: tuple[Operation, ...] = ("view", "change", "delete")

_PERMISSIONS: dict[str, tuple[str, ...]] = {
    # Any one of the listed permissions grants the operation.
    "view": ("prism_storage.view_record", "prism_storage.change_record"),
    "change": ("prism_storage.change_record",),
    "delete": ("prism_storage.delete_record",),
}


def has_model_permission(user: Any, operation: Operation) -> bool:
    """Whether ``user`` holds a Django permission granting ``operation`` on records."""
    if not (user.is_authenticated and user.is_active):
        return False
    return any(user.has_perm(perm) for perm in _PERMISSIONS[operation])


def _key_passing(policy: Callable[..., Any]) -> str | None:
    """How ``policy`` takes the key: ``"positional"`` (a fourth positional parameter or
    ``*args``), ``"keyword"`` (a keyword ``key`` or ``**kwargs``), or ``None`` (the
    three-argument form)."""
    try:
        parameters = list(inspect.signature(policy).parameters.values())
    except (TypeError, ValueError):  # no signature to read: the documented three arguments
        return None
    kinds = {p.kind for p in parameters}
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 4 or inspect.Parameter.VAR_POSITIONAL in kinds:
        return "positional"
    if any(p.kind is p.KEYWORD_ONLY and p.name == "key" for p in parameters):
        return "keyword"
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return "keyword"
    return None


# Read once per policy object, not per request; keyed by identity so a new setting
# (override_settings, a reloaded module) is inspected anew.
_passing_cache: dict[int, tuple[Callable[..., Any], str | None]] = {}


def _passing(policy: Callable[..., Any]) -> str | None:
    cached = _passing_cache.get(id(policy))
    if cached is None or cached[0] is not policy:
        cached = (policy, _key_passing(policy))
        _passing_cache[id(policy)] = cached
    return cached[1]


def policy_checks_keys() -> bool:
    """Whether the configured ``PRISM_STORAGE_ACCESS`` policy decides per key."""
    policy = access_policy()
    return policy is not None and _passing(policy) is not None


def _ask(
    policy: Callable[..., Any], user: Any, alias: str, operation: str, key: str | None
) -> bool:
    passing = _passing(policy)
    if passing == "positional":
        return bool(policy(user, alias, operation, key))
    if passing == "keyword":
        return bool(policy(user, alias, operation, key=key))
    return bool(policy(user, alias, operation))


def policy_allows(user: Any, alias: str, operation: Operation, key: str | None = None) -> bool:
    """Whether the ``PRISM_STORAGE_ACCESS`` hook (if any) lets ``user`` do ``operation``
    on store ``alias`` (``key=None``) or on its record ``key``.

    A three-argument policy decides for the store only: asked about a key, it answers
    for the store.
    """
    policy = access_policy()
    return policy is None or _ask(policy, user, alias, operation, key)


def key_allowed(user: Any, alias: str, operation: Operation, key: str) -> bool:
    """Whether a per-key policy lets ``user`` do ``operation`` on ``key`` (always true
    under a store-level policy, which :func:`check_store_access` has already asked)."""
    policy = access_policy()
    return policy is None or _passing(policy) is None or _ask(policy, user, alias, operation, key)


def visible_keys(user: Any, alias: str, keys: Iterable[str]) -> list[str]:
    """The ``keys`` that ``user`` may view, in the given order."""
    keys = list(keys)
    policy = access_policy()
    if policy is None or _passing(policy) is None:
        return keys
    return [key for key in keys if _ask(policy, user, alias, "view", key)]


def store_configured(alias: str) -> bool:
    return alias in storages.settings


def visible_aliases(user: Any) -> list[str]:
    """The configured aliases ``user`` may view, in setting order."""
    if not has_model_permission(user, "view"):
        return []
    return [alias for alias in storages.settings if policy_allows(user, alias, "view")]


def check_store_access(user: Any, alias: str, operation: Operation) -> str | None:
    """Why ``user`` may not do ``operation`` on store ``alias``; ``None`` if allowed.

    Returns ``"not_authenticated"``, ``"permission_denied"`` or ``"unknown_store"`` (the
    store is not configured or hidden from this user by the policy).
    """
    if not (user.is_authenticated and user.is_active):
        return "not_authenticated"
    if not has_model_permission(user, operation):
        return "permission_denied"
    if not store_configured(alias) or not policy_allows(user, alias, "view"):
        return "unknown_store"
    if operation != "view" and not policy_allows(user, alias, operation):
        return "permission_denied"
    return None


class _Passed(HttpResponse):
    """What the protected stand-in view answers: the request passed the CSRF check."""


def _passed(request: HttpRequest) -> HttpResponse:
    return _Passed()


@functools.cache
def _csrf_middleware(middleware: tuple[str, ...]) -> type[CsrfViewMiddleware] | None:
    for path in middleware:
        candidate = import_string(path)
        if isinstance(candidate, type) and issubclass(candidate, CsrfViewMiddleware):
            return candidate
    return None


#: Methods CSRF protection leaves alone (RFC 9110's safe methods, as the middleware does).
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def csrf_refusal(request: HttpRequest) -> HttpResponseBase | None:
    """The CSRF failure response for ``request``, or ``None`` if it passes (or the project
    does not install ``CsrfViewMiddleware``, which then skips the API's views).

    The project's own middleware class runs the check, so its settings, trusted origins
    and ``CSRF_FAILURE_VIEW`` apply. The API's views are ``csrf_exempt`` for the middleware
    because it would parse a POST body with a form content type: a malformed multipart
    body would end the request with Django's HTML 400 page before the API could answer,
    and a well-formed one would be consumed before the API reads it as JSON.
    """
    middleware = _csrf_middleware(tuple(settings.MIDDLEWARE))
    if middleware is None or request.method in _SAFE_METHODS:
        return None
    if request.method == "POST":
        # An empty form, so the check reads the token from the header and the body is
        # left for the API to read as JSON.
        request.POST = QueryDict()
    # Protected as ``csrf_protect`` protects a view, with the project's own class. A new
    # instance per request, as the middleware caches settings (trusted origins) on itself.
    protect: Callable[[Callable[[HttpRequest], HttpResponse]], Callable[..., HttpResponseBase]]
    protect = decorator_from_middleware(middleware)
    response = protect(_passed)(request)
    return None if isinstance(response, _Passed) else response
