"""``orm``: records in the app's ``Record`` model (a ``JSONField``), on any Django database.

How a call reaches the database depends on who makes it:

* **Async callers** (async views, agents on an event loop): the operations that concurrent
  tasks issue are merged into batches, one per round trip (see :mod:`.orm_batch`). On
  PostgreSQL with psycopg 3 a batch runs on the backend's own async connections, at most
  two per event loop (:mod:`.orm_pg`); on every other database it runs through Django in
  one ``sync_to_async`` call (reads as SQL on Django's cursor, :mod:`.orm_sql`), so
  concurrency no longer queues one thread hop per call.
* **Sync callers** (``SyncStore``/``async_to_sync`` from sync code): each call runs through
  Django in the caller's own thread, on its own connection, as Django's async ORM
  methods do. A caller inside ``transaction.atomic`` therefore writes inside its
  transaction (rolled back with it) and reads its own uncommitted writes.

The fast path's writes are autocommitted: once ``set`` returns, the record is committed.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar

from asgiref.sync import AsyncToSync, sync_to_async
from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db import utils as db_utils
from django.db.models import Q

from ..codec import check_decimal_exact
from ..exceptions import InvalidOptionError
from .base import BaseStorageBackend, Clock, KeyPage, check_ttl
from .orm_batch import ACTIONS, Batcher, Kind, Op, Outcome, Request, Row, perform_sync
from .orm_sql import JSONText, takes_json_text

__all__ = ["ORMStorageBackend"]

T = TypeVar("T")
# SQLite allows at most 999 bound parameters on old builds; stay under it per statement.
_CHUNK = 500
_CHUNK_BYTES = 4 * 1024 * 1024
#: On the ORM path, reads of large records are batched up to about this much data.
READ_BATCH_BYTES = 4 * 1024 * 1024
#: On the ORM path, writes of large records are batched up to about this much JSON.
WRITE_BATCH_BYTES = 4 * 1024 * 1024
#: Records written are "large" (see ``_ORMExecutor``) from about this size of JSON on.
LARGE_WRITE = 64 * 1024
#: Records read are "large" (see ``_ORMExecutor``) from about this size on.
LARGE_READ = 768 * 1024
_DJANGO_ERRORS = ("DataError", "IntegrityError", "InternalError", "ProgrammingError",
                  "NotSupportedError", "OperationalError", "InterfaceError", "DatabaseError")


def _sync_caller_waits() -> bool:
    """Whether this coroutine serves sync code blocked in ``async_to_sync``.

    asgiref then runs thread-sensitive work in that sync caller's thread (so on its
    database connection and inside its ``transaction.atomic``); this is asgiref's own
    routing rule for ``sync_to_async(thread_sensitive=True)``. The answer holds for a
    task's whole life (it follows from the task's loop and the context it started with),
    so it is kept per task.
    """
    task = asyncio.current_task()
    found = _SYNC_CALLER.get(task) if task is not None else None
    if found is None:
        found = (getattr(AsyncToSync.executors, "current", None) is not None
                 or asyncio.get_running_loop() in AsyncToSync.loop_thread_executors)
        if task is not None:
            _SYNC_CALLER[task] = found
    return found


_SYNC_CALLER: weakref.WeakKeyDictionary[asyncio.Task[Any], bool] = weakref.WeakKeyDictionary()


class ORMStorageBackend(BaseStorageBackend):
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

    def __init__(
        self,
        namespace: str | None = None,
        *,
        using: str | None = None,
        ttl: float | None = None,
        clock: Clock = time.time,
        batch: bool = True,
        fast_path: bool = True,
        alias: str | None = None,
    ) -> None:
        super().__init__(alias=alias)
        if namespace is not None and (not isinstance(namespace, str) or not namespace
                                      or len(namespace) > 255):
            raise InvalidOptionError("namespace must be a non-empty str of at most 255 chars.")
        if using is not None and not isinstance(using, str):
            raise InvalidOptionError("using must be a database alias (str).")
        if type(batch) is not bool or type(fast_path) is not bool:
            raise InvalidOptionError("batch and fast_path must be True or False.")
        self._namespace = namespace
        self.using = using
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.clock = clock
        self.batch = batch
        self.fast_path = fast_path
        self._batchers: dict[tuple[asyncio.AbstractEventLoop, str], Batcher] = {}
        self._batchers_lock = threading.Lock()
        self._decimal_databases: dict[str, bool] = {}
        self._readers: dict[str, Any] = {}
        # A store dropped without close() still releases its connections.
        weakref.finalize(self, _abandon_all, self._batchers)

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

    @staticmethod
    def _model() -> Any:
        from ..models import Record

        return Record

    def _db_alias(self) -> str:
        return self.using or router.db_for_write(self._model())

    @staticmethod
    def _datetime(timestamp: float) -> datetime:
        moment = datetime.fromtimestamp(timestamp, tz=UTC)
        return moment if settings.USE_TZ else moment.astimezone().replace(tzinfo=None)

    def _encode(self, value: dict[str, Any]) -> str:
        data = super()._encode(value)
        if self._stores_decimals(self._db_alias()):
            check_decimal_exact(value, data)  # jsonb would hand huge floats back as ints
        return data

    def _stores_decimals(self, db: str) -> bool:
        """Whether the database keeps JSON numbers as decimals (PostgreSQL's jsonb)."""
        found = self._decimal_databases.get(db)
        if found is None:
            found = self._decimal_databases[db] = connections[db].vendor == "postgresql"
        return found

    def _secrets(self) -> list[str]:
        try:
            return [connections[self._db_alias()].settings_dict.get("PASSWORD") or ""]
        except Exception:  # an unknown alias: nothing of it can leak
            return []

    def _records(self, db: str) -> Any:
        return self._model().objects.using(db).filter(namespace=self.namespace)

    def _alive(self, now: float) -> Q:
        return Q(expires_at__isnull=True) | Q(expires_at__gt=self._datetime(now))

    async def _run(self, action: str, function: Callable[..., T], *args: Any) -> T:
        try:
            return await sync_to_async(function, thread_sensitive=True)(*args)
        except (OperationalError, InterfaceError) as exc:
            error = self._unavailable(exc, action)
            raise error from error.__cause__

    # ------------------------------------------------------------------ sync core

    def _reader(self, db: str) -> Any:
        reader = self._readers.get(db)
        if reader is None:
            from .orm_sql import Reader

            reader = self._readers[db] = Reader(self._model(), connections[db])
        return reader

    def _read_sync(self, db: str, keys: Sequence[str], now: float,
                   sizes: list[int] | None = None) -> dict[str, Any]:
        return self._reader(db).read(
            connections[db], self.namespace, keys, self._datetime(now), sizes)

    def _exists_sync(self, db: str, keys: Sequence[str], now: float) -> set[str]:
        return self._reader(db).exists(
            connections[db], self.namespace, keys, self._datetime(now))

    def _write_sync(self, db: str, rows: Sequence[Row], now_ts: float) -> None:
        model = self._model()
        now = self._datetime(now_ts)
        connection = connections[db]
        if connection.features.supports_update_conflicts_with_target:
            as_text = takes_json_text(connection)
            chunks = _write_chunks(rows)
            with transaction.atomic(using=db) if len(chunks) > 1 else nullcontext():
                for chunk in chunks:
                    model.objects.using(db).bulk_create(
                        [
                            model(namespace=self.namespace, key=key,
                                  value=JSONText(data) if as_text else value,
                                  created_at=now, updated_at=now,
                                  expires_at=None if expiry is None else self._datetime(expiry))
                            for key, value, data, expiry in chunk
                        ],
                        update_conflicts=True,
                        unique_fields=["namespace", "key"],
                        update_fields=["value", "updated_at", "expires_at"],
                    )
            return
        for key, value, _, expiry in rows:  # databases without INSERT ... ON CONFLICT
            expires_at = None if expiry is None else self._datetime(expiry)
            model.objects.using(db).update_or_create(
                namespace=self.namespace, key=key,
                defaults={"value": value, "updated_at": now, "expires_at": expires_at},
                create_defaults={"value": value, "created_at": now, "updated_at": now,
                                 "expires_at": expires_at},
            )

    def _delete_sync(self, db: str, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _CHUNK):
            self._records(db).filter(key__in=keys[start:start + _CHUNK]).delete()

    def _keys_sync(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        rows = self._records(self._db_alias()).filter(self._alive(self.clock()))
        if prefix:
            rows = rows.filter(key__startswith=prefix)
        if cursor is not None:
            rows = rows.filter(key__gt=cursor)
        keys = list(rows.order_by("key").values_list("key", flat=True)[:limit])
        next_cursor = keys[-1] if len(keys) == limit else None
        # SQLite's LIKE ignores ASCII case: keep only true prefix matches. The cursor still
        # advances past the dropped rows, so every key is visited once.
        return KeyPage([k for k in keys if k.startswith(prefix)], next_cursor)

    def _sweep_sync(self) -> int:
        expired = self._records(self._db_alias()).filter(
            expires_at__lte=self._datetime(self.clock()))
        return int(expired.delete()[0])

    # ------------------------------------------------------------------ batching

    def _batcher(self) -> Batcher | None:
        """This event loop's batcher, or ``None`` when the call must take the ORM path."""
        if not self.batch or _sync_caller_waits():
            return None
        db = self._db_alias()
        slot = (asyncio.get_running_loop(), db)
        batcher = self._batchers.get(slot)
        if batcher is None:
            batcher = self._new_batcher(slot)
        return batcher

    def _new_batcher(self, slot: tuple[asyncio.AbstractEventLoop, str]) -> Batcher:
        from .orm_pg import PostgresExecutor, is_available_for

        with self._batchers_lock:
            for other in [s for s in self._batchers if s[0].is_closed()]:
                # Its loop ended without close(): release the connection without it.
                self._batchers.pop(other).executor.abandon()
            db = slot[1]
            executor: Any
            if self.fast_path and is_available_for(db):
                executor = PostgresExecutor(db, self.namespace, self._model(), self.timeout)
            else:
                executor = _ORMExecutor(self, db)

            def map_error(exc: BaseException, kind: Kind) -> BaseException:
                return self._map_error(executor, exc, kind)

            batcher = Batcher(executor, self.clock, map_error)
            self._batchers[slot] = batcher
            return batcher

    def _map_error(self, executor: Any, exc: BaseException, kind: Kind) -> BaseException:
        if isinstance(exc, Exception) and executor.unavailable(exc):
            return self._unavailable(exc, ACTIONS[kind])
        return _as_django_error(exc)

    async def _submit(self, batcher: Batcher, kind: Kind, **fields: Any) -> Any:
        return await batcher.submit(Op(kind, batcher.new_future(), **fields))

    # ------------------------------------------------------------------ async API

    async def _get(self, key: str) -> dict[str, Any] | None:
        batcher = self._batcher()
        if batcher is not None:
            return await self._submit(batcher, "read", keys=(key,), single=True)
        found = await self._run("read", self._read_sync, self._db_alias(), [key], self.clock())
        return found.get(key)

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._set_many([(key, value, data)], ttl)

    async def _delete(self, key: str) -> None:
        await self._delete_many([key])

    async def _exists(self, key: str) -> bool:
        batcher = self._batcher()
        if batcher is not None:
            return await self._submit(batcher, "exists", keys=(key,), single=True)
        found = await self._run("read", self._exists_sync, self._db_alias(), [key], self.clock())
        return key in found

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        batcher = self._batcher()
        if batcher is not None:
            return await self._submit(batcher, "read", keys=keys)
        return await self._run("read", self._read_sync, self._db_alias(), keys, self.clock())

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
        await self._run("write", self._write_sync, self._db_alias(), rows, now)

    async def _delete_many(self, keys: list[str]) -> None:
        batcher = self._batcher()
        if batcher is not None:
            await self._submit(batcher, "delete", keys=keys)
            return
        await self._run("delete", self._delete_sync, self._db_alias(), keys)

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        return await self._run("list keys", self._keys_sync, prefix, limit, cursor)

    async def sweep(self) -> int:
        return await self._run("sweep", self._sweep_sync)

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


def _write_chunks(rows: Sequence[Row]) -> list[Sequence[Row]]:
    """Rows in statements of at most ``_CHUNK`` rows and about ``_CHUNK_BYTES`` of JSON:
    large values written a few at a time are measurably faster than in one statement."""
    chunks: list[Sequence[Row]] = []
    start = size = 0
    for index, row in enumerate(rows):
        if index > start and (index - start >= _CHUNK or size + len(row[2]) > _CHUNK_BYTES):
            chunks.append(rows[start:index])
            start, size = index, 0
        size += len(row[2])
    if start < len(rows):
        chunks.append(rows[start:])
    return chunks


def _moving_average(average: float, sizes: list[int]) -> float:
    """``average`` (0: none yet) moved towards each of ``sizes`` by an eighth."""
    average = average or float(sizes[0])
    for size in sizes:
        average += (size - average) / 8
    return average


def _abandon_all(batchers: dict[Any, Batcher]) -> None:
    for batcher in list(batchers.values()):
        batcher.executor.abandon()
    batchers.clear()


class _ORMExecutor:
    """Runs each batch through the Django ORM in one ``sync_to_async`` call.

    Batches run one after another in the thread that holds the connection. How they are
    cut depends on the size of the records, which the executor follows as it goes:

    * Records written of ``LARGE_WRITE`` or more: the work is mostly each caller's JSON
      encoding, which holds the GIL. Write batches are capped at about
      ``WRITE_BATCH_BYTES`` and a second one may wait in the thread's queue behind the one
      running. The thread goes from one batch to the next at once, and the callers of a
      finished batch encode their next records while the database stores the following
      batch. One large batch would keep the two apart: all callers encode, then the thread
      writes.
    * Records read of ``READ_BATCH_BYTES / 500`` or more: read batches hold about
      ``READ_BATCH_BYTES`` (decoding a few megabytes at a time is measurably faster).
    * Records read of ``LARGE_READ`` or more: each read is its own call in the thread's
      queue (``direct_reads``), as without batching. Reading and decoding such a record
      costs far more than the round trip a batch saves, and batches of them made glibc's
      allocator return and fault in memory on every batch (0.7x the unbatched reads).
    """

    #: sync_to_async finishes its call even when the caller is cancelled.
    direct = True
    #: Only writes are queued behind a batch in flight (see the class doc).
    concurrent_kinds: frozenset[str] | None = frozenset({"write"})

    def __init__(self, backend: ORMStorageBackend, db: str) -> None:
        self._backend = backend
        self._db = db
        self._perform = sync_to_async(perform_sync, thread_sensitive=True)
        self._record_size = 0.0  # moving average of the records read, as stored
        #: At most this many reads per batch (``None``: no limit). Set once records read
        #: are large: a batch then holds a few megabytes rather than every caller's record
        #: at once, which decodes measurably faster (the memory stays warm).
        self.read_limit: int | None = None
        #: Set once the records read are large (``LARGE_READ``): see the class doc.
        self.direct_reads = False
        self._written_size = 0.0  # moving average of the records written, as JSON
        #: Set, with ``capacity`` 2, once the records written are large (see the class doc).
        self.write_limit: int | None = None
        self.capacity = 1

    def _note_written(self, rows: Sequence[Row]) -> None:
        average = self._written_size = _moving_average(
            self._written_size, [len(row[2]) for row in rows])
        large = average >= LARGE_WRITE
        self.write_limit = WRITE_BATCH_BYTES if large else None
        self.capacity = 2 if large else 1

    def _note_sizes(self, sizes: list[int]) -> None:
        average = self._record_size = _moving_average(self._record_size, sizes)
        self.read_limit = (max(1, int(READ_BATCH_BYTES // average))
                           if average * _CHUNK > READ_BATCH_BYTES else None)
        self.direct_reads = average >= LARGE_READ

    async def run(self, requests: list[Request]) -> list[Outcome]:
        return await self._perform(requests, self._execute, self)

    def _execute(self, request: Request) -> Any:
        backend, db = self._backend, self._db
        if request.kind == "read":
            sizes: list[int] = []
            found = backend._read_sync(db, request.keys, request.now, sizes)
            if sizes:
                self._note_sizes(sizes)
            return found
        if request.kind == "exists":
            return backend._exists_sync(db, request.keys, request.now)
        if request.kind == "delete":
            return backend._delete_sync(db, request.keys)
        rows = request.rows()
        if rows:
            self._note_written(rows)
        return backend._write_sync(db, rows, request.now)

    def unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, OperationalError | InterfaceError)

    def take(self, payload: Any, first: bool) -> dict[str, Any]:
        # The ORM decoded each record once; a second reader of the key gets its own copy.
        return payload if first else copy.deepcopy(payload)

    async def close(self) -> None:
        """Django owns the connection (closed with the thread's other connections)."""

    def abandon(self) -> None:
        pass


def _as_django_error(exc: BaseException) -> BaseException:
    """A psycopg error as the ``django.db`` error the ORM path would raise (cause chained)."""
    module = type(exc).__module__
    if not module.startswith("psycopg"):
        return exc
    import psycopg

    for name in _DJANGO_ERRORS:
        if isinstance(exc, getattr(psycopg, name)):
            error: BaseException = getattr(db_utils, name)(*exc.args)
            error.__cause__ = exc
            return error
    return exc
