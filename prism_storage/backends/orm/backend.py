"""``orm``: records in the app's ``Record`` model (a ``JSONField``), on any Django database.

How a call reaches the database depends on who makes it (the choice is :mod:`.paths`):

* **Async callers** (async views, agents on an event loop): the operations that concurrent
  tasks issue are merged into batches, one per round trip (see :mod:`.batching`, cut by
  :mod:`.policy`). On PostgreSQL with psycopg 3 a batch runs on the backend's own async
  connections, at most two per event loop (:mod:`.postgres`); on every other database it
  runs through Django in one hop to the connection's thread (:mod:`.executor`,
  :mod:`.table`; reads and deletes as SQL on Django's cursor, :mod:`.sql`), so concurrency
  no longer queues one thread hop per call.
* **Sync callers** (``SyncStore``/``async_to_sync`` from sync code): each call runs through
  Django in the caller's own thread, on its own connection, as Django's async ORM
  methods do. A caller inside ``transaction.atomic`` therefore writes inside its
  transaction (rolled back with it) and reads its own uncommitted writes.

The fast path's writes are autocommitted: once ``set`` returns, the record is committed.
No path sends the ``Record`` model's signals (see docs/orm.md).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from dataclasses import replace
from typing import Any, ClassVar, cast

from django.conf import settings
from django.db import DatabaseError, connections

from ...codec import validate_key
from ...exceptions import InvalidOptionError, InvalidValueError, UnsupportedOperationError
from ..base import BaseStorageBackend, Clock, KeyPage, check_touch_on_read, check_ttl
from ..versions import Condition, Record, WriteResult, timestamp
from .batching import Batcher
from .limits import DatabaseLimits, limits_for
from .locked import LockedRecords
from .paths import DatabasePaths, abandon_all
from .policy import LargeRecords
from .requests import Call, Op
from .table import RecordTable

__all__ = ["ORMStorageBackend"]


class ORMStorageBackend(DatabasePaths, BaseStorageBackend):
    """Stores records in the ``prism_storage.Record`` model.

    :param namespace: the logical store; stores with different namespaces never see each
        other's records. Defaults to the ``PRISM_STORAGE`` alias (``"default"`` when the
        backend is built by hand).
    :param using: the database alias (default: the router's choice for ``Record``).
    :param ttl: default expiry in seconds; ``None`` never expires.
    :param clock: returns the current time as a Unix timestamp (injectable for tests).
    :param batch: merge the operations of concurrent async callers into batches
        (``False``: every call is its own ``sync_to_async`` ORM query).
    :param fast_path: on PostgreSQL with psycopg 3, run batches on the backend's own async
        connection per event loop (``False``: run them through the Django ORM).
    """

    backend_name = "orm"
    supports_ttl = True
    ttl_uses_clock = True
    supports_listing = True
    supports_sweep = True
    native_batch = True
    supports_versions = True
    supports_conditional_writes = True
    supports_atomic_lists = True
    #: The record sizes at which the ORM path batches differently (see :mod:`.policy`).
    large_records: ClassVar[LargeRecords] = LargeRecords()

    def __init__(
        self,
        namespace: str | None = None,
        *,
        using: str | None = None,
        ttl: float | None = None,
        clock: Clock = time.time,
        batch: bool = True,
        fast_path: bool = True,
        touch_on_read: bool = False,
        alias: str | None = None,
    ) -> None:
        super().__init__(alias=alias)
        if namespace is not None and (
            not isinstance(namespace, str) or not namespace or len(namespace) > 255
        ):
            raise InvalidOptionError("namespace must be a non-empty str of at most 255 chars.")
        if using is not None and not isinstance(using, str):
            raise InvalidOptionError("using must be a database alias (str).")
        if type(batch) is not bool or type(fast_path) is not bool:
            raise InvalidOptionError("batch and fast_path must be True or False.")
        self._namespace = namespace
        self.using = using
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.touch_on_read = check_touch_on_read(touch_on_read, self.default_ttl)
        self.clock = clock
        self.batch = batch
        self.fast_path = fast_path
        self._batchers: dict[tuple[asyncio.AbstractEventLoop, str], Batcher] = {}
        self._batchers_lock = threading.Lock()
        self._vendors: dict[str, str] = {}
        self._database_limits: dict[str, DatabaseLimits] = {}
        self._tables: dict[str, RecordTable] = {}
        self._locked: dict[str, LockedRecords] = {}
        # A store dropped without close() still releases its connections.
        weakref.finalize(self, abandon_all, self._batchers)

    @property
    def namespace(self) -> str:
        return self._namespace or self.alias or "default"

    def describe(self) -> str:
        return f"namespace={self.namespace!r} database={self._db_alias()!r}"

    def check(self) -> list[Any]:
        from django.core.checks import Error

        if self.using is not None and self.using not in settings.DATABASES:
            return [
                Error(
                    f"using={self.using!r} is not a database in DATABASES.",
                    id="prism_storage.E009",
                )
            ]
        return []

    # ------------------------------------------------------------------ helpers

    def _keeps_numbers_as_decimals(self) -> bool:
        return self._stores_decimals(self._db_alias())

    def _vendor(self, db: str) -> str:
        """The database's vendor, read once per alias: in a task with a context of its own
        (the batches' tasks), ``connections[db]`` builds a new connection object each time."""
        found = self._vendors.get(db)
        if found is None:
            found = self._vendors[db] = connections[db].vendor
        return found

    def _stores_decimals(self, db: str) -> bool:
        """Whether the database keeps JSON numbers as decimals (PostgreSQL's jsonb)."""
        return self._vendor(db) == "postgresql"

    def _limits(self) -> DatabaseLimits:
        """What the database's value column takes (checked before any I/O)."""
        db = self._db_alias()
        found = self._database_limits.get(db)
        if found is None:
            found = self._database_limits[db] = limits_for(self._vendor(db))
        return found

    def _max_depth(self) -> int:
        return self._limits().max_depth

    def _encode(self, value: dict[str, Any]) -> str:
        data = super()._encode(value)
        self._limits().check_size(data)
        return data

    def _secrets(self) -> list[str]:
        try:
            return [connections[self._db_alias()].settings_dict.get("PASSWORD") or ""]
        except Exception:  # an unknown alias: nothing of it can leak
            return []

    # ------------------------------------------------------------------ async API

    async def _get(self, key: str) -> dict[str, Any] | None:
        batcher = self._batcher()
        if batcher is not None:
            value = cast(
                "dict[str, Any] | None",
                await self._submit(batcher, "read", keys=(key,), single=True),
            )
        else:
            found = await self._run("read", self._table.read, self._db_alias(), [key], self.clock())
            value = found.get(key)
        if value is not None and self.touch_on_read:
            await self._slide([key])
        return value

    async def _touch(self, key: str, ttl: float | None) -> bool:
        now = self.clock()
        expires_at = None if ttl is None else now + ttl
        changed = await self._run(
            "write", self._table.slide, self._db_alias(), [key], now, expires_at
        )
        return changed > 0

    async def _slide(self, keys: list[str]) -> float:
        """``touch_on_read``: one UPDATE giving the records just read the expiry now + the
        default ttl (which it returns). A record deleted since the read stays deleted."""
        assert self.default_ttl is not None  # checked with the option
        now = self.clock()
        expires_at = now + self.default_ttl
        await self._run("write", self._table.slide, self._db_alias(), keys, now, expires_at)
        return expires_at

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._set_many([(key, value, data)], ttl)

    async def _delete(self, key: str) -> None:
        await self._delete_many([key])

    async def _exists(self, key: str) -> bool:
        batcher = self._batcher()
        if batcher is not None:
            return cast(bool, await self._submit(batcher, "exists", keys=(key,), single=True))
        found = await self._run("read", self._table.exists, self._db_alias(), [key], self.clock())
        return key in found

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        batcher = self._batcher()
        if batcher is not None:
            found = cast(
                "dict[str, dict[str, Any]]", await self._submit(batcher, "read", keys=keys)
            )
        else:
            found = await self._run("read", self._table.read, self._db_alias(), keys, self.clock())
        if found and self.touch_on_read:
            await self._slide(list(found))
        return found

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        batcher = self._batcher()
        if batcher is not None:
            await self._submit(batcher, "write", rows=items, ttl=ttl)
            return
        now = self.clock()
        expiry = None if ttl is None else now + ttl
        rows = [(key, value, data, expiry) for key, value, data in items]
        await self._run("write", self._table.write, self._db_alias(), rows, now)

    async def _delete_many(self, keys: list[str]) -> None:
        batcher = self._batcher()
        if batcher is not None:
            await self._submit(batcher, "delete", keys=keys)
            return
        await self._run("delete", self._table.delete, self._db_alias(), keys)

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        batcher = self._batcher()
        if batcher is not None and batcher.executor.lists_keys:
            # On the fast path's async connection: no hop to the ORM's one thread, which
            # concurrent listings would otherwise queue on.
            call = Call("keys", (prefix, limit, cursor), "list keys")
            page = await batcher.submit(Op("call", batcher.new_future(), keys=[], call=call))
            return cast(KeyPage, page)
        return await self._run(
            "list keys", self._table.keys, self._db_alias(), prefix, limit, cursor, self.clock()
        )

    async def _delete_prefix(self, prefix: str) -> int:
        removed = await self._run("delete", self._table.delete_prefix, self._db_alias(), prefix)
        if removed is None:  # no exact one-statement form on this database
            return await super()._delete_prefix(prefix)
        return removed

    async def sweep(self) -> int:
        return await self._run("sweep", self._table.sweep, self._db_alias(), self.clock())

    async def ping(self) -> None:
        if self._batcher() is not None:
            await self._get("prism-storage:ping")
            return

        def probe() -> None:
            connection = connections[self._db_alias()]
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")

        try:
            await self._run("connect", probe)
        except DatabaseError as exc:
            error = self._unavailable(exc, "connect")
            raise error from error.__cause__

    # ---------------------------------------------------------- versioned records

    async def _get_record(self, key: str) -> Record | None:
        found = await self._get_many_records([key])
        return found.get(key)

    async def _get_many_records(self, keys: list[str]) -> dict[str, Record]:
        found = cast("dict[str, Record]", await self._call("read", keys, "records", keys))
        if found and self.touch_on_read:
            expires_at = timestamp(await self._slide(list(found)))
            found = {key: replace(r, expires_at=expires_at) for key, r in found.items()}
        return found

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        expiry = None if ttl is None else self.clock() + ttl
        return cast(
            WriteResult,
            await self._call("write", [key], "put", key, value, data, expiry, condition),
        )

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        return cast(bool, await self._call("delete", [key], "remove", key, if_version))

    async def _append_items(
        self,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
    ) -> int:
        args = (key, field, items, items_data, max_items, ttl, self.default_ttl)
        return cast(int, await self._call("append", [key], "append", *args))

    async def _pop_item(self, key: str, field: str) -> Any:
        return await self._call("pop", [key], "pop", key, field)

    # ---------------------------------------------------------- containment

    @property
    def supports_containment(self) -> bool:
        """:meth:`find_containing` runs in the database: PostgreSQL's jsonb containment."""
        return self._vendor(self._db_alias()) == "postgresql"

    async def find_containing(
        self, prefix: str, contained: dict[str, Any], *, limit: int | None = None
    ) -> list[Record]:
        """The records whose key starts with ``prefix`` and whose value contains
        ``contained`` (PostgreSQL's ``value @> contained``: every field it names is in the
        value, objects recursively, and an array holds every item of its array), the most
        recently updated first. With ``limit``, the ``limit`` first ones plus those updated
        at the same moment as the last of them, so that a caller ordering ties its own way
        gets the same page whatever the database picked.

        Only where :attr:`supports_containment` (else ``UnsupportedOperationError``):
        SQLite and MariaDB have no containment that matches PostgreSQL's.
        """
        if type(prefix) is not str:
            raise InvalidValueError("prefix must be a str.")
        if prefix:
            validate_key(prefix)
        if not isinstance(contained, dict):
            raise InvalidValueError("contained must be a dict.")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InvalidValueError("limit must be a positive int or None.")
        data = self._encode(contained)
        if not self.supports_containment:
            raise UnsupportedOperationError("find_containing needs PostgreSQL (jsonb containment).")
        found = await self._call("read", [], "containing", prefix, contained, data, limit)
        return cast("list[Record]", found)

    async def close(self) -> None:
        """Close this event loop's batch connections, once its queued operations are done,
        and those of event loops that have ended. Other running loops keep theirs (their
        own ``close()`` releases them; a loop that ends without one leaves them to the next
        ``close()`` or use of the store, from any loop)."""
        current = asyncio.get_running_loop()
        with self._batchers_lock:
            mine = [s for s in self._batchers if s[0] is current or s[0].is_closed()]
            batchers = [(s[0], self._batchers.pop(s)) for s in mine]
        for loop, batcher in batchers:
            if loop is current:
                await batcher.close()
            else:
                batcher.executor.abandon()
