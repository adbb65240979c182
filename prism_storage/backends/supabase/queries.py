"""Pieces of the ``supabase`` backend's PostgREST queries: timestamps and expiries, the
filter of live rows, key ranges, ``in`` lists, and batches of keys sized for the URL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ..key_ranges import prefix_end

__all__ = ["alive", "chunks", "expiry", "in_list", "key_range", "parse_timestamp", "timestamp"]

#: Keys per ``in`` filter are capped by size so the URL stays well under gateway limits
#: (URLs of 16 KB and more are refused); a batch takes one request up to this budget.
_URL_BUDGET_BYTES = 4096
_LAST_TIMESTAMP = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


def timestamp(seconds: float) -> str:
    """An ISO 8601 UTC timestamp PostgreSQL parses; beyond year 9999, ``infinity``."""
    if seconds >= _LAST_TIMESTAMP:
        return "infinity"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """A ``timestamptz`` as PostgREST answers it, as an aware UTC datetime; ``infinity``
    (an expiry beyond year 9999) as the latest datetime there is."""
    if text == "infinity":
        return datetime.max.replace(tzinfo=UTC)
    return datetime.fromisoformat(text).astimezone(UTC)


def expiry(now: float, ttl: float | None) -> str | None:
    """The ``expires_at`` of a row written at ``now`` with ``ttl`` (``None``: never)."""
    return None if ttl is None else timestamp(now + ttl)


def alive(query: Any, now: float) -> Any:
    """``query`` limited to the rows not expired at ``now``."""
    return query.or_(f"expires_at.is.null,expires_at.gt.{timestamp(now)}")


def key_range(query: Any, low: str) -> Any:
    """``query`` limited to the keys that start with ``low`` (a key range, never ``like``:
    ``%``, ``_`` and ``*`` are keys' characters; the key column sorts in code point order,
    ``collate "C"``)."""
    query = query.gte("key", low)
    high = prefix_end(low)
    return query if high is None else query.lt("key", high)


def in_list(keys: list[str]) -> str:
    """A PostgREST ``in`` list with every element quoted (unquoted ones lose leading spaces)."""
    quoted = (k.replace("\\", "\\\\").replace('"', '\\"') for k in keys)
    return "(" + ",".join(f'"{k}"' for k in quoted) + ")"


def chunks(keys: list[str]) -> Iterator[list[str]]:
    """``keys`` in batches whose ``in`` list fits the URL budget."""
    chunk: list[str] = []
    size = 0
    for key in keys:
        cost = len(key.encode()) + 3
        if chunk and size + cost > _URL_BUDGET_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(key)
        size += cost
    if chunk:
        yield chunk
