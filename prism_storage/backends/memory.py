"""``memory``: records in the process's memory, like Django's local-memory cache.

Meant for a project's own tests and for development: nothing to install or start, and
nothing survives the process. Stores of the same ``name`` (by default the alias they are
configured under) share their records within the process, so ``storages["x"]`` sees the
same data after ``override_settings`` rebuilt it; other processes never see them.

Records are kept as their JSON text: ``set`` copies a value when it encodes it, and every
``get`` decodes a new object, so no caller shares a dict with the store or with another
caller. One lock guards a store's records; no operation awaits while holding it, so
threads and event loops may call a store at the same time and every operation, batches
included, is atomic.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..exceptions import InvalidOptionError
from .base import BaseStorageBackend, Clock, KeyPage, check_ttl

__all__ = ["MemoryStorageBackend"]


@dataclass
class _Space:
    """The records of one store name: ``key -> (JSON text, expiry time or None)``."""

    records: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    #: Every key of ``records``, sorted: listing pages are bisected out of it.
    ordered: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, key: str, data: str, expires_at: float | None) -> None:
        if key not in self.records:
            bisect.insort(self.ordered, key)
        self.records[key] = (data, expires_at)

    def remove(self, key: str) -> bool:
        if self.records.pop(key, None) is None:
            return False
        del self.ordered[bisect.bisect_left(self.ordered, key)]
        return True


class MemoryStorageBackend(BaseStorageBackend):
    """Keeps records in a dict of this process.

    :param name: the records to use: stores of one name share them within the process.
        Default: the ``PRISM_STORAGE`` alias; a store built by hand without a name gets
        records of its own.
    :param ttl: default expiry in seconds for every write; ``None`` never expires.
    :param clock: returns the current time as a Unix timestamp (injectable for tests).

    Expired records are never returned; :meth:`sweep` frees their memory (an overwrite
    does too).
    """

    backend_name = "memory"
    supports_ttl = True
    ttl_uses_clock = True
    supports_listing = True
    supports_sweep = True
    native_batch = True
    shared_across_processes = False

    #: Every named store's records, for the life of the process.
    _spaces: ClassVar[dict[str, _Space]] = {}
    _spaces_lock: ClassVar[threading.Lock] = threading.Lock()
    _unnamed: ClassVar[itertools.count[int]] = itertools.count(1)

    def __init__(
        self,
        name: str | None = None,
        *,
        ttl: float | None = None,
        clock: Clock = time.time,
        alias: str | None = None,
    ) -> None:
        super().__init__(alias=alias)
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidOptionError("name must be a non-empty str.")
        if not callable(clock):
            raise InvalidOptionError("clock must be a callable returning a Unix timestamp.")
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.clock = clock
        if name is None:
            name = alias
        if name is None:
            self.name = f"<unnamed {next(self._unnamed)}>"
            self._space = _Space()
        else:
            self.name = name
            with self._spaces_lock:
                self._space = self._spaces.setdefault(name, _Space())

    def describe(self) -> str:
        return f"name={self.name!r}"

    def clear(self) -> None:
        """Forget every record of this store (and of every store sharing its name)."""
        with self._space.lock:
            self._space.records.clear()
            self._space.ordered.clear()

    # ------------------------------------------------------------------ records

    def _live(self, key: str, now: float) -> str | None:
        record = self._space.records.get(key)
        if record is None:
            return None
        data, expires_at = record
        return None if expires_at is not None and expires_at <= now else data

    def _expires_at(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl

    async def _get(self, key: str) -> dict[str, Any] | None:
        now = self.clock()
        with self._space.lock:
            data = self._live(key, now)
        return None if data is None else self._decode(data)

    async def _exists(self, key: str) -> bool:
        now = self.clock()
        with self._space.lock:
            return self._live(key, now) is not None

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        expires_at = self._expires_at(ttl)
        with self._space.lock:
            self._space.put(key, data, expires_at)

    async def _delete(self, key: str) -> None:
        with self._space.lock:
            self._space.remove(key)

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        now = self.clock()
        with self._space.lock:
            found = [(key, self._live(key, now)) for key in keys]
        return {key: self._decode(data) for key, data in found if data is not None}

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        expires_at = self._expires_at(ttl)
        with self._space.lock:
            for key, _value, data in items:
                self._space.put(key, data, expires_at)

    async def _delete_many(self, keys: list[str]) -> None:
        with self._space.lock:
            for key in keys:
                self._space.remove(key)

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        # Keys in code point order, resuming after the cursor (the last key handed out):
        # a key present throughout a listing is returned exactly once.
        now = self.clock()
        page: list[str] = []
        with self._space.lock:
            ordered = self._space.ordered
            start = (
                bisect.bisect_right(ordered, cursor)
                if cursor is not None and cursor >= prefix
                else bisect.bisect_left(ordered, prefix)
            )
            for index in range(start, len(ordered)):
                key = ordered[index]
                if not key.startswith(prefix):
                    break
                if self._live(key, now) is None:
                    continue
                if len(page) == limit:
                    return KeyPage(page, page[-1])
                page.append(key)
        return KeyPage(page, None)

    async def sweep(self) -> int:
        now = self.clock()
        with self._space.lock:
            expired = [
                key
                for key, (_data, expires_at) in self._space.records.items()
                if expires_at is not None and expires_at <= now
            ]
            for key in expired:
                self._space.remove(key)
        return len(expired)

    async def ping(self) -> None:
        """Always answers: the records are in this process."""
