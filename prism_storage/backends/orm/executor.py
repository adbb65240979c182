"""The ORM path's executor: each batch runs through Django in one hop to the connection's
thread, and its :class:`~.policy.BatchPolicy` follows the size of the records."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from django.db import InterfaceError, OperationalError, connections, transaction
from django.db import utils as db_utils

from .locked import LockedRecords
from .policy import ORM_PATH, BatchPolicy, LargeRecords, moving_average
from .requests import Outcome, Plan, Request, Row, drive, perform
from .table import RecordTable
from .thread import on_connection_thread

__all__ = ["ORMExecutor", "as_django_error"]

_DJANGO_ERRORS = (
    "DataError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
    "OperationalError",
    "InterfaceError",
    "DatabaseError",
)


class ORMExecutor:
    """Runs each batch on ``table`` in one call on the connection's thread, batches one
    after another. How they are cut depends on the size of the records, which the executor
    follows as it goes (moving averages) and turns into its policy with ``large``.
    """

    def __init__(
        self, table: RecordTable, db: str, large: LargeRecords, records: LockedRecords
    ) -> None:
        self._table = table
        self._records = records
        self._db = db
        # Read once: in a task with a context of its own, ``connections[db]`` builds a new
        # connection object each time.
        self._on_sqlite = connections[db].vendor == "sqlite"
        self._large = large
        self._perform = on_connection_thread(drive)
        self._perform_together = on_connection_thread(self._drive_in_one_transaction)
        self._read_size = 0.0  # moving average of the records read, as stored
        self._written_size = 0.0  # moving average of the records written, as JSON
        self.policy: BatchPolicy = ORM_PATH
        self.lists_keys = False

    def _learn(self) -> None:
        self.policy = self._large.policy(ORM_PATH, self._read_size, self._written_size)

    def _note_written(self, rows: Sequence[Row]) -> None:
        self._written_size = moving_average(self._written_size, [len(row[2]) for row in rows])
        self._learn()

    def _note_read(self, sizes: list[int]) -> None:
        self._read_size = moving_average(self._read_size, sizes)
        self._learn()

    async def run(self, requests: list[Request]) -> list[Outcome]:
        plan = perform(requests, self.unavailable)
        if (
            len(requests) > 1
            and all(request.call is not None for request in requests)
            and self._on_sqlite
        ):
            return await self._perform_together(plan, self._execute)
        return await self._perform(plan, self._execute)

    def _drive_in_one_transaction(self, plan: Plan, execute: Any) -> list[Outcome]:
        """Run a batch of versioned operations in one SQLite transaction, each in a
        savepoint of its own (its failure undoes only its own writes). SQLite commits a
        transaction with a sync to disk, which costs about as much as ten small appends;
        one commit per batch instead of one per operation. SQLite locks the whole
        database anyway, so holding its write lock for the batch takes nothing from
        concurrency; callers learn their outcome after the commit."""
        with transaction.atomic(using=self._db):
            self._records.lock_database(self._db)
            return drive(plan, execute)

    def _execute(self, request: Request) -> Any:
        table, db = self._table, self._db
        if request.call is not None:
            return self._records.run(db, request.now, request.call)
        if request.kind == "read":
            sizes: list[int] = []
            found = table.read(db, request.keys, request.now, sizes)
            if sizes:
                self._note_read(sizes)
            return found
        if request.kind == "exists":
            return table.exists(db, request.keys, request.now)
        if request.kind == "delete":
            return table.delete(db, request.keys)
        rows = request.rows()
        if rows:
            self._note_written(rows)
        return table.write(db, rows, request.now)

    def unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, OperationalError | InterfaceError)

    def take(self, payload: Any, first: bool) -> dict[str, Any]:
        # The ORM decoded each record once; a second reader of the key gets its own copy.
        return payload if first else copy.deepcopy(payload)

    async def close(self) -> None:
        """Django owns the connection (closed with the thread's other connections)."""

    def abandon(self) -> None:
        pass


def as_django_error(exc: BaseException) -> BaseException:
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
