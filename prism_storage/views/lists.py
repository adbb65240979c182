"""Atomic list operations: ``POST stores/<alias>/append/<key>`` and ``.../pop/<key>``.

The operation is a path segment before the key, so a key may hold any ``/`` and never
reads as an operation. Both change the record (the ``change`` permission) and take no
precondition: each is one atomic operation of the store.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from ..backends.base import BaseStorageBackend
from ..backends.versions import DEFAULT_LIST_FIELD
from .conditions import refuse_preconditions
from .endpoint import endpoint
from .errors import ApiError
from .parsing import read_json_object, ttl_parameter, valid_key

__all__ = ["append", "pop"]

_APPEND_FIELDS = frozenset({"items", "field", "max_items"})


@endpoint(POST="change")
async def append(request: HttpRequest, store: BaseStorageBackend, key: str) -> HttpResponse:
    """Body ``{"items": [...], "field": "messages", "max_items": n}`` (``field`` and
    ``max_items`` optional; ``?ttl=seconds`` resets the expiry): adds the items to the
    end of the record's list and answers ``{"length": n}``, the list's new length."""
    key = valid_key(key)
    refuse_preconditions(request, "append")
    ttl = ttl_parameter(request.GET.get("ttl"))
    body = _body(request, _APPEND_FIELDS)
    if "items" not in body:
        raise ApiError("invalid_body", "The body needs 'items', a list of JSON values.")
    # The store checks items, field and max_items (types, value rules) before any I/O.
    length = await store.append(
        key,
        body["items"],
        field=body.get("field", DEFAULT_LIST_FIELD),
        max_items=body.get("max_items"),
        ttl=ttl,
    )
    return JsonResponse({"length": length})


@endpoint(POST="change")
async def pop(request: HttpRequest, store: BaseStorageBackend, key: str) -> HttpResponse:
    """Body ``{"field": "messages"}`` or none: takes the last item of the record's list
    and answers ``{"item": ...}``; ``null`` when the record or the list is empty (or the
    item itself was ``null``)."""
    key = valid_key(key)
    refuse_preconditions(request, "pop")
    body = _body(request, frozenset({"field"}), optional=True)
    item = await store.pop(key, field=body.get("field", DEFAULT_LIST_FIELD))
    return JsonResponse({"item": item})


def _body(
    request: HttpRequest, fields: frozenset[str], *, optional: bool = False
) -> dict[str, Any]:
    body = read_json_object(request, optional=optional)
    unknown = sorted(set(body) - fields)
    if unknown:
        raise ApiError("invalid_body", f"Unknown field(s): {', '.join(unknown)}.")
    return body
