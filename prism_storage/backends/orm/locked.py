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

The transaction, the locks and the row writes are :mod:`.locked_rows`; the PostgreSQL fast
path does the same in single statements (:mod:`.pg_records`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
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
from .locked_rows import COLUMNS, LockedRows, as_utc, live_row, record_of, unexpired
from .requests import Call
from .sqlite_append import MAX_ITEMS, InPlaceAppend
from .table import RecordTable, as_datetime

__all__ = ["LockedRecords", "as_utc"]


class LockedRecords(LockedRows):
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
        rows = self._table.records(db).filter(key__in=list(keys)).values_list(*COLUMNS)
        found: dict[str, Record] = {}
        for row in rows:
            if unexpired(row[6], now):
                found[row[1]] = record_of(row)
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
            return [record_of(row) for row in rows.values_list(*COLUMNS)]
        first = list(rows.values_list(*COLUMNS)[:limit])
        if len(first) < limit:
            return [record_of(row) for row in first]
        last = first[-1][5]
        ties = rows.filter(updated_at=last).exclude(pk__in=[row[0] for row in first])
        return [record_of(row) for row in [*first, *ties.values_list(*COLUMNS)]]

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
            live = live_row(row, now)
            check_condition(condition, None if live is None else live[3])
            created_at = now if live is None else None
            version = self._write(db, key, row, value, data, expiry, created_at, now)
            return WriteResult(version, live is None)

        return self._retrying(db, put_locked)

    def remove(self, db: str, now: float, key: str, if_version: str | None) -> bool:
        def remove_locked() -> bool:
            row = self._lock(db, key)
            live = live_row(row, now)
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
            live = live_row(row, now)
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
                live = live_row(row, now)
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
            row = live_row(self._lock(db, key), now)
            if row is None:
                return None
            value = row[2]
            popped, item = pop_from(value, field)
            if popped:
                expiry = None if row[6] is None else as_utc(row[6]).timestamp()
                self._write(db, key, row, value, self._encode(value), expiry, None, now)
            return item

        return self._retrying(db, pop_locked)
