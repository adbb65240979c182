"""``file``: one JSON file per key in a directory.

:mod:`.names` maps keys to file names (no key can name a path outside ``data_dir``),
:mod:`.records` reads and writes each record file atomically (value and metadata),
:mod:`.locks` makes each write of a key one step across threads and processes (so
conditional writes, ``append`` and ``pop`` are atomic), :mod:`.index` keeps the
sorted key index that listing reads (and orders writes and deletes of one key),
:mod:`.listing` scans the directory (to sweep it and to build the index), :mod:`.appends`
writes concurrent appends to one key together, and :mod:`.threads` runs the blocking
file calls off the event loop, many per thread hop.

The backend class holds the store's options and its async methods (the contract's
hooks); the synchronous work they hand to the threads is mixed in: :mod:`.key_files`
(one key's file read, written, deleted or slid under its lock) and :mod:`.atomic_lists`
(``append`` and ``pop``), with :mod:`.erasure` unlinking a prefix's files in batches.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from django.core.checks import CheckMessage, Error, Warning

from ...exceptions import InvalidOptionError
from ..base import BaseStorageBackend, Clock, KeyPage, check_touch_on_read, check_ttl
from ..clients import LoopBoundClients
from ..versions import Condition, Record, WriteResult, timestamp
from .appends import AppendQueue
from .atomic_lists import AtomicLists
from .erasure import erase_prefix
from .index import FileIndex
from .listing import DirectoryScan
from .locks import KeyLocks
from .names import file_name
from .records import Stored, TempNames, remove_record
from .threads import BatchedThreadRunner

__all__ = ["FileStorageBackend"]

T = TypeVar("T")


class FileStorageBackend(AtomicLists, BaseStorageBackend):
    """Stores each record as a JSON file in ``data_dir``.

    :param data_dir: the directory (created owner-only if missing and
        ``create_if_missing``).
    :param ttl: default expiry in seconds for every write; ``None`` never expires.
    :param durable: fsync each file and the directory, so a write that returned survives
        a power loss (slower).
    :param clock: returns the current time as a Unix timestamp (injectable for tests).
    :param touch_on_read: every read resets the expiry of the records it returns to now +
        ``ttl`` (needs ``ttl``). Each read then rewrites the record's file under its lock
        (see docs/expiry.md for the cost).
    """

    backend_name = "file"
    supports_ttl = True
    ttl_uses_clock = True
    supports_listing = True
    supports_sweep = True
    native_batch = True
    supports_versions = True
    supports_conditional_writes = True
    supports_atomic_lists = True

    def __init__(
        self,
        data_dir: str | os.PathLike[str] = "./data",
        create_if_missing: bool = True,
        *,
        ttl: float | None = None,
        durable: bool = False,
        clock: Clock = time.time,
        touch_on_read: bool = False,
        alias: str | None = None,
    ) -> None:
        super().__init__(alias=alias)
        if not isinstance(data_dir, str | os.PathLike) or not os.fspath(data_dir):
            raise InvalidOptionError("data_dir must be a non-empty path.")
        if not isinstance(create_if_missing, bool) or not isinstance(durable, bool):
            raise InvalidOptionError("create_if_missing and durable must be True or False.")
        self.data_dir = Path(data_dir)
        self.create_if_missing = create_if_missing
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.touch_on_read = check_touch_on_read(touch_on_read, self.default_ttl)
        self.durable = durable
        self.clock = clock
        self._ready = False
        self._directory_path = os.fspath(self.data_dir)
        self._scan = DirectoryScan()
        self._temps = TempNames()
        self._locks = KeyLocks(self._directory_path)
        self._index = FileIndex(
            self._directory_path,
            durable=durable,
            file_name=file_name,
            entry_key=self._scan.key_of,
        )
        self._runners: LoopBoundClients[BatchedThreadRunner] = LoopBoundClients(
            lambda: BatchedThreadRunner(asyncio.get_running_loop()), _nothing_to_close
        )
        self._appends: LoopBoundClients[AppendQueue] = LoopBoundClients(
            self._new_append_queue, _nothing_to_close
        )

    def describe(self) -> str:
        return f"data_dir={str(self.data_dir)!r}"

    def check(self) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        if not self.data_dir.is_absolute():
            messages.append(
                Warning(
                    f"data_dir {str(self.data_dir)!r} is relative: it depends on the "
                    "directory the process starts in.",
                    hint="Use an absolute path, e.g. BASE_DIR / 'agent-data'.",
                    id="prism_storage.W001",
                )
            )
        target = self.data_dir
        while not target.exists() and target.parent != target:
            target = target.parent
        if self.data_dir.exists() and not self.data_dir.is_dir():
            messages.append(
                Error(
                    f"data_dir {str(self.data_dir)!r} is not a directory.", id="prism_storage.E008"
                )
            )
        elif not self.data_dir.exists() and not self.create_if_missing:
            messages.append(
                Error(
                    f"data_dir {str(self.data_dir)!r} does not exist and create_if_missing "
                    "is False.",
                    hint="Create the directory or set create_if_missing=True.",
                    id="prism_storage.E008",
                )
            )
        elif not os.access(target, os.W_OK | os.X_OK):
            messages.append(
                Error(
                    f"data_dir {str(self.data_dir)!r} is not writable by this process.",
                    id="prism_storage.E008",
                )
            )
        return messages

    # ---------------------------------------------- index-wide operations (sync)

    def _list(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        self._directory()
        return KeyPage(*self._index.page(prefix, limit, cursor, self.clock()))

    def _erase(self, prefix: str) -> int:
        return erase_prefix(self._directory(), prefix, self._locks, self._index)

    def _sweep(self) -> int:
        return self._scan.sweep(self._directory(), self.clock(), self._index)

    # ------------------------------------------------------------------ async API

    async def _run(self, action: str, function: Callable[..., T], *args: Any) -> T:
        try:
            result: T = await self._runners.get().run(function, *args)
            return result
        except OSError as exc:
            error = self._unavailable(exc, action)
            raise error from error.__cause__

    async def _get(self, key: str) -> dict[str, Any] | None:
        if self.touch_on_read:
            stored = await self._run("read", self._slide, key, self.default_ttl)
            return None if stored is None else stored.value
        return await self._run("read", self._read, key, self.clock())

    async def _touch(self, key: str, ttl: float | None) -> bool:
        return await self._run("write", self._slide, key, ttl) is not None

    async def _exists(self, key: str) -> bool:
        # Not through _get: an existence check does not slide the expiry.
        return await self._run("read", self._read, key, self.clock()) is not None

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._run("write", self._write, key, data, ttl)

    async def _delete(self, key: str) -> None:
        await self._run("delete", self._remove, key)

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        def read_all() -> dict[str, dict[str, Any]]:
            now = self.clock()
            if self.touch_on_read:
                found = ((k, self._slide(k, self.default_ttl)) for k in keys)
                return {k: s.value for k, s in found if s is not None}
            values = ((k, self._read(k, now)) for k in keys)
            return {k: v for k, v in values if v is not None}

        return await self._run("read", read_all)

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        def write_all() -> None:
            self._directory()
            keys = [key for key, _, _ in items]
            with self._locks.holding(keys):
                now = self.clock()
                expires_at = self._expiry(ttl, now)
                heads = [self._head(key, now, strict=False) for key in keys]
                with self._index.adding(keys):
                    for (key, _value, data), head in zip(items, heads, strict=True):
                        self._write_file(key, data, expires_at, head, now)

        await self._run("write", write_all)

    async def _delete_many(self, keys: list[str]) -> None:
        def remove_all() -> None:
            directory = self._directory()
            with self._locks.holding(keys), self._index.removing(keys):
                for key in keys:
                    remove_record(directory, key)

        await self._run("delete", remove_all)

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        return await self._run("list keys", self._list, prefix, limit, cursor)

    async def _delete_prefix(self, prefix: str) -> int:
        return await self._run("delete", self._erase, prefix)

    async def sweep(self) -> int:
        return await self._run("sweep", self._sweep)

    # ---------------------------------------------------------- versioned records

    @staticmethod
    def _record(key: str, stored: Stored) -> Record:
        return Record(
            key,
            stored.value,
            stored.version,
            timestamp(stored.created_at),
            timestamp(stored.updated_at),
            None if stored.expires_at is None else timestamp(stored.expires_at),
        )

    async def _get_record(self, key: str) -> Record | None:
        stored = await self._run("read", self._read_stored, key, self.clock())
        return None if stored is None else self._record(key, stored)

    async def _get_many_records(self, keys: list[str]) -> dict[str, Record]:
        def read_all() -> dict[str, Record]:
            now = self.clock()
            found = ((k, self._read_stored(k, now)) for k in keys)
            return {k: self._record(k, s) for k, s in found if s is not None}

        return await self._run("read", read_all)

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        return await self._run("write", self._write, key, data, ttl, condition)

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        return await self._run("delete", self._remove, key, if_version)

    async def _append_items(
        self,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
    ) -> int:
        # Concurrent appends to one key are written together (.appends).
        return await self._appends.get().append(key, field, items, max_items, ttl)

    async def _pop_item(self, key: str, field: str) -> Any:
        return await self._run("write", self._pop, key, field)

    async def close(self) -> None:
        await super().close()
        self._index.close()  # its idle SQLite connections and lock descriptors

    async def ping(self) -> None:
        def probe() -> None:
            directory = self._directory()
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(f"{str(directory)!r} is not writable")

        await self._run("open its directory", probe)


async def _nothing_to_close(client: object) -> None:
    """Runners and append queues hold no resources: a runner's workers end when its
    queue is empty, and an append queue is empty once its callers have their lengths."""
