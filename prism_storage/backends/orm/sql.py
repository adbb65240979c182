"""Reads, deletes and row rewrites of the ``orm`` backend's ORM path, as SQL on Django's own cursor.

Building a ``QuerySet`` and compiling it costs about ten times more than running the
resulting query on SQLite. Reads are simple enough to write once, portably: the table and
column names come from the model's ``_meta`` quoted by the database's own ``quote_name``,
parameters are adapted by the fields (``get_db_prep_value``) and values decoded by the same
converters the ORM applies (the backend's, then the field's ``from_db_value``). Placeholders
are ``%s``, which Django's cursor translates for every database. Deletes are plain SQL too,
so they send no model signals, like the fast path's and like Django's database cache.
Writes stay on the ORM (upsert syntax differs per database), but a written value goes in as
the JSON text the codec already made (:class:`JSONText`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db.models import Expression, JSONField

from ..key_ranges import prefix_end

__all__ = ["JSONText", "RecordSQL", "takes_json_text"]

# SQLite allows at most 999 bound parameters on old builds; stay under it per statement.
CHUNK = 500


class RecordSQL:
    """``read``/``exists``/``slide``/``delete``/``update``/``sweep`` of one namespace's records
    on one alias.

    Built once per alias; each call takes the calling thread's connection of that alias.
    """

    def __init__(self, model: Any, connection: Any) -> None:
        meta = model._meta
        quote = connection.ops.quote_name
        table = quote(meta.db_table)
        ns, key, value, expires = (
            quote(meta.get_field(name).column)
            for name in ("namespace", "key", "value", "expires_at")
        )
        self._where = f"{ns} = %s AND {key} IN ({{}}) AND ({expires} IS NULL OR {expires} > %s)"
        self._read = f"SELECT {key}, {value} FROM {table} WHERE {self._where}"
        self._exists = f"SELECT {key} FROM {table} WHERE {self._where}"
        self._slide = f"UPDATE {table} SET {expires} = %s WHERE {self._where}"
        self._delete = f"DELETE FROM {table} WHERE {ns} = %s AND {key} IN ({{}})"
        self._sweep = f"DELETE FROM {table} WHERE {ns} = %s AND {expires} <= %s"
        self._delete_expired = (
            f"DELETE FROM {table} WHERE {ns} = %s AND {key} IN ({{}}) AND {expires} <= %s"
        )
        self._delete_all = f"DELETE FROM {table} WHERE {ns} = %s"
        self._vendor = connection.vendor
        self._key_column = key
        version = quote(meta.get_field("version").column)
        #: A write that changes nothing: on SQLite it takes the database's write lock.
        self.touch = f"UPDATE {table} SET {version} = {version} WHERE {ns} = %s AND {key} = %s"
        created, updated = (
            quote(meta.get_field(name).column) for name in ("created_at", "updated_at")
        )
        pk = quote(meta.pk.column)
        json = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
        self._update = (
            f"UPDATE {table} SET {value} = {json}, {version} = %s, {created} = %s, "
            f"{updated} = %s, {expires} = %s WHERE {pk} = %s"
        )
        self._value_field = meta.get_field("value")
        self._expires_field = meta.get_field("expires_at")
        value_field = meta.get_field("value")
        column = value_field.get_col(meta.db_table)
        self._converters: list[Callable[..., Any]] = [
            *connection.ops.get_db_converters(column),
            *column.get_db_converters(connection),
        ]
        self._column = column

    def read(
        self,
        connection: Any,
        namespace: str,
        keys: Sequence[str],
        now: datetime,
        sizes: list[int] | None = None,
    ) -> dict[str, Any]:
        """``{key: value}`` of the live records among ``keys``; the length of each stored
        value as read (characters or bytes) is appended to ``sizes``."""
        found: dict[str, Any] = {}
        for rows in self._chunks(connection, self._read, namespace, keys, now):
            for key, raw in rows:
                if sizes is not None and isinstance(raw, str | bytes):
                    sizes.append(len(raw))
                for convert in self._converters:
                    raw = convert(raw, self._column, connection)
                found[key] = raw
        return found

    def exists(
        self, connection: Any, namespace: str, keys: Sequence[str], now: datetime
    ) -> set[str]:
        return {
            row[0]
            for rows in self._chunks(connection, self._exists, namespace, keys, now)
            for row in rows
        }

    def slide(
        self,
        connection: Any,
        namespace: str,
        keys: Sequence[str],
        now: datetime,
        expires_at: datetime | None,
    ) -> int:
        """Set the expiry of the live records among ``keys``, and nothing else, in one
        UPDATE per chunk; how many there were. A row deleted meanwhile is not revived, and
        a concurrent write keeps its value (the database orders the two statements)."""
        prepare = self._expires_field.get_db_prep_value
        moment = prepare(now, connection)
        expiry = None if expires_at is None else prepare(expires_at, connection)
        changed = 0
        with connection.cursor() as cursor:
            for start in range(0, len(keys), CHUNK):
                chunk = list(keys[start : start + CHUNK])
                cursor.execute(
                    self._slide.format(", ".join(["%s"] * len(chunk))),
                    [expiry, namespace, *chunk, moment],
                )
                # Matched rows, also on MySQL (Django connects with CLIENT.FOUND_ROWS).
                changed += max(0, int(cursor.rowcount))
        return changed

    def delete(self, connection: Any, namespace: str, keys: Sequence[str]) -> None:
        with connection.cursor() as cursor:
            for start in range(0, len(keys), CHUNK):
                chunk = list(keys[start : start + CHUNK])
                cursor.execute(
                    self._delete.format(", ".join(["%s"] * len(chunk))), [namespace, *chunk]
                )

    def delete_expired(
        self, connection: Any, namespace: str, keys: Sequence[str], now: datetime
    ) -> None:
        """Delete the records among ``keys`` that have expired: a write over one of them
        then creates the record anew (a new ``created_at``), as over an absent one."""
        moment = self._expires_field.get_db_prep_value(now, connection)
        with connection.cursor() as cursor:
            for start in range(0, len(keys), CHUNK):
                chunk = list(keys[start : start + CHUNK])
                cursor.execute(
                    self._delete_expired.format(", ".join(["%s"] * len(chunk))),
                    [namespace, *chunk, moment],
                )

    def update(
        self,
        connection: Any,
        rows: Sequence[tuple[Any, dict[str, Any], str, str, datetime, datetime, datetime | None]],
    ) -> None:
        """Rewrite whole rows by primary key, in one ``executemany``: each row is ``(pk,
        value, its JSON, version, created_at, updated_at, expires_at)``."""
        as_text = takes_json_text(connection)
        prepare = self._expires_field.get_db_prep_value
        params = [
            (
                data if as_text else self._value_field.get_db_prep_save(value, connection),
                version,
                prepare(created_at, connection),
                prepare(updated_at, connection),
                None if expires_at is None else prepare(expires_at, connection),
                pk,
            )
            for pk, value, data, version, created_at, updated_at, expires_at in rows
        ]
        with connection.cursor() as cursor:
            cursor.executemany(self._update, params)

    def delete_prefix(self, connection: Any, namespace: str, prefix: str) -> int | None:
        """Delete the namespace's records whose key starts with ``prefix`` (``""``: all)
        in one statement, and return how many rows went (expired ones not yet swept
        included); ``None`` on a database where no exact condition is written here."""
        statement, params = self._delete_all, [namespace]
        if prefix:
            condition = self._starts_with(prefix)
            if condition is None:
                return None
            statement, params = f"{statement} AND {condition[0]}", [namespace, *condition[1]]
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return max(0, int(cursor.rowcount))

    def _starts_with(self, prefix: str) -> tuple[str, list[Any]] | None:
        """A condition true exactly for the keys starting with ``prefix``. Never ``LIKE``:
        ``%``, ``_`` and the escape character are keys' characters, and SQLite's and
        MySQL's ``LIKE`` ignore case. Never a range under a collation other than code
        point order."""
        key = self._key_column
        if self._vendor == "sqlite":
            # Columns compare as bytes (BINARY collation): UTF-8 order is code point
            # order, so the range is exact and walks the (namespace, key) index.
            upper = prefix_end(prefix)
            if upper is None:
                return f"{key} >= %s", [prefix]
            return f"{key} >= %s AND {key} < %s", [prefix, upper]
        if self._vendor == "postgresql":
            # Exact, whatever the collation (the column's is deterministic), and no pattern.
            return f"starts_with({key}, %s)", [prefix]
        # MySQL/MariaDB collations ignore case and accents, and other databases differ
        # again: the store erases through its exact listing instead.
        return None

    def sweep(self, connection: Any, namespace: str, now: datetime) -> int:
        """Delete the namespace's records expired at ``now``; how many there were."""
        moment = self._expires_field.get_db_prep_value(now, connection)
        with connection.cursor() as cursor:
            cursor.execute(self._sweep, [namespace, moment])
            return max(0, int(cursor.rowcount))

    def _chunks(
        self, connection: Any, statement: str, namespace: str, keys: Sequence[str], now: datetime
    ) -> Any:
        moment = self._expires_field.get_db_prep_value(now, connection)
        with connection.cursor() as cursor:
            for start in range(0, len(keys), CHUNK):
                chunk = list(keys[start : start + CHUNK])
                cursor.execute(
                    statement.format(", ".join(["%s"] * len(chunk))), [namespace, *chunk, moment]
                )
                # Row by row: a row is decoded before the next is fetched, so one raw
                # value at a time is in memory rather than the whole chunk's (measurably
                # faster with large values).
                yield iter(cursor.fetchone, None)


#: The databases whose JSON column is written from :class:`JSONText` (the others get the
#: value itself, which Django's ``JSONField`` encodes). On MySQL/MariaDB Django's encoding
#: would also escape every non-ASCII character (``\uXXXX``, up to twelve bytes for an emoji
#: where UTF-8 takes four): the statement would outgrow the size the store checks.
JSON_TEXT_VENDORS = frozenset({"sqlite", "postgresql", "mysql"})
_JSON_FIELD = JSONField()


def takes_json_text(connection: Any) -> bool:
    return connection.vendor in JSON_TEXT_VENDORS


class JSONText(Expression):
    """A value for the ``value`` column as the JSON text the codec made of it.

    Given the dict, Django's ``JSONField`` would run ``json.dumps`` on it again: about 2 ms
    for a 1 MB record, all of it holding the GIL that the event loop's own encoding needs.
    The text is a parameter like any other; PostgreSQL casts it to ``jsonb``.
    """

    def __init__(self, text: str) -> None:
        super().__init__(output_field=_JSON_FIELD)
        self.text = text

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[str]]:
        return "%s", (self.text,)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, tuple[str]]:
        return "%s::jsonb", (self.text,)
