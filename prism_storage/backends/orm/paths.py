"""How the ``orm`` store's calls reach its database.

:class:`DatabasePaths` is the half of :class:`~.backend.ORMStorageBackend` that sends a
call on its way: an async caller's operation goes to the batcher of its event loop and
database alias (made on first use, its executor the PostgreSQL fast path or the ORM path);
a sync caller's, or any with ``batch=False``, is one call on the connection's thread. It
also resolves the alias and keeps the namespace's table and versioned operations.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.db import InterfaceError, OperationalError, router

from ...exceptions import BackendUnavailableError
from ..base import Clock
from .batching import Batcher
from .executor import ORMExecutor, as_django_error
from .locked import LockedRecords
from .policy import LargeRecords
from .requests import Call, Kind, Op
from .table import RecordTable
from .thread import on_connection_thread, serves_sync_caller

__all__ = ["DatabasePaths", "abandon_all"]

T = TypeVar("T")


class DatabasePaths:
    """Picks each call's path to the database (see the module doc)."""

    if TYPE_CHECKING:  # provided by ORMStorageBackend
        using: str | None
        clock: Clock
        batch: bool
        fast_path: bool
        timeout: float
        large_records: ClassVar[LargeRecords]
        _batchers: dict[tuple[asyncio.AbstractEventLoop, str], Batcher]
        _batchers_lock: threading.Lock
        _tables: dict[str, RecordTable]
        _locked: dict[str, LockedRecords]

        @property
        def namespace(self) -> str: ...

        def _encode(self, value: dict[str, Any]) -> str: ...

        def _unavailable(self, exc: BaseException, action: str) -> BackendUnavailableError: ...

    # ------------------------------------------------------------------ the database

    @staticmethod
    def _model() -> Any:
        from ...models import Record

        return Record

    @property
    def _table(self) -> RecordTable:
        table = self._tables.get(self.namespace)
        if table is None:
            table = self._tables[self.namespace] = RecordTable(self._model(), self.namespace)
        return table

    @property
    def _records(self) -> LockedRecords:
        found = self._locked.get(self.namespace)
        if found is None:
            found = self._locked[self.namespace] = LockedRecords(self._table, self._encode)
        return found

    def _db_alias(self) -> str:
        return self.using or router.db_for_write(self._model())

    async def _run(self, action: str, function: Callable[..., T], *args: Any) -> T:
        """One call on the connection's thread (the ORM path without batching)."""
        try:
            return await on_connection_thread(function)(*args)
        except (OperationalError, InterfaceError) as exc:
            error = self._unavailable(exc, action)
            raise error from error.__cause__

    # ------------------------------------------------------------------ batching

    def _batcher(self) -> Batcher | None:
        """This event loop's batcher, or ``None`` when the call must take the ORM path."""
        if not self.batch or serves_sync_caller():
            return None
        db = self._db_alias()
        slot = (asyncio.get_running_loop(), db)
        batcher = self._batchers.get(slot)
        if batcher is None:
            batcher = self._new_batcher(slot)
        return batcher

    def _new_batcher(self, slot: tuple[asyncio.AbstractEventLoop, str]) -> Batcher:
        from .postgres import PostgresExecutor, is_available_for

        with self._batchers_lock:
            for other in [s for s in self._batchers if s[0].is_closed()]:
                # Its loop ended without close(): release the connection without it.
                self._batchers.pop(other).executor.abandon()
            db = slot[1]
            executor: Any
            if self.fast_path and is_available_for(db):
                executor = PostgresExecutor(db, self.namespace, self._model(), self.timeout)
            else:
                executor = ORMExecutor(self._table, db, self.large_records, self._records)

            def map_error(exc: BaseException, action: str) -> BaseException:
                return self._map_error(executor, exc, action)

            batcher = Batcher(executor, self.clock, map_error)
            self._batchers[slot] = batcher
            return batcher

    def _map_error(self, executor: Any, exc: BaseException, action: str) -> BaseException:
        if isinstance(exc, Exception) and executor.unavailable(exc):
            return self._unavailable(exc, action)
        return as_django_error(exc)

    async def _submit(self, batcher: Batcher, kind: Kind, **fields: Any) -> Any:
        return await batcher.submit(Op(kind, batcher.new_future(), **fields))

    async def _call(self, action: str, key_list: list[str], name: str, *args: Any) -> Any:
        """A versioned operation: batched with the other callers' operations (alone in its
        request, as one atomic operation of the database), else on the connection's
        thread."""
        call = Call(name, args, action)
        batcher = self._batcher()
        if batcher is not None:
            return await batcher.submit(Op("call", batcher.new_future(), keys=key_list, call=call))
        return await self._run(action, self._records.run, self._db_alias(), self.clock(), call)


def abandon_all(batchers: dict[Any, Batcher]) -> None:
    """Release the connections of a store's batchers without a running loop (the store
    was dropped without ``close()``)."""
    for batcher in list(batchers.values()):
        batcher.executor.abandon()
    batchers.clear()
