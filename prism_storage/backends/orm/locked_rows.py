"""The rows under :mod:`.locked`'s versioned operations: each operation runs in one
transaction that first takes its record's row (see :mod:`.locked` for how, per database),
and starts again when a concurrent transaction created the record first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import IntegrityError, OperationalError, connections, transaction

from ..versions import Record, new_version
from .sql import CHUNK, JSONText, takes_json_text
from .table import RecordTable, as_datetime

__all__ = ["COLUMNS", "LockedRows", "as_utc", "live_row", "record_of", "unexpired"]

T = TypeVar("T")

#: How many times an operation starts again after losing the race to create a record.
CREATE_ATTEMPTS = 8
#: MySQL's ER_LOCK_DEADLOCK.
_DEADLOCK = 1213
#: What a row read takes, in this order (``values_list``).
COLUMNS = ("pk", "key", "value", "version", "created_at", "updated_at", "expires_at")


def as_utc(moment: datetime) -> datetime:
    """A ``DateTimeField`` value (aware, or naive local time without ``USE_TZ``) in UTC."""
    return moment.astimezone(UTC)


class LockedRows:
    """Takes, reads and writes one namespace's rows, for :class:`~.locked.LockedRecords`
    (blocking, in the thread that holds the alias's connection)."""

    _table: RecordTable

    def lock_database(self, db: str) -> None:
        """On SQLite, inside a transaction: take the database's write lock now."""
        with connections[db].cursor() as cursor:
            cursor.execute(self._table.sql(db).touch, [self._table.namespace, ""])

    def _retrying(self, db: str, operation: Callable[[], T]) -> T:
        """Run ``operation`` in a transaction, again when a concurrent one created the
        record first (the unique constraint refused our insert)."""
        for attempt in range(CREATE_ATTEMPTS):
            try:
                with transaction.atomic(using=db):
                    return operation()
            except (IntegrityError, OperationalError) as exc:
                # MySQL/MariaDB lock the gap where an absent row would be: two transactions
                # creating the same record deadlock there instead (error 1213).
                lost_race = isinstance(exc, IntegrityError) or exc.args[:1] == (_DEADLOCK,)
                if not lost_race or attempt == CREATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _lock(self, db: str, key: str) -> tuple[Any, ...] | None:
        """Take the record's row (see the module doc) and read it, expired or not."""
        table = self._table
        connection = connections[db]
        rows = table.records(db).filter(key=key)
        if connection.features.has_select_for_update:
            rows = rows.select_for_update()
        elif connection.vendor == "sqlite":
            # A write first: the transaction holds SQLite's write lock from here on.
            self.lock_database(db)
        found = list(rows.values_list(*COLUMNS)[:1])
        return found[0] if found else None

    def _lock_many(self, db: str, keys: list[str]) -> dict[str, tuple[Any, ...]]:
        """Take the rows of ``keys`` (in key order; see the module doc) and read them,
        expired or not."""
        table = self._table
        connection = connections[db]
        rows = table.records(db)
        size = len(keys) or 1
        if connection.features.has_select_for_update:
            # One statement, locking in the database's order of keys: statements cut in
            # chunks would lock in an order that depends on the other keys of the batch.
            rows = rows.select_for_update().order_by("key")
        elif connection.vendor == "sqlite":
            self.lock_database(db)
            size = CHUNK  # the database is locked: chunks may go in any order
        found: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(keys), size):
            chunk = keys[start : start + size]
            for row in rows.filter(key__in=chunk).values_list(*COLUMNS):
                found[row[1]] = row
        return found

    def _write_many(
        self, db: str, updates: list[tuple[Any, ...]], inserts: list[Any], now: datetime
    ) -> None:
        """Rewrite the rows of ``updates`` (``(pk, value, data, version, created_at,
        updated_at, expires_at)``) and insert ``inserts`` (``(key, value, data,
        expires_at)``); a concurrent insert of one of those keys fails the insert (see
        the module doc)."""
        table = self._table
        connection = connections[db]
        if updates:
            table.sql(db).update(connection, updates)
        if inserts:
            as_text = takes_json_text(connection)
            table.model.objects.using(db).bulk_create(
                [
                    table.model(
                        namespace=table.namespace,
                        key=key,
                        value=JSONText(data) if as_text else value,
                        version=new_version(),
                        created_at=now,
                        updated_at=now,
                        expires_at=expires_at,
                    )
                    for key, value, data, expires_at in inserts
                ]
            )

    def _write(
        self,
        db: str,
        key: str,
        row: tuple[Any, ...] | None,
        value: dict[str, Any],
        data: str,
        expiry: float | None,
        created_at: float | None,
        now: float,
    ) -> str:
        """Write the record (updating ``row``, or inserting it when ``None``) at a new
        version; ``created_at`` ``None`` keeps the row's. Returns the version."""
        table = self._table
        version = new_version()
        stored = JSONText(data) if takes_json_text(connections[db]) else value
        fields: dict[str, Any] = {
            "value": stored,
            "version": version,
            "updated_at": as_datetime(now),
            "expires_at": None if expiry is None else as_datetime(expiry),
        }
        if created_at is not None:
            fields["created_at"] = as_datetime(created_at)
        if row is not None:
            table.records(db).filter(pk=row[0]).update(**fields)
        else:
            fields.setdefault("created_at", as_datetime(now))
            table.model.objects.using(db).bulk_create(
                [table.model(namespace=table.namespace, key=key, **fields)]
            )
        return version


def live_row(row: tuple[Any, ...] | None, now: float) -> tuple[Any, ...] | None:
    """``row`` if it holds a record that has not expired at ``now``."""
    return row if row is not None and unexpired(row[6], now) else None


def unexpired(expires_at: datetime | None, now: float) -> bool:
    return expires_at is None or as_utc(expires_at).timestamp() > now


def record_of(row: tuple[Any, ...]) -> Record:
    _pk, key, value, version, created_at, updated_at, expires_at = row
    return Record(
        key,
        value,
        version,
        as_utc(created_at),
        as_utc(updated_at),
        None if expires_at is None else as_utc(expires_at),
    )
