"""``memory``: records in the process's memory, like Django's local-memory cache.

Meant for a project's own tests and for development: nothing to install or start, and
nothing survives the process. Stores of the same ``name`` (by default the alias they are
configured under) share their records within the process, so ``storages["x"]`` sees the
same data after ``override_settings`` rebuilt it; other processes never see them.

Records are kept as their JSON text: ``set`` copies a value when it encodes it, and every
``get`` decodes a new object, so no caller shares a dict with the store or with another
caller. One lock guards a store's records; no operation awaits while holding it, so
threads and event loops may call a store at the same time and every operation, batches,
conditional writes, ``append`` and ``pop`` included, is atomic.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ..codec import encode_trusted
from ..exceptions import InvalidOptionError
from .base import BaseStorageBackend, Clock, KeyPage, check_touch_on_read, check_ttl
from .versions import (
    Condition,
    Record,
    WriteResult,
    append_to,
    check_condition,
    new_version,
    pop_from,
    timestamp,
)

__all__ = ["MemoryStorageBackend"]


@dataclass(slots=True)
class _Entry:
    """One record: its JSON text and metadata (Unix timestamps)."""

    data: str
    expires_at: float | None
    version: str
    created_at: float
    updated_at: float


@dataclass
class _Space:
    """The records of one store name, by key."""

    records: dict[str, _Entry] = field(default_factory=dict)
    #: Every key of ``records``, sorted: listing pages are bisected out of it.
    ordered: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, key: str, data: str, expires_at: float | None, now: float) -> _Entry:
        """Write ``key``; an expired record counts as absent (a new creation time)."""
        old = self.records.get(key)
        if old is None:
            bisect.insort(self.ordered, key)
        created_at = now if old is None or _expired(old, now) else old.created_at
        entry = _Entry(data, expires_at, new_version(), created_at, now)
        self.records[key] = entry
        return entry

    def expire(self, key: str, entry: _Entry, expires_at: float | None) -> _Entry:
        """Give ``key``'s live ``entry`` a new expiry, nothing else. A new entry, as
        entries are never changed in place: readers build records from them unlocked."""
        entry = replace(entry, expires_at=expires_at)
        self.records[key] = entry
        return entry

    def remove(self, key: str) -> bool:
        if self.records.pop(key, None) is None:
            return False
        del self.ordered[bisect.bisect_left(self.ordered, key)]
        return True


def _expired(entry: _Entry, now: float) -> bool:
    return entry.expires_at is not None and entry.expires_at <= now


class MemoryStorageBackend(BaseStorageBackend):
    """Keeps records in a dict of this process.

    :param name: the records to use: stores of one name share them within the process.
        Default: the ``PRISM_STORAGE`` alias; a store built by hand without a name gets
        records of its own.
    :param ttl: default expiry in seconds for every write; ``None`` never expires.
    :param clock: returns the current time as a Unix timestamp (injectable for tests).
    :param touch_on_read: every read resets the expiry of the records it returns to now +
        ``ttl`` (needs ``ttl``).

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
    supports_versions = True
    supports_conditional_writes = True
    supports_atomic_lists = True

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
        touch_on_read: bool = False,
        alias: str | None = None,
    ) -> None:
        super().__init__(alias=alias)
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidOptionError("name must be a non-empty str.")
        if not callable(clock):
            raise InvalidOptionError("clock must be a callable returning a Unix timestamp.")
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.touch_on_read = check_touch_on_read(touch_on_read, self.default_ttl)
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

    def _live_entry(self, key: str, now: float) -> _Entry | None:
        entry = self._space.records.get(key)
        return None if entry is None or _expired(entry, now) else entry

    def _live(self, key: str, now: float) -> str | None:
        entry = self._live_entry(key, now)
        return None if entry is None else entry.data

    def _read_entry(self, key: str, now: float) -> _Entry | None:
        """The live entry a read returns (under the lock), its expiry slid forward when the
        store touches on read."""
        entry = self._live_entry(key, now)
        if entry is not None and self.touch_on_read:
            assert self.default_ttl is not None  # checked with the option
            entry = self._space.expire(key, entry, now + self.default_ttl)
        return entry

    async def _get(self, key: str) -> dict[str, Any] | None:
        now = self.clock()
        with self._space.lock:
            entry = self._read_entry(key, now)
        return None if entry is None else self._decode(entry.data)

    async def _touch(self, key: str, ttl: float | None) -> bool:
        now = self.clock()
        with self._space.lock:
            entry = self._live_entry(key, now)
            if entry is None:
                return False
            self._space.expire(key, entry, None if ttl is None else now + ttl)
        return True

    async def _exists(self, key: str) -> bool:
        now = self.clock()
        with self._space.lock:
            return self._live(key, now) is not None

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        now = self.clock()
        expires_at = None if ttl is None else now + ttl
        with self._space.lock:
            self._space.put(key, data, expires_at, now)

    async def _delete(self, key: str) -> None:
        with self._space.lock:
            self._space.remove(key)

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        now = self.clock()
        with self._space.lock:
            found = [(key, self._read_entry(key, now)) for key in keys]
        return {key: self._decode(entry.data) for key, entry in found if entry is not None}

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        now = self.clock()
        expires_at = None if ttl is None else now + ttl
        with self._space.lock:
            for key, _value, data in items:
                self._space.put(key, data, expires_at, now)

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

    async def _delete_prefix(self, prefix: str) -> int:
        with self._space.lock:
            ordered = self._space.ordered
            start = bisect.bisect_left(ordered, prefix)
            end = start
            while end < len(ordered) and ordered[end].startswith(prefix):
                end += 1
            for key in ordered[start:end]:
                del self._space.records[key]
            del ordered[start:end]
        return end - start

    async def sweep(self) -> int:
        now = self.clock()
        with self._space.lock:
            expired = [key for key, entry in self._space.records.items() if _expired(entry, now)]
            for key in expired:
                self._space.remove(key)
        return len(expired)

    async def ping(self) -> None:
        """Always answers: the records are in this process."""

    # ---------------------------------------------------------- versioned records

    def _record(self, key: str, entry: _Entry) -> Record:
        return Record(
            key,
            self._decode(entry.data),
            entry.version,
            timestamp(entry.created_at),
            timestamp(entry.updated_at),
            None if entry.expires_at is None else timestamp(entry.expires_at),
        )

    async def _get_record(self, key: str) -> Record | None:
        now = self.clock()
        with self._space.lock:
            entry = self._read_entry(key, now)
        return None if entry is None else self._record(key, entry)

    async def _get_many_records(self, keys: list[str]) -> dict[str, Record]:
        now = self.clock()
        with self._space.lock:
            found = [(key, self._read_entry(key, now)) for key in keys]
        return {key: self._record(key, entry) for key, entry in found if entry is not None}

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        now = self.clock()
        expires_at = None if ttl is None else now + ttl
        with self._space.lock:
            current = self._live_entry(key, now)
            check_condition(condition, None if current is None else current.version)
            entry = self._space.put(key, data, expires_at, now)
        return WriteResult(entry.version, current is None)

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        now = self.clock()
        with self._space.lock:
            current = self._live_entry(key, now)
            if if_version is not None:
                check_condition(if_version, None if current is None else current.version)
            self._space.remove(key)
        return current is not None

    async def _append_items(
        self,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
    ) -> int:
        now = self.clock()
        with self._space.lock:
            current = self._live_entry(key, now)
            value = None if current is None else self._decode(current.data)
            value, length = append_to(value, field, items, max_items)
            if ttl is not None:
                expires_at: float | None = now + ttl
            elif current is None:
                expires_at = None if self.default_ttl is None else now + self.default_ttl
            else:
                expires_at = current.expires_at
            self._space.put(key, encode_trusted(value), expires_at, now)
        return length

    async def _pop_item(self, key: str, field: str) -> Any:
        now = self.clock()
        with self._space.lock:
            current = self._live_entry(key, now)
            if current is None:
                return None
            value = self._decode(current.data)
            popped, item = pop_from(value, field)
            if popped:
                self._space.put(key, encode_trusted(value), current.expires_at, now)
        return item
