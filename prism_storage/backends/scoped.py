"""Tenant scopes: ``store.scoped("acme", "user-7")`` is a store confined to one prefix.

The scope's prefix is its segments encoded by :mod:`prism_storage.segments` (each label
percent-encoded so it holds no ``/``, each followed by ``/``): the scope ``("acme",)``
owns the keys starting with ``acme/``, which no key of ``("acme-2",)`` (``acme-2/``) or
of ``("acme/x",)`` (``acme%2Fx/``) starts with. A scope within a scope
(``scoped("acme").scoped("u1")``) is the scope of the joined segments.

Every method calls the inner store's *public* method with the full key, so the inner
store validates it (a key too long once prefixed raises InvalidKeyError) and keeps all
its guarantees; keys handed back are relative to the scope. ``search`` asks the inner
store for more hits than ``limit`` and keeps those in the scope (engines cannot filter
on a key prefix): it may return fewer than ``limit`` hits when the scope holds few of the
store's nearest records. ``sweep`` is refused: expiry is swept for the whole store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..codec import validate_key, validate_keys
from ..exceptions import InvalidValueError, UnsupportedOperationError
from ..segments import join
from .base import DEFAULT_PAGE_SIZE, BaseStorageBackend, KeyPage, check_erasure
from .versions import DEFAULT_LIST_FIELD, DEFAULT_UPDATE_ATTEMPTS, Record, WriteResult

__all__ = ["SEARCH_OVERFETCH", "ScopedStore"]

#: A scoped search asks the inner store for this many times ``limit`` hits ...
SEARCH_OVERFETCH = 10
#: ... but never more than this (the vector store's own ceiling).
SEARCH_CEILING = 1000

_FLAGS = (
    "backend_name",
    "supports_ttl",
    "ttl_uses_clock",
    "supports_listing",
    "supports_search",
    "native_batch",
    "shared_across_processes",
    "max_value_bytes",
    "supports_versions",
    "supports_conditional_writes",
    "supports_atomic_lists",
    "timeout",
    "dimensions",
    "embedder",
    "default_ttl",
)


class ScopedStore(BaseStorageBackend):
    """The keys of ``inner`` under the encoded ``segments``, as a store of their own."""

    supports_sweep = False
    #: Every method calls the inner store's public method, which sends the signals and
    #: spans (with the full key): the scope adds none of its own.
    reports_operations = False

    def __init__(self, inner: BaseStorageBackend, segments: Iterable[str]) -> None:
        segments = tuple(segments)
        if not segments:
            raise InvalidValueError("scoped() takes at least one segment.")
        for segment in segments:
            if type(segment) is not str:
                raise InvalidValueError("Each segment of scoped() must be a str.")
        if isinstance(inner, ScopedStore):
            outer: ScopedStore = inner
            segments, inner = outer.segments + segments, outer.inner
        super().__init__(alias=inner.alias)
        self.inner: BaseStorageBackend = inner
        self.segments: tuple[str, ...] = segments
        #: Every full key of the scope starts with it.
        self.prefix = join(*segments)
        validate_key(self.prefix)  # a scope too long for any key fails here, before I/O
        for flag in _FLAGS:  # the inner store's capabilities are the scope's
            setattr(self, flag, getattr(inner, flag))

    def describe(self) -> str:
        return f"scope={self.segments!r} of {self.inner!r}"

    def _full(self, key: str) -> str:
        # The relative key is checked on its own first: "" would otherwise name the scope.
        return self.prefix + validate_key(key)

    def _relative(self, key: str) -> str:
        return key[len(self.prefix) :]

    # ------------------------------------------------------------------ plain records

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.inner.get(self._full(key))

    async def set(self, key: str, value: dict[str, Any], *, ttl: float | None = None) -> None:
        await self.inner.set(self._full(key), value, ttl=ttl)

    async def delete(self, key: str) -> None:
        await self.inner.delete(self._full(key))

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(self._full(key))

    async def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        full = [self.prefix + key for key in validate_keys(keys)]
        found = await self.inner.get_many(full)
        return {self._relative(key): value for key, value in found.items()}

    async def set_many(
        self, mapping: Mapping[str, dict[str, Any]], *, ttl: float | None = None
    ) -> None:
        if not isinstance(mapping, Mapping):
            raise InvalidValueError("set_many() takes a mapping of key -> value.")
        await self.inner.set_many({self._full(k): v for k, v in mapping.items()}, ttl=ttl)

    async def delete_many(self, keys: Iterable[str]) -> None:
        await self.inner.delete_many([self.prefix + key for key in validate_keys(keys)])

    # ------------------------------------------------------------------ listing, erasure

    async def keys(
        self, prefix: str = "", limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> KeyPage:
        if type(prefix) is not str:
            raise InvalidValueError("prefix must be a str.")
        if prefix:
            validate_key(prefix)
        page = await self.inner.keys(self.prefix + prefix, limit, cursor)
        return KeyPage([self._relative(key) for key in page.keys], page.cursor)

    async def delete_prefix(self, prefix: str, *, all: bool = False) -> int:
        check_erasure(prefix, all, "scope")
        # Never empty: the scope's prefix ends with "/", so this erases the scope only.
        return await self.inner.delete_prefix(self.prefix + prefix)

    # ------------------------------------------------------------------ search

    async def search(
        self,
        embedding: Any,
        limit: int = 5,
        *,
        filter: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` records of the scope most similar to ``embedding``, best first
        (possibly fewer: see the module docstring)."""
        if type(limit) is not int or limit < 1:
            raise InvalidValueError("limit must be a positive int.")
        wanted = min(limit * SEARCH_OVERFETCH, max(SEARCH_CEILING, limit))
        hits = await self.inner.search(embedding, wanted, filter=filter)
        mine = [
            {**hit, "key": self._relative(hit["key"])}
            for hit in hits
            if hit["key"].startswith(self.prefix)
        ]
        return mine[:limit]

    async def sweep(self) -> int:
        raise UnsupportedOperationError(
            "A scope cannot be swept on its own: sweep the whole store (its expired "
            "records, in every scope)."
        )

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        return await self.inner.touch(self._full(key), ttl)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        """Nothing to release: the scope holds no connection; the inner store's owner
        closes it."""

    # ------------------------------------------------------------------ versioned records

    def _scoped_record(self, record: Record | None) -> Record | None:
        if record is None:
            return None
        return dataclasses.replace(record, key=self._relative(record.key))

    async def get_record(self, key: str) -> Record | None:
        return self._scoped_record(await self.inner.get_record(self._full(key)))

    async def get_many_records(self, keys: Iterable[str]) -> dict[str, Record]:
        full = [self.prefix + key for key in validate_keys(keys)]
        found = await self.inner.get_many_records(full)
        return {
            self._relative(key): dataclasses.replace(record, key=self._relative(record.key))
            for key, record in found.items()
        }

    async def put(
        self,
        key: str,
        value: dict[str, Any],
        *,
        ttl: float | None = None,
        if_version: str | None = None,
        if_absent: bool = False,
    ) -> WriteResult:
        return await self.inner.put(
            self._full(key), value, ttl=ttl, if_version=if_version, if_absent=if_absent
        )

    async def remove(self, key: str, *, if_version: str | None = None) -> bool:
        return await self.inner.remove(self._full(key), if_version=if_version)

    async def append(
        self,
        key: str,
        items: list[Any],
        *,
        field: str = DEFAULT_LIST_FIELD,
        max_items: int | None = None,
        ttl: float | None = None,
    ) -> int:
        return await self.inner.append(
            self._full(key), items, field=field, max_items=max_items, ttl=ttl
        )

    async def pop(self, key: str, *, field: str = DEFAULT_LIST_FIELD) -> Any:
        return await self.inner.pop(self._full(key), field=field)

    async def update(
        self,
        key: str,
        fn: Callable[[dict[str, Any] | None], dict[str, Any]],
        *,
        ttl: float | None = None,
        attempts: int = DEFAULT_UPDATE_ATTEMPTS,
    ) -> dict[str, Any]:
        return await self.inner.update(self._full(key), fn, ttl=ttl, attempts=attempts)
