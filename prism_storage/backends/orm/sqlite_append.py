"""``append`` on SQLite in one statement: the database grows the list itself.

The ORM path's general ``append`` (:mod:`.locked`) takes SQLite's write lock, reads the
record, decodes it, appends in Python, encodes the whole record again and writes it back:
for an agent session whose history grows turn by turn, most of a turn's time. SQLite's
JSON functions do the same inside one ``UPDATE``::

    UPDATE record SET value = json_insert(value, '$."items"[#]', ? -> '$[0]', ...),
                      version = ?, updated_at = ?[, expires_at = ?]
    WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)
      AND json_type(value, '$."items"') = 'array'
    RETURNING json_array_length(value, '$."items"')

One statement is atomic under SQLite's database lock, across connections and processes,
as the locked transaction is. ``? -> '$[i]'`` hands ``json_insert`` each item as the JSON
text the codec made (numbers and strings verbatim: nothing is decoded and re-encoded in
between), and the record keeps its ``created_at`` and, without ``ttl``, its expiry.

The statement changes nothing, and the caller takes the general path, when the record is
absent or expired (it is created anew), when the field is absent or not a list (created,
or an error), with ``max_items`` (a trim), with more items than :data:`MAX_ITEMS` (a
function takes at most 127 arguments in default SQLite builds) and for a field name the
path could not spell exactly (a ``"``, a backslash or a control character). Needs SQLite
3.38 (``->``; ``RETURNING`` came in 3.35); older builds take the general path always.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from django.db import OperationalError

__all__ = ["MAX_ITEMS", "InPlaceAppend"]

#: The most items one statement appends (``json_insert`` takes two arguments per item).
MAX_ITEMS = 32
#: The SQLite that has ``->`` (3.38) and ``RETURNING`` (3.35).
MIN_VERSION = (3, 38, 0)


class InPlaceAppend:
    """The one-statement ``append`` of one SQLite alias's ``Record`` table."""

    def __init__(self, model: Any, connection: Any) -> None:
        meta = model._meta
        quote = connection.ops.quote_name
        self._table = quote(meta.db_table)
        self._ns, self._key, self._value, self._version, self._updated, self._expires = (
            quote(meta.get_field(name).column)
            for name in ("namespace", "key", "value", "version", "updated_at", "expires_at")
        )
        self._expires_field = meta.get_field("expires_at")
        self._statements: dict[tuple[int, bool], str] = {}

    @staticmethod
    def available() -> bool:
        return sqlite3.sqlite_version_info >= MIN_VERSION

    @staticmethod
    def path_of(field: str) -> str | None:
        """The JSON path of ``field`` in the record, or ``None`` if it has no exact one."""
        if '"' in field or "\\" in field or any(ord(c) < 0x20 or c == "\x7f" for c in field):
            return None
        return f'$."{field}"'

    def append(
        self,
        connection: Any,
        namespace: str,
        key: str,
        path: str,
        count: int,
        items_data: str,
        version: str,
        now: datetime,
        expires_at: datetime | None,
        renew: bool,
    ) -> int | None:
        """Append the ``count`` items of ``items_data`` (their JSON array) to the list at
        ``path`` of the live record ``key``; the list's new length, or ``None`` when the
        statement changed nothing (see the module doc). ``renew``: set the expiry to
        ``expires_at`` (else the record keeps its own)."""
        prepare = self._expires_field.get_db_prep_value
        moment = prepare(now, connection)
        params: list[Any] = []
        for _ in range(count):
            params += [path, items_data]
        params += [version, moment]
        if renew:
            params.append(None if expires_at is None else prepare(expires_at, connection))
        params += [namespace, key, moment, path, path]
        with connection.cursor() as cursor:
            try:
                cursor.execute(self._statement(count, renew), params)
            except OperationalError as exc:
                # A stored value SQLite's JSON parser refuses: the general path decides.
                if "JSON" in str(exc):
                    return None
                raise
            row = cursor.fetchone()
        return None if row is None else int(row[0])

    def _statement(self, count: int, renew: bool) -> str:
        found = self._statements.get((count, renew))
        if found is None:
            value = self._value
            pairs = ", ".join(f"%s || '[#]', %s -> '$[{index}]'" for index in range(count))
            expiry = f", {self._expires} = %s" if renew else ""
            found = self._statements[(count, renew)] = (
                f"UPDATE {self._table} SET {value} = json_insert({value}, {pairs}), "
                f"{self._version} = %s, {self._updated} = %s{expiry} "
                f"WHERE {self._ns} = %s AND {self._key} = %s "
                f"AND ({self._expires} IS NULL OR {self._expires} > %s) "
                f"AND json_type({value}, %s) = 'array' "
                f"RETURNING json_array_length({value}, %s)"
            )
        return found
