"""Similarity search: ``POST stores/<alias>/search``."""

from __future__ import annotations

import math
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from ..access import visible_keys
from ..backends.base import BaseStorageBackend
from ..exceptions import InvalidValueError
from .endpoint import endpoint, request_alias
from .errors import ApiError
from .parsing import read_json_object

__all__ = ["MAX_SEARCH_LIMIT", "search"]

MAX_SEARCH_LIMIT = 100

_SEARCH_FIELDS = frozenset({"embedding", "text", "limit", "filter"})


@endpoint(POST="view")
async def search(request: HttpRequest, store: BaseStorageBackend) -> HttpResponse:
    """``POST stores/<alias>/search``: similarity search.

    Body: ``{"embedding": [floats], "limit": n, "filter": {...}}``, or ``{"text": "..."}``
    instead of ``embedding`` for stores whose ``text_search`` capability is true (an
    embedder is configured; the store embeds the text).
    Answers ``{"results": [{"key", "score", "value"}]}``, best first. Under a per-key
    access policy, hits the user may not view are left out (so fewer than ``limit`` may
    come back).
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
    allowed = set(
        await sync_to_async(visible_keys)(
            request.user, request_alias(request), [hit["key"] for hit in results]
        )
    )
    return JsonResponse({"results": [hit for hit in results if hit["key"] in allowed]})


def _finite(x: Any) -> bool:
    try:
        return type(x) in (int, float) and math.isfinite(x)
    except OverflowError:  # a JSON integer too large for a float
        return False


def _valid_embedding(store: BaseStorageBackend, embedding: Any) -> list[float]:
    if type(embedding) is not list or not embedding or not all(map(_finite, embedding)):
        raise ApiError("invalid_vector", "embedding must be a non-empty list of finite numbers.")
    dimensions = store.dimensions
    if dimensions is not None and len(embedding) != dimensions:
        raise ApiError(
            "invalid_vector",
            f"embedding has {len(embedding)} dimensions; this store uses {dimensions}.",
        )
    return [float(x) for x in embedding]


def _valid_text(store: BaseStorageBackend, text: Any) -> str:
    if not store.supports_text_search:
        raise ApiError(
            "unsupported_operation",
            f"Text search is not supported by this {store.backend_name!r} store "
            "(it has no embedder); send an 'embedding' instead.",
        )
    if type(text) is not str or not text.strip():
        raise ApiError("invalid_body", "text must be a non-empty string.")
    return text
