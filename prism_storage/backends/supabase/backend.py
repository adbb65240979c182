"""``supabase``: one row per key in a Supabase table, through supabase-py's async client.

The table (``prism_storage/sql/supabase.sql``, printed by ``manage.py prism_supabase_sql``)
has ``key text collate "C" primary key``, ``data jsonb``, ``version``, ``created_at``,
``updated_at`` and ``expires_at``. Every operation is one PostgREST request: reads filter
the table (an ``in`` filter for batches, a key range ordered by ``key`` for listings: the
"C" collation makes that order, and prefix ranges, exact and case-sensitive); writes call
the table's SQL functions (``<table>_prism_set``, ``_put``, ``_remove``, ``_append``,
``_pop``, ``_touch``) through RPC, each one atomic statement or row lock in the database.

A table made by an earlier version's SQL (no ``version`` column, no functions) still
serves ``get``/``set``/``delete``/listings the old way (see :mod:`.legacy`); the versioned
operations raise :class:`SchemaMismatchError` naming the SQL that upgrades it.

HTTP failures become typed errors: 401/403 :class:`BackendPermissionError`, a missing table
or column :class:`SchemaMismatchError`, 5xx and network failures
:class:`BackendUnavailableError` within ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.checks import CheckMessage

from ...exceptions import InvalidOptionError, SchemaMismatchError
from ..base import (
    DEFAULT_TIMEOUT,
    BaseStorageBackend,
    Clock,
    KeyPage,
    check_touch_on_read,
    check_ttl,
)
from ..clients import LoopBoundClients, require
from ..redaction import redact
from ..versions import Condition, Record, WriteResult
from .client import DEFAULT_MAX_CONNECTIONS, Connection, HTTPStatusError, connect, disconnect
from .errors import SupabaseRequestError, typed_error
from .functions import Items, TableFunctions
from .legacy import EarlierTable
from .options import check_key, check_namespace, check_url, connection_warnings
from .queries import alive, chunks, expiry, in_list, key_range, timestamp
from .rows import RECORD_COLUMNS, row_record, row_value
from .sql import check_table_name

__all__ = ["SupabaseRequestError", "SupabaseStorageBackend"]

T = TypeVar("T")

_ROWS_PER_UPSERT = 1000
_CONFLICT_ATTEMPTS = 3


class SupabaseStorageBackend(BaseStorageBackend):
    """Stores each record as a row of a Supabase table.

    :param url: the project URL (``https://<ref>.supabase.co``, or any PostgREST-compatible
        server's base URL that serves ``/rest/v1``).
    :param key: a service-role (secret) API key; never shown in repr, logs or errors.
    :param table: the table, created with ``manage.py prism_supabase_sql --table NAME``.
    :param namespace: share one table between stores: keys are stored as
        ``"<namespace>:<key>"`` and each store sees only its own.
    :param ttl: default expiry in seconds; ``None`` never expires.
    :param timeout: seconds a request may take before BackendUnavailableError.
    :param max_connections: HTTP connections per event loop (16). Calls beyond it wait for
        a free connection; raise it for a distant project with many concurrent calls.
    :param clock: returns the current time as a Unix timestamp (expiry is computed with it).
    :param touch_on_read: every read resets the expiry of the records it returns to now +
        ``ttl`` (needs ``ttl``): reads then call the ``_touch`` function, which slides and
        returns the rows in one request.
    """

    backend_name = "supabase"
    supports_ttl = True
    ttl_uses_clock = True
    supports_listing = True
    supports_sweep = True
    native_batch = True
    supports_versions = True
    supports_conditional_writes = True
    supports_atomic_lists = True
    secret_options = ("key",)
    requires = (("supabase", "supabase"),)

    def __init__(
        self,
        url: str,
        key: str,
        table: str = "agents",
        *,
        namespace: str | None = None,
        ttl: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        clock: Clock = time.time,
        touch_on_read: bool = False,
        alias: str | None = None,
    ) -> None:
        super().__init__(alias=alias)
        self.url = check_url(url)
        self._key = check_key(key)
        self.namespace = check_namespace(namespace)
        self.table = check_table_name(table)
        self._prefix = f"{namespace}:" if namespace else ""
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.touch_on_read = check_touch_on_read(touch_on_read, self.default_ttl)
        self.timeout = check_ttl(timeout)
        if type(max_connections) is not int or max_connections < 1:
            raise InvalidOptionError("max_connections must be a positive int.")
        self.max_connections = max_connections
        self.clock = clock
        self._clients: LoopBoundClients[Connection] = LoopBoundClients(self._connect, disconnect)
        self._functions = TableFunctions(self._rpc, self._prefix)
        self._earlier = EarlierTable(self._run, self._prefix)

    def describe(self) -> str:
        detail = f"url={redact(self.url)!r} table={self.table!r}"
        return detail + (f" namespace={self.namespace!r}" if self.namespace else "")

    def check(self) -> list[CheckMessage]:
        return connection_warnings(self.url, self._key)

    def _secrets(self) -> list[str]:
        return [self._key]

    def _keeps_numbers_as_decimals(self) -> bool:
        return True  # jsonb

    # ------------------------------------------------------------------ client

    def _connect(self) -> Connection:
        return connect(self.url, self._key, self.timeout, self.max_connections)

    async def close(self) -> None:
        await self._clients.close_all()

    async def _run(self, action: str, build: Callable[[Any], Any]) -> Any:
        """Execute the request ``build(table)`` makes and return its APIResponse."""
        return await self._send(action, lambda client: build(client.table(self.table)))

    async def _rpc(self, action: str, function: str, params: dict[str, Any]) -> Any:
        """Call the table's SQL function ``<table>_prism_<function>``; return its rows."""
        name = f"{self.table}_prism_{function}"
        response = await self._send(action, lambda client: client.rpc(name, params))
        return response.data

    async def _send(self, action: str, build: Callable[[Any], Any]) -> Any:
        """Execute the request ``build(client)`` makes and return its APIResponse.

        A 409 (a conflict a concurrent writer can cause) is retried; a conflict that
        persists means the table has constraints the shipped SQL does not create.
        """
        httpx = require("httpx", backend="supabase", extra="supabase")
        for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
            failure: HTTPStatusError | None = None
            request = build(self._clients.get().client).execute()
            try:
                return await self._guard(action, request, (httpx.TransportError,))
            except HTTPStatusError as exc:
                failure = exc
            assert failure is not None
            if failure.status != 409 or attempt == _CONFLICT_ATTEMPTS:
                error = self._typed_error(failure, action)
                raise error from error.__cause__
            await asyncio.sleep(0.02 * attempt)
        raise AssertionError("unreachable")

    def _typed_error(self, failure: HTTPStatusError, action: str) -> Exception:
        detail = self._redact(str(failure))
        error = typed_error(failure, action, table=self.table, url=self.url, detail=detail)
        return self._unavailable(failure, action) if error is None else error

    # ------------------------------------------------------------------ reads

    def _alive(self, query: Any) -> Any:
        return alive(query, self.clock())

    def _scope(self, query: Any) -> Any:
        """Limit ``query`` to this store's namespace."""
        return key_range(query, self._prefix) if self._prefix else query

    async def _read_row(self, columns: str, key: str, *, slide: bool) -> dict[str, Any] | None:
        """The live row of ``key`` (its ``columns``), or ``None``. ``slide``: read by the
        ``_touch`` function, which slides the row's expiry (``touch_on_read``)."""
        if slide:
            rows = await self._read_sliding([key])
        else:
            response = await self._run(
                "read",
                lambda table: self._alive(
                    table.select(columns).eq("key", self._prefix + key)
                ).limit(1),
            )
            rows = response.data
        return rows[0] if rows else None

    async def _read_rows(
        self, columns: str, keys: list[str], convert: Callable[[dict[str, Any]], T]
    ) -> list[T]:
        """``convert`` of each live row among ``keys`` (its ``columns``): ``in`` filters
        in batches sized for the URL, or the ``_touch`` function with ``touch_on_read``."""
        if self.touch_on_read:
            return [convert(row) for row in await self._read_sliding(keys)]
        found: list[T] = []
        for chunk in chunks([self._prefix + k for k in keys]):

            def build(table: Any, chunk: list[str] = chunk) -> Any:
                return self._alive(table.select(columns).filter("key", "in", in_list(chunk)))

            response = await self._run("read", build)
            found.extend(convert(row) for row in response.data)
        return found

    async def _read_sliding(self, keys: list[str]) -> list[dict[str, Any]]:
        """``touch_on_read``'s reads: slide the default expiry and read in one call."""
        return await self._functions.touch(keys, self.clock(), self.default_ttl, with_data=True)

    def _record(self, row: dict[str, Any]) -> Record:
        return row_record(row, self.table, self._prefix)

    # ------------------------------------------------------------------ operations

    async def _touch(self, key: str, ttl: float | None) -> bool:
        return bool(await self._functions.touch([key], self.clock(), ttl, with_data=False))

    async def _get(self, key: str) -> dict[str, Any] | None:
        row = await self._read_row("data", key, slide=self.touch_on_read)
        return None if row is None else row_value(row, self.table)

    async def _exists(self, key: str) -> bool:
        return await self._read_row("key", key, slide=False) is not None

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._set_many([(key, value, data)], ttl)

    async def _set_many(self, items: Items, ttl: float | None) -> None:
        for start in range(0, len(items), _ROWS_PER_UPSERT):
            await self._write_rows(items[start : start + _ROWS_PER_UPSERT], ttl)

    async def _write_rows(self, items: Items, ttl: float | None) -> None:
        """Upsert rows with new versions through ``<table>_prism_set`` (created_at kept);
        on a table of the earlier SQL, the earlier plain upsert (see :mod:`.legacy`)."""
        now = self.clock()
        expires_at = expiry(now, ttl)
        if self._earlier.in_use:
            await self._earlier.upsert(items, now, expires_at)
            return
        try:
            await self._functions.set(items, now, expires_at)
        except SchemaMismatchError as error:
            if not await self._earlier.found(error):
                raise
            await self._earlier.upsert(items, now, expires_at)

    async def _delete(self, key: str) -> None:
        await self._delete_many([key])

    async def _delete_many(self, keys: list[str]) -> None:
        from postgrest.types import ReturnMethod

        for chunk in chunks([self._prefix + k for k in keys]):

            def build(table: Any, chunk: list[str] = chunk) -> Any:
                query = table.delete(returning=ReturnMethod.minimal)
                if len(chunk) == 1:
                    return query.eq("key", chunk[0])
                return query.filter("key", "in", in_list(chunk))

            await self._run("delete", build)

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        skip = len(self._prefix)
        return dict(
            await self._read_rows(
                "key,data", keys, lambda row: (row["key"][skip:], row_value(row, self.table))
            )
        )

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        low = self._prefix + prefix

        def build(table: Any) -> Any:
            query = self._alive(table.select("key"))
            if low:
                query = key_range(query, low)
            if cursor is not None:
                query = query.gt("key", self._prefix + cursor)
            return query.order("key").limit(limit)

        response = await self._run("list keys", build)
        keys = [row["key"][len(self._prefix) :] for row in response.data]
        return KeyPage(keys, keys[-1] if len(keys) == limit else None)

    # ------------------------------------------------------------ versioned records

    async def _get_record(self, key: str) -> Record | None:
        row = await self._read_row(RECORD_COLUMNS, key, slide=self.touch_on_read)
        return None if row is None else self._record(row)

    async def _get_many_records(self, keys: list[str]) -> dict[str, Record]:
        return {
            record.key: record
            for record in await self._read_rows(RECORD_COLUMNS, keys, self._record)
        }

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        now = self.clock()
        return await self._functions.put(key, value, now, expiry(now, ttl), condition)

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        return await self._functions.remove(key, self.clock(), if_version)

    async def _append_items(
        self,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
    ) -> int:
        now = self.clock()
        expires_at = expiry(now, self.default_ttl if ttl is None else ttl)
        return await self._functions.append(
            key, field, items, max_items, now, expires_at, keep_expiry=ttl is None
        )

    async def _pop_item(self, key: str, field: str) -> Any:
        return await self._functions.pop(key, field, self.clock())

    async def _delete_prefix(self, prefix: str) -> int:
        from postgrest.types import CountMethod, ReturnMethod

        low = self._prefix + prefix

        def build(table: Any) -> Any:
            query = table.delete(count=CountMethod.exact, returning=ReturnMethod.minimal)
            if not low:
                return query.neq("key", "")  # PostgREST refuses a DELETE without a filter
            return key_range(query, low)

        response = await self._run("delete", build)
        return int(response.count or 0)

    async def sweep(self) -> int:
        from postgrest.types import CountMethod, ReturnMethod

        now = timestamp(self.clock())
        response = await self._run(
            "sweep",
            lambda table: self._scope(
                table.delete(count=CountMethod.exact, returning=ReturnMethod.minimal).lte(
                    "expires_at", now
                )
            ),
        )
        return int(response.count or 0)

    async def ping(self) -> None:
        """Check the server answers, the key is accepted and the table has every column."""
        await self._run(
            "connect",
            lambda table: (
                table.select("key,data,created_at,updated_at,expires_at").eq("key", "").limit(1)
            ),
        )
