"""The PostgreSQL fast path of the ``orm`` backend.

Batches run on the backend's own psycopg 3 async connections (at most two per event loop,
so asyncio never waits on Django's one ORM thread), built from the ``DATABASES`` entry of the
alias exactly as Django builds its own, and against the ``Record`` model's real table and
columns (read from ``_meta``): the same table, migrations and rows the ORM path uses.

Each request is one statement: reads are ``key = ANY(%b)``, writes one ``INSERT ... SELECT
FROM unnest(...) ON CONFLICT DO UPDATE`` (``created_at`` kept unless the record had expired;
``version``, ``updated_at`` and ``expires_at`` set), deletes ``key = ANY(%b)``; the
versioned operations are single statements too (:mod:`.pg_records`). Statements run in
autocommit, so each committed when it returns; a write split into several statements
(very large batches) runs in one transaction. Like every ``orm`` path, it sends no model
signals (see docs/orm.md).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from ...codec import decode_value
from ..versions import new_version
from .pg_records import PostgresRecords
from .policy import FAST_PATH, BatchPolicy
from .requests import Outcome, Request, Row, drive_async, perform

__all__ = ["PostgresExecutor", "is_available_for"]

#: Split a write into statements of at most this many rows or bytes of JSON.
WRITE_CHUNK_ROWS = 5000
WRITE_CHUNK_BYTES = 16 * 1024 * 1024
READ_CHUNK_KEYS = 10_000


def is_available_for(alias: str) -> bool:
    """Whether ``alias`` is a PostgreSQL database reachable through psycopg 3."""
    from django.db import connections

    connection = connections[alias]
    if connection.vendor != "postgresql":
        return False
    try:
        import psycopg  # noqa: F401
    except ImportError:  # Django on psycopg2: the ORM path serves it
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Statements:
    """The SQL of the four requests, against the model's table and column names."""

    def __init__(self, model: Any) -> None:
        meta = model._meta
        table = _quote(meta.db_table)
        ns, key, value, created, updated, expires = (
            _quote(meta.get_field(name).column)
            for name in ("namespace", "key", "value", "created_at", "updated_at", "expires_at")
        )
        alive = f"({expires} IS NULL OR {expires} > %b)"
        self.read = (
            f"SELECT {key}, {value}::text FROM {table} "
            f"WHERE {ns} = %b AND {key} = ANY(%b::text[]) AND {alive}"
        )
        self.exists = (
            f"SELECT {key} FROM {table} WHERE {ns} = %b AND {key} = ANY(%b::text[]) AND {alive}"
        )
        # One key: a plain equality plans and runs measurably faster than ``= ANY``.
        self.read_one = (
            f"SELECT {key}, {value}::text FROM {table} WHERE {ns} = %b AND {key} = %b AND {alive}"
        )
        self.exists_one = f"SELECT {key} FROM {table} WHERE {ns} = %b AND {key} = %b AND {alive}"
        version = _quote(meta.get_field("version").column)
        # An expired record counts as absent: its overwrite is a creation.
        self.write = (
            f"INSERT INTO {table} AS old ({ns}, {key}, {value}, {created}, {updated}, "
            f"{expires}, {version}) "
            f"SELECT %b, batch.k, batch.v::jsonb, %b, %b, batch.e, batch.r "
            f"FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::text[]) "
            f"AS batch(k, v, e, r) "
            f"ON CONFLICT ({ns}, {key}) DO UPDATE SET {value} = EXCLUDED.{value}, "
            f"{version} = EXCLUDED.{version}, {updated} = EXCLUDED.{updated}, "
            f"{created} = CASE WHEN old.{expires} <= EXCLUDED.{updated} "
            f"THEN EXCLUDED.{created} ELSE old.{created} END, "
            f"{expires} = EXCLUDED.{expires}"
        )
        self.delete = f"DELETE FROM {table} WHERE {ns} = %b AND {key} = ANY(%b::text[])"


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def connection_settings(alias: str) -> tuple[dict[str, Any], str | None]:
    """psycopg ``connect()`` keyword arguments for ``alias``, and the role to assume.

    Starts from Django's own ``get_connection_params()`` (NAME, USER, PASSWORD, HOST, PORT,
    OPTIONS such as ``sslmode``, ``connect_timeout`` or ``service``), minus what only
    Django's sync connection uses (its cursor class and adapters).
    """
    from django.db import connections

    wrapper = connections[alias]
    options = wrapper.settings_dict.get("OPTIONS") or {}
    params = dict(wrapper.get_connection_params())
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.setdefault("application_name", "prism-storage")
    params["autocommit"] = True
    if "prepare_threshold" not in options:
        # Django leaves statements unprepared for the sake of transaction-mode poolers;
        # the fast path's four statements are prepared unless OPTIONS says otherwise.
        params["prepare_threshold"] = 0
    return params, options.get("assume_role")


class PostgresExecutor:
    """Runs batch requests on up to ``capacity`` psycopg ``AsyncConnection`` (lazily)."""

    #: Two connections; a cancelled caller would abort its statement mid-flight, so
    #: batches always run in driver tasks (never ``direct``).
    policy: BatchPolicy = FAST_PATH
    #: Listings run here too (:meth:`.PostgresRecords.keys`).
    lists_keys = True

    def __init__(self, alias: str, namespace: str, model: Any, timeout: float) -> None:
        self._params, self._role = connection_settings(alias)
        self._sql = _Statements(model)
        self._records = PostgresRecords(model, namespace)
        self._namespace = namespace
        self._timeout = timeout
        self._idle: list[Any] = []
        self._open: set[Any] = set()

    # ----------------------------------------------------------------- Executor

    async def run(self, requests: list[Request]) -> list[Outcome]:
        connection: Any = None
        try:
            async with asyncio.timeout(self._timeout):
                connection = self._idle.pop() if self._idle else await self._connect()
                outcomes = await drive_async(
                    perform(requests, self.unavailable),
                    lambda request: self._execute(connection, request),
                )
        except BaseException as exc:
            # Cancelled or timed out mid-statement: the connection's state is unknown.
            self._discard(connection)
            if isinstance(exc, Exception) and self.unavailable(exc):
                return [exc] * len(requests)
            raise
        if any(isinstance(o, Exception) and self.unavailable(o) for o in outcomes):
            self._discard(connection)
        else:
            self._idle.append(connection)
        return outcomes

    def unavailable(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(
            exc, psycopg.OperationalError | psycopg.InterfaceError | OSError | TimeoutError
        )

    def take(self, payload: Any, first: bool) -> dict[str, Any]:
        return decode_value(payload)

    async def close(self) -> None:
        connections, self._open, self._idle = self._open, set(), []
        for connection in connections:
            await connection.close()

    def abandon(self) -> None:
        connections, self._open, self._idle = self._open, set(), []
        for connection in connections:
            # PQfinish: closes the socket without needing the (possibly closed) loop.
            connection.pgconn.finish()

    # ----------------------------------------------------------------- statements

    def _discard(self, connection: Any) -> None:
        if connection is not None:
            self._open.discard(connection)
            connection.pgconn.finish()

    async def _connect(self) -> Any:
        import psycopg
        from psycopg import sql

        connection = await psycopg.AsyncConnection.connect(**self._params)
        self._open.add(connection)
        try:
            if self._role:
                await connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self._role)))
        except BaseException:
            self._discard(connection)
            raise
        return connection

    async def _execute(self, connection: Any, request: Request) -> Any:
        if request.call is not None:
            return await self._records.run(connection, request.now, request.call)
        now = _moment(request.now)
        if len(request.keys) == 1 and request.kind in ("read", "exists"):
            statement = self._sql.read_one if request.kind == "read" else self._sql.exists_one
            cursor = await connection.execute(statement, (self._namespace, request.keys[0], now))
            rows = await cursor.fetchall()
            return dict(rows) if request.kind == "read" else {row[0] for row in rows}
        if request.kind == "read":
            found: dict[str, str] = {}
            for start in range(0, len(request.keys), READ_CHUNK_KEYS):
                cursor = await connection.execute(
                    self._sql.read,
                    (self._namespace, request.keys[start : start + READ_CHUNK_KEYS], now),
                )
                found.update(await cursor.fetchall())
            return found
        if request.kind == "exists":
            cursor = await connection.execute(
                self._sql.exists, (self._namespace, request.keys, now)
            )
            return {row[0] for row in await cursor.fetchall()}
        if request.kind == "delete":
            await connection.execute(self._sql.delete, (self._namespace, request.keys))
            return None
        chunks = _chunks(request.rows())
        if len(chunks) == 1:
            await self._write(connection, chunks[0], now)
        else:
            async with connection.transaction():
                for chunk in chunks:
                    await self._write(connection, chunk, now)
        return None

    async def _write(self, connection: Any, rows: list[Row], now: datetime) -> None:
        keys = [row[0] for row in rows]
        data = [row[2] for row in rows]
        expiries = [None if row[3] is None else _moment(row[3]) for row in rows]
        versions = [new_version() for _ in rows]
        await connection.execute(
            self._sql.write, (self._namespace, now, now, keys, data, expiries, versions)
        )


def _chunks(rows: list[Row]) -> list[list[Row]]:
    chunks: list[list[Row]] = [[]]
    size = 0
    for row in rows:
        if chunks[-1] and (len(chunks[-1]) >= WRITE_CHUNK_ROWS or size >= WRITE_CHUNK_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += len(row[2])
    return chunks
