"""A vector store's points on one engine, through the adapter of the running event loop.

Every call to the engine goes through the backend's guard (the engine's errors become
typed errors, within the store's timeout), and every write gives its records fresh
metadata (see :mod:`.metadata`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from ..base import KeyPage
from .adapter import Hit, Stored, VectorAdapter
from .filters import Node
from .metadata import new_records

__all__ = ["Guard", "Items", "Points"]

T = TypeVar("T")
#: Records to write: (key, value, JSON text) triples.
Items = list[tuple[str, dict[str, Any], str]]


class Guard(Protocol):
    """Awaits an engine call to ``action``, mapping the engine's ``errors`` and time-outs
    to typed errors (``BaseStorageBackend._guard``)."""

    def __call__(
        self, action: str, awaitable: Awaitable[T], errors: tuple[type[BaseException], ...]
    ) -> Awaitable[T]: ...


class Points:
    """The points of one store on one engine (``adapter``)."""

    def __init__(self, adapter: VectorAdapter, guard: Guard) -> None:
        self.adapter = adapter
        self._guard = guard

    def locked(self, keys: Iterable[str]) -> AbstractAsyncContextManager[None]:
        """Hold the keys' locks on an embedded engine (see :meth:`VectorAdapter.locked`)."""
        return self.adapter.locked(keys)

    async def fetch(self, keys: list[str]) -> dict[str, Stored]:
        return await self._guard("read", self.adapter.fetch(keys), self.adapter.errors)

    async def upsert(
        self,
        items: Items,
        vectors: list[list[float]],
        current: Mapping[str, Stored],
    ) -> list[str]:
        """Upsert ``items``, each with its vector and fresh metadata (keeping the creation
        time of the ``current`` record); return the new versions."""
        records = new_records(items, vectors, current, time.time())
        await self._guard("write", self.adapter.upsert(records), self.adapter.errors)
        return [record.version for record in records]

    async def delete(self, keys: list[str]) -> None:
        await self._guard("delete", self.adapter.delete(keys), self.adapter.errors)

    async def list_keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        listing = self.adapter.list_keys(prefix, limit, cursor)
        return await self._guard("list keys", listing, self.adapter.errors)

    async def query(self, vector: list[float], limit: int, where: Node | None) -> list[Hit]:
        return await self._guard(
            "search", self.adapter.query(vector, limit, where), self.adapter.errors
        )
