"""Versioned-record operations of the PostgreSQL fast path: each one a single statement.

A single statement is atomic against every other, in any process, without a transaction
of ours around it:

* a write at a version is ``UPDATE ... WHERE version = %b``, a create ``INSERT ... ON
  CONFLICT DO UPDATE ... WHERE <the row has expired>`` (an expired record counts as
  absent); the row count says whether the condition held. Only when it did not does a
  second statement read the current version for the ``VersionConflictError``;
* ``append`` is one ``INSERT ... ON CONFLICT DO UPDATE`` that concatenates the items to
  the jsonb list (``jsonb_set``, ``||``), keeps the latest ``max_items`` (a jsonpath
  slice) and returns the list's length. Its ``WHERE`` refuses a field that is not a list:
  then no row comes back and nothing was written;
* ``pop`` locks the row (``SELECT ... FOR UPDATE`` in a ``WITH``), removes the last item
  (``#-``) and returns it with what the field held, in one statement.

The statements run on the fast path's autocommit connections, so each is committed when
it returns (their SQL is in :mod:`.pg_record_sql`). The ORM path does the same in
row-locking transactions (:mod:`.locked`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...codec import decode_value
from ...exceptions import InvalidValueError
from ..base import KeyPage
from ..key_ranges import prefix_end
from ..versions import Condition, Record, WriteResult, check_condition, new_version
from .pg_record_sql import RecordStatements
from .requests import Call

__all__ = ["PostgresRecords"]


def _moment(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


class PostgresRecords:
    """The versioned operations on one namespace's records, on a psycopg connection."""

    def __init__(self, model: Any, namespace: str) -> None:
        self._sql = RecordStatements(model)
        self._namespace = namespace
        #: Whether the key column sorts in code point order (learnt on first listing).
        self._code_point_order: bool | None = None

    async def run(self, connection: Any, now: float, call: Call) -> Any:
        operation: Any = getattr(self, call.name)
        return await operation(connection, now, *call.args)

    def _params(self, now: float, key: str = "", **more: Any) -> dict[str, Any]:
        return {"ns": self._namespace, "key": key, "now": _moment(now), **more}

    async def records(self, connection: Any, now: float, keys: list[str]) -> dict[str, Record]:
        cursor = await connection.execute(self._sql.records, self._params(now, keys=keys))
        return {record.key: record for record in _records(await cursor.fetchall())}

    async def containing(
        self,
        connection: Any,
        now: float,
        prefix: str,
        contained: dict[str, Any],
        data: str,
        limit: int | None,
    ) -> list[Record]:
        condition, more = await self._prefix(connection, prefix)
        sql = self._sql
        if limit is None:
            statement = sql.containing + condition + sql.newest_first
        else:
            page = sql.containing_rows + condition + sql.newest_first + sql.with_ties
            statement = sql.page_head + page + sql.page_tail
        params = self._params(now, contained=data, limit=limit, **more)
        return _records(await (await connection.execute(statement, params)).fetchall())

    async def _prefix(self, connection: Any, prefix: str) -> tuple[str, dict[str, Any]]:
        """The condition (and its parameters) of the keys starting with ``prefix``."""
        if not prefix:
            return "", {}
        condition = self._sql.starts_with
        if await self._sorts_by_code_point(connection):
            condition += self._sql.from_prefix
            end = prefix_end(prefix)
            if end is not None:
                condition += self._sql.below_end
            return condition, {"prefix": prefix, "end": end}
        return condition, {"prefix": prefix}

    async def _sorts_by_code_point(self, connection: Any) -> bool:
        if self._code_point_order is None:
            import psycopg

            try:
                cursor = await connection.execute(
                    self._sql.key_collation,
                    {"table": self._sql.table_name, "column": self._sql.key_column},
                )
                row = await cursor.fetchone()
            except psycopg.DatabaseError:  # a server older than 15 (no datlocprovider)
                row = None
            self._code_point_order = row is not None and _code_point_collation(*row)
        return self._code_point_order

    async def keys(
        self, connection: Any, now: float, prefix: str, limit: int, cursor: str | None
    ) -> KeyPage:
        condition, more = await self._prefix(connection, prefix)
        statement = self._sql.keys_from + condition
        if cursor is not None:
            statement += self._sql.after
        params = self._params(now, cursor=cursor, limit=limit, **more)
        rows = await (await connection.execute(statement + self._sql.keys_order, params)).fetchall()
        keys = [row[0] for row in rows]
        return KeyPage(keys, keys[-1] if len(keys) == limit else None)

    async def put(
        self,
        connection: Any,
        now: float,
        key: str,
        value: dict[str, Any],
        data: str,
        expiry: float | None,
        condition: Condition,
    ) -> WriteResult:
        version = new_version()
        params = self._params(now, key, data=data, version=version, expires=_moment(expiry))
        if isinstance(condition, str):
            params["expected"] = condition
        while True:
            # Each pass is one statement, or two for a plain put: between them another
            # writer may delete or create the record, and the loop goes round again.
            if condition is None or isinstance(condition, str):
                statement = self._sql.update_live if condition is None else self._sql.update_at
                if await self._changed(connection, statement, params):
                    return WriteResult(version, False)
            if not isinstance(condition, str) and await self._changed(
                connection, self._sql.create, params
            ):
                return WriteResult(version, True)
            if condition is not None:
                await self._check(connection, now, key, condition)

    async def remove(self, connection: Any, now: float, key: str, if_version: str | None) -> bool:
        if if_version is None:
            cursor = await connection.execute(self._sql.delete, self._params(now, key))
            return any(live for (live,) in await cursor.fetchall())
        params = self._params(now, key, expected=if_version)
        while not await self._changed(connection, self._sql.delete_at, params):
            await self._check(connection, now, key, if_version)
        return True

    async def append(
        self,
        connection: Any,
        now: float,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
        default_ttl: float | None,
    ) -> int:
        lifetime = ttl if ttl is not None else default_ttl
        params = self._params(
            now,
            key,
            field=field,
            items=items_data,
            max=max_items,
            version=new_version(),
            expires=None if lifetime is None else _moment(now + lifetime),
            reset=ttl is not None,
        )
        statement = self._sql.append if max_items is None else self._sql.append_kept
        cursor = await connection.execute(statement, params)
        row = await cursor.fetchone()
        if row is None:
            raise InvalidValueError(f"The record's {field!r} field is not a list.", f"$.{field}")
        return int(row[0])

    async def append_many(
        self,
        connection: Any,
        now: float,
        field: str,
        entries: list[tuple[str, list[Any], str]],
        ttl: float | None,
        default_ttl: float | None,
    ) -> dict[str, int | InvalidValueError]:
        """Append to several lists (``(key, items, items_data)``) in one statement;
        ``{key: new length}``, or the error of a field that is not a list."""
        lifetime = ttl if ttl is not None else default_ttl
        params = self._params(
            now,
            field=field,
            keys=[entry[0] for entry in entries],
            items=[entry[2] for entry in entries],
            versions=[new_version() for _ in entries],
            expires=None if lifetime is None else _moment(now + lifetime),
            reset=ttl is not None,
        )
        cursor = await connection.execute(self._sql.append_many, params)
        lengths: dict[str, int | InvalidValueError] = {
            key: int(length) for key, length in await cursor.fetchall()
        }
        for key, _items, _data in entries:
            if key not in lengths:
                lengths[key] = InvalidValueError(
                    f"The record's {field!r} field is not a list.", f"$.{field}"
                )
        return lengths

    async def pop(self, connection: Any, now: float, key: str, field: str) -> Any:
        params = self._params(now, key, field=field, version=new_version())
        cursor = await connection.execute(self._sql.pop, params)
        row = await cursor.fetchone()
        if row is None:
            return None
        kind, item = row
        if kind not in (None, "null", "array"):
            raise InvalidValueError(
                f"The record's {field!r} field is a JSON {kind}, not a list.", f"$.{field}"
            )
        return decode_value(item)["i"]

    # ------------------------------------------------------------------ helpers

    @staticmethod
    async def _changed(connection: Any, statement: str, params: dict[str, Any]) -> bool:
        cursor = await connection.execute(statement, params)
        return bool(cursor.rowcount)

    async def _check(self, connection: Any, now: float, key: str, condition: Condition) -> None:
        """After a conditional statement changed nothing: raise VersionConflictError with
        the current version, or return if the condition holds by now (the record changed
        again in between: the caller tries once more)."""
        cursor = await connection.execute(self._sql.version, self._params(now, key))
        row = await cursor.fetchone()
        check_condition(condition, None if row is None else row[0])


def _records(rows: list[Any]) -> list[Record]:
    return [
        Record(
            key,
            decode_value(data),
            version,
            created.astimezone(UTC),
            updated.astimezone(UTC),
            None if expires is None else expires.astimezone(UTC),
        )
        for key, data, version, created, updated, expires in rows
    ]


#: libc locales whose order is code point order (UTF-8 byte order).
_CODE_POINT_LOCALES = {"C", "POSIX", "C.UTF-8", "C.utf8"}


def _code_point_collation(
    name: str, provider: str, collate: str | None, db_provider: str, db_collate: str
) -> bool:
    """Whether a column of this collation sorts its text in code point order."""
    if name == "default":
        return db_provider == "c" and db_collate in _CODE_POINT_LOCALES
    return (provider in ("c", "d") and collate in _CODE_POINT_LOCALES) or name == "ucs_basic"
