"""Versioned-record operations of the ORM path: each one transaction that holds the row.

Every database Django supports can do it this way. The transaction first takes the row:
``SELECT ... FOR UPDATE`` where the database has it; on SQLite, which locks the whole
database instead, a write statement opens the transaction, so it holds SQLite's write lock
from its first statement (another connection, in any process, waits for it, and no
transaction of ours reads a state another one is about to replace). The operation then
reads the record, decides in Python (the condition, the list to append to) and writes.

A record that does not exist yet cannot be locked: two transactions may both find it
absent and both insert it. The unique constraint refuses the second insert and the
operation starts again, finding the record this time. Like every ``orm`` path, nothing
here sends model signals.

The PostgreSQL fast path does the same in single statements (:mod:`.pg_records`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import IntegrityError, OperationalError, connections, transaction
from django.db.models import Q

from ...exceptions import InvalidValueError
from ..versions import (
    Condition,
    Record,
    WriteResult,
    append_to,
    check_condition,
    new_version,
    pop_from,
)
from .requests import Call
from .sql import CHUNK, JSONText, takes_json_text
from .sqlite_append import MAX_ITEMS, InPlaceAppend
from .table import RecordTable, as_datetime

__all__ = ["LockedRecords", "as_utc"]

T = TypeVar("T")

#: How many times an operation starts again after losing the race to create a record.
CREATE_ATTEMPTS = 8
#: MySQL's ER_LOCK_DEADLOCK.
_DEADLOCK = 1213
_COLUMNS = ("pk", "key", "value", "version", "created_at", "updated_at", "expires_at")


def as_utc(moment: datetime) -> datetime:
    """A ``DateTimeField`` value (aware, or naive local time without ``USE_TZ``) in UTC."""
    return moment.astimezone(UTC)


class LockedRecords:
    """The versioned operations on one namespace's records (blocking; they run in the
    thread that holds the alias's connection, like :class:`~.table.RecordTable`).

    :param encode: the store's encoder, for the values ``append`` and ``pop`` rebuild.
    """

    def __init__(self, table: RecordTable, encode: Callable[[dict[str, Any]], str]) -> None:
        self._table = table
        self._encode = encode
        #: Per alias: the one-statement append, ``None`` where there is none.
        self._in_place: dict[str, InPlaceAppend | None] = {}

    def run(self, db: str, now: float, call: Call) -> Any:
        operation: Callable[..., Any] = getattr(self, call.name)
        return operation(db, now, *call.args)

    # ------------------------------------------------------------------ operations

    def records(self, db: str, now: float, keys: Sequence[str]) -> dict[str, Record]:
        rows = self._table.records(db).filter(key__in=list(keys)).values_list(*_COLUMNS)
        found: dict[str, Record] = {}
        for row in rows:
            if _alive(row[6], now):
                found[row[1]] = _record(row)
        return found

    def containing(
        self,
        db: str,
        now: float,
        prefix: str,
        contained: dict[str, Any],
        data: str,
        limit: int | None,
    ) -> list[Record]:
        """The ORM path of ``find_containing`` (the ``contains`` lookup is jsonb's ``@>``
        on PostgreSQL); the ties of the last row come too, as on the fast path."""
        rows = (
            self._table.records(db)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=as_datetime(now)))
            .filter(key__startswith=prefix, value__contains=contained)
            .order_by("-updated_at")
        )
        if limit is None:
            return [_record(row) for row in rows.values_list(*_COLUMNS)]
        first = list(rows.values_list(*_COLUMNS)[:limit])
        if len(first) < limit:
            return [_record(row) for row in first]
        last = first[-1][5]
        ties = rows.filter(updated_at=last).exclude(pk__in=[row[0] for row in first])
        return [_record(row) for row in [*first, *ties.values_list(*_COLUMNS)]]

    def put(
        self,
        db: str,
        now: float,
        key: str,
        value: dict[str, Any],
        data: str,
        expiry: float | None,
        condition: Condition,
    ) -> WriteResult:
        def put_locked() -> WriteResult:
            row = self._lock(db, key)
            live = _live(row, now)
            check_condition(condition, None if live is None else live[3])
            created_at = now if live is None else None
            version = self._write(db, key, row, value, data, expiry, created_at, now)
            return WriteResult(version, live is None)

        return self._retrying(db, put_locked)

    def remove(self, db: str, now: float, key: str, if_version: str | None) -> bool:
        def remove_locked() -> bool:
            row = self._lock(db, key)
            live = _live(row, now)
            if if_version is not None:
                check_condition(if_version, None if live is None else live[3])
            if row is not None:
                self._table.delete(db, [key])
            return live is not None

        return self._retrying(db, remove_locked)

    def append(
        self,
        db: str,
        now: float,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
        default_ttl: float | None,
    ) -> int:
        if max_items is None and len(items) <= MAX_ITEMS:
            length = self._append_in_place(db, now, key, field, len(items), items_data, ttl)
            if length is not None:
                return length

        def append_locked() -> int:
            row = self._lock(db, key)
            live = _live(row, now)
            value, length = append_to(
                None if live is None else live[2], field, list(items), max_items
            )
            expiry: float | None
            if ttl is not None:
                expiry = now + ttl
            elif live is not None:
                expiry = None if live[6] is None else as_utc(live[6]).timestamp()
            else:
                expiry = None if default_ttl is None else now + default_ttl
            created_at = now if live is None else None
            self._write(db, key, row, value, self._encode(value), expiry, created_at, now)
            return length

        return self._retrying(db, append_locked)

    def _append_in_place(
        self,
        db: str,
        now: float,
        key: str,
        field: str,
        count: int,
        items_data: str,
        ttl: float | None,
    ) -> int | None:
        """On SQLite, append in one statement (:mod:`.sqlite_append`); the new length, or
        ``None`` when the general path must do it."""
        if db not in self._in_place:
            connection = connections[db]
            usable = connection.vendor == "sqlite" and InPlaceAppend.available()
            self._in_place[db] = InPlaceAppend(self._table.model, connection) if usable else None
        statement = self._in_place[db]
        if statement is None:
            return None
        path = InPlaceAppend.path_of(field)
        if path is None:
            return None
        expires_at = None if ttl is None else as_datetime(now + ttl)
        return statement.append(
            connections[db],
            self._table.namespace,
            key,
            path,
            count,
            items_data,
            new_version(),
            as_datetime(now),
            expires_at,
            ttl is not None,
        )

    def append_many(
        self,
        db: str,
        now: float,
        field: str,
        entries: list[tuple[str, list[Any], str]],
        ttl: float | None,
        default_ttl: float | None,
    ) -> dict[str, int | InvalidValueError]:
        """Append to several lists (``(key, items, items_data)``, one entry per key) in one
        transaction; ``{key: new length}``, or the error of a field that is not a list
        (that record is left as it was).

        One statement reads every row (locked), the lists grow in Python, one
        ``executemany`` rewrites the rows found and one insert creates the others: a
        statement per key would cost more than the naive get+set it replaces.
        """

        def append_all() -> dict[str, int | InvalidValueError]:
            # In key order, rows locked and records created alike: transactions of other
            # processes take them in the same order, so two never wait for each other.
            ordered = sorted(entries, key=lambda entry: entry[0])
            rows = self._lock_many(db, [entry[0] for entry in ordered])
            lengths: dict[str, int | InvalidValueError] = {}
            updates: list[tuple[Any, ...]] = []
            inserts: list[Any] = []
            stamp = as_datetime(now)
            for key, items, _data in ordered:
                row = rows.get(key)
                live = _live(row, now)
                try:
                    value, length = append_to(
                        None if live is None else live[2], field, list(items), None
                    )
                except InvalidValueError as exc:
                    lengths[key] = exc
                    continue
                lengths[key] = length
                expiry: float | None
                if ttl is not None:
                    expiry = now + ttl
                elif live is not None:
                    expiry = None if live[6] is None else as_utc(live[6]).timestamp()
                else:
                    expiry = None if default_ttl is None else now + default_ttl
                expires_at = None if expiry is None else as_datetime(expiry)
                data = self._encode(value)
                created_at = stamp if live is None else live[4]
                if row is not None:
                    updates.append(
                        (row[0], value, data, new_version(), created_at, stamp, expires_at)
                    )
                else:
                    inserts.append((key, value, data, expires_at))
            self._write_many(db, updates, inserts, stamp)
            return lengths

        return self._retrying(db, append_all)

    def pop(self, db: str, now: float, key: str, field: str) -> Any:
        def pop_locked() -> Any:
            row = _live(self._lock(db, key), now)
            if row is None:
                return None
            value = row[2]
            popped, item = pop_from(value, field)
            if popped:
                expiry = None if row[6] is None else as_utc(row[6]).timestamp()
                self._write(db, key, row, value, self._encode(value), expiry, None, now)
            return item

        return self._retrying(db, pop_locked)

    def lock_database(self, db: str) -> None:
        """On SQLite, inside a transaction: take the database's write lock now."""
        with connections[db].cursor() as cursor:
            cursor.execute(self._table.sql(db).touch, [self._table.namespace, ""])

    # ------------------------------------------------------------------ the row

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
        found = list(rows.values_list(*_COLUMNS)[:1])
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
            for row in rows.filter(key__in=chunk).values_list(*_COLUMNS):
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


def _live(row: tuple[Any, ...] | None, now: float) -> tuple[Any, ...] | None:
    """``row`` if it holds a record that has not expired at ``now``."""
    return row if row is not None and _alive(row[6], now) else None


def _alive(expires_at: datetime | None, now: float) -> bool:
    return expires_at is None or as_utc(expires_at).timestamp() > now


def _record(row: tuple[Any, ...]) -> Record:
    _pk, key, value, version, created_at, updated_at, expires_at = row
    return Record(
        key,
        value,
        version,
        as_utc(created_at),
        as_utc(updated_at),
        None if expires_at is None else as_utc(expires_at),
    )
