"""``supabase``: one row per key in a Supabase table, through supabase-py's async client.

The table (``prism_storage/sql/supabase.sql``, printed by ``manage.py prism_supabase_sql``)
has ``key text collate "C" primary key``, ``data jsonb``, ``version``, ``created_at``,
``updated_at`` and ``expires_at``. Every operation is one PostgREST request: reads filter
the table (an ``in`` filter for batches, a key range ordered by ``key`` for listings: the
"C" collation makes that order, and prefix ranges, exact and case-sensitive); writes call
the table's SQL functions (``<table>_prism_set``, ``_put``, ``_remove``, ``_append``,
``_pop``, ``_touch``) through RPC, each one atomic statement or row lock in the database.

A table made by an earlier version's SQL (no ``version`` column, no functions) still
serves ``get``/``set``/``delete``/listings the old way; the versioned operations raise
:class:`SchemaMismatchError` naming the SQL that upgrades it.

HTTP failures become typed errors: 401/403 :class:`BackendPermissionError`, a missing table
or column :class:`SchemaMismatchError`, 5xx and network failures
:class:`BackendUnavailableError` within ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.core.checks import CheckMessage, Warning

from ...exceptions import (
    BackendPermissionError,
    CorruptRecordError,
    InvalidOptionError,
    InvalidValueError,
    PrismStorageError,
    SchemaMismatchError,
)
from ..base import (
    DEFAULT_TIMEOUT,
    BaseStorageBackend,
    Clock,
    KeyPage,
    check_touch_on_read,
    check_ttl,
)
from ..clients import LoopBoundClients, require
from ..key_ranges import prefix_end
from ..redaction import redact
from ..versions import ABSENT, Condition, Record, WriteResult, check_condition, new_version
from .client import DEFAULT_MAX_CONNECTIONS, Connection, HTTPStatusError, connect, disconnect
from .queries import chunks, in_list, parse_timestamp, timestamp
from .sql import check_table_name

__all__ = ["SupabaseRequestError", "SupabaseStorageBackend"]

_NAMESPACE = re.compile(r"[^\x00-\x1f\x7f-\x9f:]{1,64}")
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
_ROWS_PER_UPSERT = 1000
_CONFLICT_ATTEMPTS = 3
#: PostgREST's code for a function it does not know (of these names and arguments).
_MISSING_FUNCTION = "PGRST202"
#: The columns of a record with its metadata.
_RECORD_COLUMNS = "key,data,version,created_at,updated_at,expires_at"
#: A store that found a table of the earlier SQL writes the old way this long before it
#: looks for the functions again (so an upgrade is picked up without a restart).
_LEGACY_RECHECK_SECONDS = 60.0
#: PostgreSQL/PostgREST codes of a table whose columns differ from the shipped SQL.
_SCHEMA_CODES = {
    "42703",
    "PGRST204",
    "PGRST200",
    "42P10",
    "42804",
    "PGRST205",
    "42P01",
    "PGRST202",
    "42883",
}


class SupabaseRequestError(PrismStorageError):
    """Supabase answered a request with an error no other exception describes."""


def _jwt_role(key: str) -> str | None:
    """The ``role`` claim of a legacy JWT API key (read, not verified), if any."""
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    role = claims.get("role") if isinstance(claims, dict) else None
    return role if isinstance(role, str) else None


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
        if (
            not isinstance(url, str)
            or urlsplit(url).scheme not in ("http", "https")
            or not urlsplit(url).hostname
        ):
            raise InvalidOptionError(
                "url must be the project's http(s) URL, e.g. https://<ref>.supabase.co."
            )
        if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key):
            raise InvalidOptionError("key must be a Supabase API key (a non-empty str).")
        if namespace is not None and (
            not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace)
        ):
            raise InvalidOptionError(
                "namespace must be 1 to 64 characters without ':' or control characters."
            )
        self.url = url.rstrip("/")
        self._key = key
        self.table = check_table_name(table)
        self.namespace = namespace
        self._prefix = f"{namespace}:" if namespace else ""
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.touch_on_read = check_touch_on_read(touch_on_read, self.default_ttl)
        self.timeout = check_ttl(timeout)
        if type(max_connections) is not int or max_connections < 1:
            raise InvalidOptionError("max_connections must be a positive int.")
        self.max_connections = max_connections
        self.clock = clock
        self._clients: LoopBoundClients[Connection] = LoopBoundClients(self._connect, disconnect)
        #: Until when (time.monotonic()) ``set`` writes without versions: the table is one
        #: of the earlier SQL, without the version column and the functions.
        self._legacy_until = 0.0

    def describe(self) -> str:
        detail = f"url={redact(self.url)!r} table={self.table!r}"
        return detail + (f" namespace={self.namespace!r}" if self.namespace else "")

    def check(self) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        parts = urlsplit(self.url)
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            messages.append(
                Warning(
                    f"url {redact(self.url)!r} is plain http: the API key travels unencrypted.",
                    hint="Use the project's https:// URL.",
                    id="prism_storage.W030",
                )
            )
        if _jwt_role(self._key) in ("anon", "authenticated") or self._key.startswith(
            "sb_publishable_"
        ):
            messages.append(
                Warning(
                    "key is a public (anon/publishable) key: the shipped table policy lets only "
                    "the service role read or write, so every request will be refused.",
                    hint="Use the project's service-role (secret) key, kept on the server.",
                    id="prism_storage.W031",
                )
            )
        return messages

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
        where = f"table {self.table!r} at {redact(self.url)}"
        error: Exception
        if failure.status in (401, 403):
            error = BackendPermissionError(
                f"Supabase refused to {action} {where} ({detail}). The backend needs the "
                "service-role key, and the table's policy must allow the service_role."
            )
        elif failure.status == 404 or failure.code in _SCHEMA_CODES:
            error = SchemaMismatchError(
                f"Supabase could not {action} {where}: the table or its functions are "
                f"missing, or its columns differ from prism_storage's ({detail}). Create "
                f"or upgrade it with the SQL that `manage.py prism_supabase_sql --table "
                f"{self.table}` prints (safe to run again: it keeps existing rows)."
            )
        elif failure.status == 409:
            error = SchemaMismatchError(
                f"Supabase kept refusing to {action} {where} with a conflict ({detail}): "
                "the table has a constraint beyond its primary key."
            )
        elif failure.status == 413:
            error = InvalidValueError(f"The value is too large for the Supabase API ({detail}).")
        elif failure.status >= 500 or failure.status in (408, 429):
            return self._unavailable(failure, action)
        else:
            error = SupabaseRequestError(f"Supabase could not {action} {where} ({detail}).")
        error.__cause__ = HTTPStatusError(failure.status, {"message": detail, "code": failure.code})
        return error

    # ------------------------------------------------------------------ helpers

    def _alive(self, query: Any) -> Any:
        now = timestamp(self.clock())
        return query.or_(f"expires_at.is.null,expires_at.gt.{now}")

    def _value(self, row: dict[str, Any]) -> dict[str, Any]:
        data = row.get("data")
        if not isinstance(data, dict):
            raise CorruptRecordError(
                f"The row {row.get('key')!r} of table {self.table!r} holds "
                f"{type(data).__name__}, not a JSON object."
            )
        return data

    def _record(self, row: dict[str, Any]) -> Record:
        version = row.get("version")
        if not isinstance(version, str):
            raise CorruptRecordError(
                f"The row {row.get('key')!r} of table {self.table!r} has no version."
            )
        return Record(
            key=row["key"][len(self._prefix) :],
            value=self._value(row),
            version=version,
            created_at=parse_timestamp(row["created_at"]),
            updated_at=parse_timestamp(row["updated_at"]),
            expires_at=None
            if row.get("expires_at") is None
            else parse_timestamp(row["expires_at"]),
        )

    def _expiry(self, now: float, ttl: float | None) -> str | None:
        return None if ttl is None else timestamp(now + ttl)

    def _scope(self, query: Any) -> Any:
        """Limit ``query`` to this store's namespace."""
        if not self._prefix:
            return query
        return query.gte("key", self._prefix).lt("key", prefix_end(self._prefix))

    # ------------------------------------------------------------------ operations

    async def _slide(
        self, keys: list[str], ttl: float | None, *, with_data: bool
    ) -> list[dict[str, Any]]:
        """Call ``_touch``: the live rows among ``keys`` (store keys) get the expiry now +
        ``ttl`` (``None``: never); returns those rows (with ``data`` when asked)."""
        now = self.clock()
        rows: list[dict[str, Any]] = []
        for chunk in chunks([self._prefix + k for k in keys]):
            params = {
                "p_keys": chunk,
                "p_now": timestamp(now),
                "p_expires_at": self._expiry(now, ttl),
                "p_with_data": with_data,
            }
            rows.extend(await self._rpc("write", "touch", params))
        return rows

    async def _touch(self, key: str, ttl: float | None) -> bool:
        return bool(await self._slide([key], ttl, with_data=False))

    async def _read_sliding(self, keys: list[str]) -> list[dict[str, Any]]:
        """``touch_on_read``'s reads: slide the default expiry and read in one call."""
        return await self._slide(keys, self.default_ttl, with_data=True)

    async def _get(self, key: str) -> dict[str, Any] | None:
        if self.touch_on_read:
            rows = await self._read_sliding([key])
            return self._value(rows[0]) if rows else None
        response = await self._run(
            "read",
            lambda table: self._alive(table.select("data").eq("key", self._prefix + key)).limit(1),
        )
        return self._value(response.data[0]) if response.data else None

    async def _exists(self, key: str) -> bool:
        response = await self._run(
            "read",
            lambda table: self._alive(table.select("key").eq("key", self._prefix + key)).limit(1),
        )
        return bool(response.data)

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._set_many([(key, value, data)], ttl)

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        for start in range(0, len(items), _ROWS_PER_UPSERT):
            await self._write_rows(items[start : start + _ROWS_PER_UPSERT], ttl)

    async def _write_rows(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        """Upsert rows with new versions through ``<table>_prism_set`` (created_at kept);
        on a table of the earlier SQL, the earlier plain upsert."""
        now = self.clock()
        expires_at = self._expiry(now, ttl)
        if time.monotonic() < self._legacy_until:
            await self._legacy_upsert(items, now, expires_at)
            return
        rows = [
            {
                "key": self._prefix + key,
                "data": value,
                "version": new_version(),
                "expires_at": expires_at,
            }
            for key, value, _ in items
        ]
        try:
            await self._rpc("write", "set", {"p_rows": rows, "p_now": timestamp(now)})
        except SchemaMismatchError as error:
            missing_function = getattr(error.__cause__, "code", "") == _MISSING_FUNCTION
            if not missing_function or not await self._is_legacy_table():
                raise
            self._legacy_until = time.monotonic() + _LEGACY_RECHECK_SECONDS
            await self._legacy_upsert(items, now, expires_at)

    async def _is_legacy_table(self) -> bool:
        """Whether the table is one of the earlier SQL: no ``version`` column. (A table
        with the column but without the functions must not be written the old way: the
        versions would not change and conditional writes would miss those writes.)"""
        try:
            await self._run("read", lambda table: table.select("version").limit(0))
        except SchemaMismatchError:
            await self._run("read", lambda table: table.select("key,data").limit(0))
            return True
        return False

    async def _legacy_upsert(
        self, items: list[tuple[str, dict[str, Any], str]], now: float, expires_at: str | None
    ) -> None:
        from postgrest.types import ReturnMethod

        rows = [
            {
                "key": self._prefix + key,
                "data": value,
                "updated_at": timestamp(now),
                "expires_at": expires_at,
            }
            for key, value, _ in items
        ]
        body: Any = rows[0] if len(rows) == 1 else rows
        await self._run(
            "write",
            lambda table: table.upsert(body, on_conflict="key", returning=ReturnMethod.minimal),
        )

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
        found: dict[str, dict[str, Any]] = {}
        skip = len(self._prefix)
        if self.touch_on_read:
            rows = await self._read_sliding(keys)
            return {row["key"][skip:]: self._value(row) for row in rows}
        for chunk in chunks([self._prefix + k for k in keys]):

            def build(table: Any, chunk: list[str] = chunk) -> Any:
                return self._alive(table.select("key,data").filter("key", "in", in_list(chunk)))

            response = await self._run("read", build)
            found.update((row["key"][skip:], self._value(row)) for row in response.data)
        return found

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        low = self._prefix + prefix

        def build(table: Any) -> Any:
            query = self._alive(table.select("key"))
            if low:
                query = query.gte("key", low)
                high = prefix_end(low)
                if high is not None:
                    query = query.lt("key", high)
            if cursor is not None:
                query = query.gt("key", self._prefix + cursor)
            return query.order("key").limit(limit)

        response = await self._run("list keys", build)
        keys = [row["key"][len(self._prefix) :] for row in response.data]
        return KeyPage(keys, keys[-1] if len(keys) == limit else None)

    # ------------------------------------------------------------ versioned records

    async def _get_record(self, key: str) -> Record | None:
        if self.touch_on_read:
            rows = await self._read_sliding([key])
            return self._record(rows[0]) if rows else None
        response = await self._run(
            "read",
            lambda table: self._alive(
                table.select(_RECORD_COLUMNS).eq("key", self._prefix + key)
            ).limit(1),
        )
        return self._record(response.data[0]) if response.data else None

    async def _get_many_records(self, keys: list[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        if self.touch_on_read:
            for row in await self._read_sliding(keys):
                record = self._record(row)
                found[record.key] = record
            return found
        for chunk in chunks([self._prefix + k for k in keys]):

            def build(table: Any, chunk: list[str] = chunk) -> Any:
                return self._alive(
                    table.select(_RECORD_COLUMNS).filter("key", "in", in_list(chunk))
                )

            response = await self._run("read", build)
            for row in response.data:
                record = self._record(row)
                found[record.key] = record
        return found

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        now = self.clock()
        version = new_version()
        params: dict[str, Any] = {
            "p_key": self._prefix + key,
            "p_data": value,
            "p_version": version,
            "p_now": timestamp(now),
            "p_expires_at": self._expiry(now, ttl),
        }
        if condition is ABSENT:
            params["p_if_absent"] = True
        elif isinstance(condition, str):
            params["p_if_version"] = condition
        [result] = await self._rpc("write", "put", params)
        if not result["written"]:
            check_condition(condition, result["row_version"])
            raise AssertionError("the put function refused a write whose condition holds")
        return WriteResult(version, bool(result["created"]))

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        params: dict[str, Any] = {
            "p_key": self._prefix + key,
            "p_now": timestamp(self.clock()),
        }
        if if_version is not None:
            params["p_if_version"] = if_version
        [result] = await self._rpc("delete", "remove", params)
        if if_version is not None and not result["removed"]:
            check_condition(if_version, result["row_version"])
        return bool(result["removed"])

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
        new_ttl = self.default_ttl if ttl is None else ttl
        [result] = await self._rpc(
            "append",
            "append",
            {
                "p_key": self._prefix + key,
                "p_field": field,
                "p_items": items,
                "p_version": new_version(),
                "p_now": timestamp(now),
                "p_expires_at": self._expiry(now, new_ttl),
                "p_keep_expiry": ttl is None,
                "p_max_items": max_items,
            },
        )
        if result["list_length"] is None:
            raise self._not_a_list(field, result["field_type"])
        return int(result["list_length"])

    async def _pop_item(self, key: str, field: str) -> Any:
        [result] = await self._rpc(
            "pop",
            "pop",
            {
                "p_key": self._prefix + key,
                "p_field": field,
                "p_version": new_version(),
                "p_now": timestamp(self.clock()),
            },
        )
        if result["field_type"] not in (None, "array"):
            raise self._not_a_list(field, result["field_type"])
        return result["item"] if result["popped"] else None

    @staticmethod
    def _not_a_list(field: str, json_type: object) -> InvalidValueError:
        return InvalidValueError(
            f"The record's {field!r} field is a JSON {json_type}, not a list.", f"$.{field}"
        )

    async def _delete_prefix(self, prefix: str) -> int:
        from postgrest.types import CountMethod, ReturnMethod

        low = self._prefix + prefix

        def build(table: Any) -> Any:
            # A key range, never ``like``: ``%``, ``_`` and ``*`` are keys' characters. The
            # key column sorts in code point order (``collate "C"``), as listing relies on.
            query = table.delete(count=CountMethod.exact, returning=ReturnMethod.minimal)
            if not low:
                return query.neq("key", "")  # PostgREST refuses a DELETE without a filter
            query = query.gte("key", low)
            high = prefix_end(low)
            return query if high is None else query.lt("key", high)

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
