"""The ``vector`` backend's search results: the limit of a search, and the engine's hits
ranked by the backend's score (higher is more similar, see :func:`.vectors.to_score`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...exceptions import InvalidValueError
from .adapter import Hit, ScoreKind
from .vectors import to_score

__all__ = ["MAX_SEARCH_LIMIT", "check_limit", "ranked"]

#: ``search()`` returns at most this many results (Pinecone's cap when metadata is included).
MAX_SEARCH_LIMIT = 1000


def check_limit(limit: object) -> int:
    """``limit`` if it is a usable number of results, else InvalidValueError."""
    if type(limit) is not int or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidValueError(f"limit must be an int from 1 to {MAX_SEARCH_LIMIT}.")
    return limit


def ranked(
    hits: list[Hit], kind: ScoreKind, limit: int, decode: Callable[[str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The best ``limit`` of ``hits`` (native scores of ``kind``), best first, as
    ``{"key", "score", "value"}`` with the value ``decode``\\ d from its JSON text."""
    scored = sorted(
        ((to_score(kind, hit.native_score), hit) for hit in hits),
        key=lambda pair: pair[0],
        reverse=True,
    )
    return [
        {"key": hit.key, "score": score, "value": decode(hit.data)} for score, hit in scored[:limit]
    ]
