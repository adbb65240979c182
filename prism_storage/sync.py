"""A thin synchronous facade over a backend, for management commands, sync views and
task workers.

Each call goes through :func:`asgiref.sync.async_to_sync`. Inside a request served by an
ASGI server that runs the coroutine on the server's own event loop; elsewhere asgiref
starts a short-lived loop for the call, and the facade closes the backend's clients for
that loop before it ends, so no connection outlives its loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from asgiref.sync import async_to_sync

from .backends.base import BaseStorageBackend, KeyPage
from .backends.versions import DEFAULT_LIST_FIELD, DEFAULT_UPDATE_ATTEMPTS, Record, WriteResult
from .compat import outer_event_loop_running

__all__ = ["SyncStore", "sync_storages"]

T = TypeVar("T")


class SyncStore:
    """Blocking versions of a backend's methods, with the same names and arguments."""

    def __init__(self, store: BaseStorageBackend) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"<SyncStore {self.store!r}>"

    def _call(self, method: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if outer_event_loop_running():
            return async_to_sync(method)(*args, **kwargs)

        async def run_on_short_lived_loop() -> T:
            try:
                return await method(*args, **kwargs)
            finally:
                await self.store.close()

        return async_to_sync(run_on_short_lived_loop)()

    def get(self, key: str) -> dict[str, Any] | None:
        return self._call(self.store.get, key)

    def set(self, key: str, value: dict[str, Any], *, ttl: float | None = None) -> None:
        return self._call(self.store.set, key, value, ttl=ttl)

    def delete(self, key: str) -> None:
        return self._call(self.store.delete, key)

    def exists(self, key: str) -> bool:
        return self._call(self.store.exists, key)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        return self._call(self.store.get_many, list(keys))

    def set_many(self, mapping: Mapping[str, dict[str, Any]], *, ttl: float | None = None) -> None:
        return self._call(self.store.set_many, mapping, ttl=ttl)

    def delete_many(self, keys: Iterable[str]) -> None:
        return self._call(self.store.delete_many, list(keys))

    def keys(self, prefix: str = "", limit: int = 100, cursor: str | None = None) -> KeyPage:
        return self._call(self.store.keys, prefix, limit, cursor)

    def iter_keys(self, prefix: str = "", page_size: int = 500) -> Iterator[str]:
        cursor: str | None = None
        while True:
            page = self.keys(prefix, page_size, cursor)
            yield from page.keys
            if page.cursor is None:
                return
            cursor = page.cursor

    def delete_prefix(self, prefix: str, *, all: bool = False) -> int:
        return self._call(self.store.delete_prefix, prefix, all=all)

    def scoped(self, *segments: str) -> SyncStore:
        return SyncStore(self.store.scoped(*segments))

    def search(
        self, embedding: Any, limit: int = 5, *, filter: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return self._call(self.store.search, embedding, limit, filter=filter)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        return self._call(self.store.touch, key, ttl)

    def sweep(self) -> int:
        return self._call(self.store.sweep)

    def ping(self) -> None:
        return self._call(self.store.ping)

    def close(self) -> None:
        return self._call(self.store.close)

    # ---------------------------------------------------------- versioned records

    def get_record(self, key: str) -> Record | None:
        return self._call(self.store.get_record, key)

    def get_many_records(self, keys: Iterable[str]) -> dict[str, Record]:
        return self._call(self.store.get_many_records, list(keys))

    def put(
        self,
        key: str,
        value: dict[str, Any],
        *,
        ttl: float | None = None,
        if_version: str | None = None,
        if_absent: bool = False,
    ) -> WriteResult:
        return self._call(
            self.store.put, key, value, ttl=ttl, if_version=if_version, if_absent=if_absent
        )

    def remove(self, key: str, *, if_version: str | None = None) -> bool:
        return self._call(self.store.remove, key, if_version=if_version)

    def append(
        self,
        key: str,
        items: list[Any],
        *,
        field: str = DEFAULT_LIST_FIELD,
        max_items: int | None = None,
        ttl: float | None = None,
    ) -> int:
        return self._call(self.store.append, key, items, field=field, max_items=max_items, ttl=ttl)

    def pop(self, key: str, *, field: str = DEFAULT_LIST_FIELD) -> Any:
        return self._call(self.store.pop, key, field=field)

    def update(
        self,
        key: str,
        fn: Callable[[dict[str, Any] | None], dict[str, Any]],
        *,
        ttl: float | None = None,
        attempts: int = DEFAULT_UPDATE_ATTEMPTS,
    ) -> dict[str, Any]:
        return self._call(self.store.update, key, fn, ttl=ttl, attempts=attempts)


class _SyncStorages:
    """``sync_storages[alias]``: the :class:`SyncStore` of ``storages[alias]``."""

    def __getitem__(self, alias: str) -> SyncStore:
        from .handler import storages

        return SyncStore(storages[alias])

    def __iter__(self) -> Iterator[str]:
        from .handler import storages

        return iter(storages)


sync_storages = _SyncStorages()
