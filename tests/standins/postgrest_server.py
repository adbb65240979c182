"""A TEST STAND-IN for Supabase's REST API: a small PostgREST-compatible server, not a product.

No PostgREST binary can run on these machines, so tests point the real supabase-py client
at this loopback server. It answers the subset of PostgREST that the client sends for
prism_storage's supabase backend, by running parameterised SQL (psycopg 3) on a real
PostgreSQL database where the shipped table SQL was applied::

    with PostgRESTStandIn(dsn="dbname=... host=127.0.0.1 user=postgres",
                          service_key="service-key") as server:
        client = AsyncClient(server.url, "service-key")

Served under ``/rest/v1/<table>`` (schema ``public``):

* ``GET``/``HEAD``: ``select``, filters ``eq neq gt gte lt lte like ilike in is`` (with
  ``not.``), ``or``/``and`` trees, ``order``, ``limit``, ``offset``; ``Prefer:
  count=exact`` answered in ``Content-Range``; ``Accept: application/vnd.pgrst.object+json``
  (``.single()``) answers one object, or 406 ``PGRST116`` unless exactly one row matches.
* ``POST``: insert of an object or a list (``columns=`` honoured), with ``Prefer:
  resolution=merge-duplicates|ignore-duplicates`` an upsert on ``on_conflict`` (default:
  the primary key); ``return=minimal|representation|headers-only``; ``count=exact``.
* ``DELETE`` with filters, ``return=...`` and ``count=exact``.
* ``POST /rest/v1/rpc/<function>``: a call with the JSON body's keys as named arguments
  (see :mod:`tests.standins._postgrest_rpc`): 404 ``PGRST202`` when no function of the
  schema takes those names, the answer shaped by the return type, 204 for ``void``.

Like PostgREST, rows are written with ``json_populate_recordset`` and answered as the
database's own ``json_agg``. Errors have PostgREST's shape ``{"code", "message",
"details", "hint"}`` and status: unknown table 404 ``PGRST205``, unknown column 400
``42703``/``PGRST204``, unique or foreign-key violation 409 ``23505``/``23503``, missing
privilege 401 (anonymous role) or 403 ``42501``.

Keys: every request needs an ``apikey`` header naming a configured key (401 otherwise, with
the gateway's ``{"message": "Invalid API key"}``); the key in ``Authorization: Bearer``
(or else ``apikey``) picks the database role the request runs as, with ``SET LOCAL ROLE``,
so row-level security and grants apply as on Supabase: ``service_key`` -> ``service_role``,
``anon_key`` -> ``anon``.

Fault injection: ``fail_next(status)`` answers the next requests with an error,
``delay_next(seconds)`` stalls them, ``drop_next()`` closes the connection unanswered.
``requests`` records ``(method, path, query)`` of every request served.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from psycopg import errors, sql
from psycopg_pool import ConnectionPool

from tests.standins._postgrest_query import (
    QueryError,
    Table,
    non_negative,
    order_by,
    select_list,
    split_names,
    where,
)
from tests.standins._postgrest_rpc import Function, call_statement, find_function

_PREFIX = "/rest/v1/"
_RPC_PREFIX = "/rest/v1/rpc/"
_SINGLE = "application/vnd.pgrst.object+json"
_GATEWAY_401 = {
    "message": "Invalid API key",
    "hint": "Double check your Supabase `anon` or `service_role` API key.",
}
_CONFLICT_CODES = {"23505", "23503"}


@dataclass
class Fault:
    status: int | None = None  # answer this status
    body: dict[str, Any] | None = None
    delay: float = 0.0  # then (or instead) wait this long
    drop: bool = False  # close the connection without an answer


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    client_port: int = 0  # tells the client's connections apart


class PostgRESTStandIn:
    """The server, run in a background thread on a free loopback port."""

    def __init__(
        self,
        dsn: str,
        service_key: str,
        *,
        anon_key: str | None = None,
        service_role: str = "service_role",
        anon_role: str = "anon",
        schema: str = "public",
        pool_size: int = 8,
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.roles = {service_key: service_role}
        if anon_key is not None:
            self.roles[anon_key] = anon_role
        self.anon_role = anon_role
        self.pool_size = pool_size
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._tables: dict[str, Table] = {}
        self._functions: dict[tuple[str, frozenset[str]], Function] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.pool: ConnectionPool | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PostgRESTStandIn:
        self.pool = ConnectionPool(
            self.dsn, min_size=1, max_size=self.pool_size, open=True, kwargs={"autocommit": False}
        )
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="postgrest-standin",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def __enter__(self) -> PostgRESTStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults

    def fail_next(
        self, status: int, count: int = 1, *, code: str | None = None, message: str | None = None
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and a PostgREST error body."""
        body = {
            "code": code or str(status),
            "message": message or f"injected {status}",
            "details": None,
            "hint": None,
        }
        with self._lock:
            self._faults += [Fault(status=status, body=body) for _ in range(count)]

    def delay_next(self, seconds: float, count: int = 1) -> None:
        with self._lock:
            self._faults += [Fault(delay=seconds) for _ in range(count)]

    def drop_next(self, count: int = 1) -> None:
        with self._lock:
            self._faults += [Fault(drop=True) for _ in range(count)]

    def reset(self) -> None:
        """Forget recorded requests, pending faults and the schema cache."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self._tables.clear()
            self._functions.clear()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    # ------------------------------------------------------------------ schema cache

    def table(self, conn: psycopg.Connection[Any], name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            rows = conn.execute(
                "SELECT a.attname, coalesce(a.attnum = ANY(i.indkey), false) "
                "FROM pg_attribute a LEFT JOIN pg_index i "
                "  ON i.indrelid = a.attrelid AND i.indisprimary "
                "WHERE a.attrelid = to_regclass(format('%%I.%%I', %s::text, %s::text)) "
                "  AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                [self.schema, name],
            ).fetchall()
            if not rows:
                raise QueryError(
                    404,
                    "PGRST205",
                    f"Could not find the table '{self.schema}.{name}' in the schema cache",
                )
            table = Table(self.schema, name, [r[0] for r in rows], [r[0] for r in rows if r[1]])
            self._tables[name] = table
        return table

    def forget(self, name: str) -> None:
        self._tables.pop(name, None)
        for cached in [k for k in self._functions if k[0] == name]:
            del self._functions[cached]

    def function(self, conn: psycopg.Connection[Any], name: str, arguments: set[str]) -> Function:
        cache_key = (name, frozenset(arguments))
        function = self._functions.get(cache_key)
        if function is None:
            function = find_function(conn, self.schema, name, arguments)
            self._functions[cache_key] = function
        return function


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # 64 clients connecting at once overflow the default of 5
    standin: PostgRESTStandIn

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        # Headers and body are written separately; Nagle would hold the body ~40 ms.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._open_lock:
            self._open.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up, or a dropped connection: nothing to report

    def close_connections(self) -> None:
        with self._open_lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._open.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test output is the log

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # ------------------------------------------------------------------ plumbing

    def _handle(self, method: str) -> None:
        standin = self.server.standin
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        standin.requests.append(
            RecordedRequest(
                method,
                parts.path,
                query,
                {k.lower(): v for k, v in self.headers.items()},
                self.client_address[1],
            )
        )
        fault = standin._next_fault()
        if fault is not None:
            time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.status is not None:
                self._reply(fault.status, json.dumps(fault.body).encode())
                return
        try:
            status, payload, headers = self._answer(method, parts.path, query, body)
        except QueryError as exc:
            status, payload, headers = exc.status, json.dumps(exc.body).encode(), {}
        self._reply(status, payload, headers, send_body=method != "HEAD")

    def _reply(
        self,
        status: int,
        payload: bytes,
        headers: dict[str, str] | None = None,
        send_body: bool = True,
    ) -> None:
        self.send_response(status)
        if payload or status not in (204,):
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if send_body and payload:
            self.wfile.write(payload)

    def _role(self) -> str | None:
        """The database role of the request's key; ``None`` if the gateway refuses it."""
        roles = self.server.standin.roles
        apikey = self.headers.get("apikey") or ""
        if not any(hmac.compare_digest(apikey, known) for known in roles):
            return None
        bearer = self.headers.get("Authorization") or ""
        token = bearer[7:] if bearer.lower().startswith("bearer ") else apikey
        for known, role in roles.items():
            if hmac.compare_digest(token, known):
                return role
        raise QueryError(401, "PGRST301", "No suitable key or wrong key type")

    def _answer(
        self, method: str, path: str, query: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        role = self._role()
        if role is None:
            return 401, json.dumps(_GATEWAY_401).encode(), {}
        if path.startswith(_RPC_PREFIX) and "/" not in path[len(_RPC_PREFIX) :]:
            if method != "POST":
                raise QueryError(405, "PGRST117", f"Unsupported HTTP method: {method}")
            return self._call(role, unquote(path[len(_RPC_PREFIX) :]), body)
        if not path.startswith(_PREFIX) or "/" in path[len(_PREFIX) :]:
            raise QueryError(404, "PGRST125", f"Invalid path specified in request URL: {path}")
        name = unquote(path[len(_PREFIX) :])
        prefer = {p.strip() for h in self.headers.get_all("Prefer") or [] for p in h.split(",")}
        standin = self.server.standin
        assert standin.pool is not None
        with standin.pool.connection() as conn:
            try:
                with conn.transaction():
                    table = standin.table(conn, name)
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                    if method in ("GET", "HEAD"):
                        return self._select(conn, table, query, prefer)
                    if method == "POST":
                        return self._insert(conn, table, query, prefer, body)
                    if method == "DELETE":
                        return self._delete(conn, table, query, prefer)
                    raise QueryError(405, "PGRST117", f"Unsupported HTTP method: {method}")
            except psycopg.Error as exc:
                raise self._database_error(exc, name, role) from exc

    def _call(self, role: str, name: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """Run a function; as PostgREST, one transaction in the request's role."""
        try:
            arguments = json.loads(body or b"{}")
        except ValueError as exc:
            raise QueryError(400, "PGRST102", "Empty or invalid json") from exc
        if not isinstance(arguments, dict):
            raise QueryError(400, "PGRST102", "Empty or invalid json")
        standin = self.server.standin
        assert standin.pool is not None
        with standin.pool.connection() as conn:
            try:
                with conn.transaction():
                    function = standin.function(conn, name, set(arguments))
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                    statement = call_statement(function, set(arguments))
                    values = [json.dumps(arguments)] if arguments else []
                    rows_json, count = conn.execute(statement, values).fetchone()  # type: ignore[misc]
            except psycopg.Error as exc:
                raise self._database_error(exc, name, role) from exc
        if function.returns_void:
            return 204, b"", {}
        if function.returns_set:
            return self._answer_rows(rows_json, count, 200, set())
        # One value or one row: the element itself, not a list.
        return 200, json.dumps(json.loads(rows_json)[0]).encode(), {}

    def _database_error(self, exc: psycopg.Error, table: str, role: str) -> QueryError:
        diag = exc.diag
        code = exc.sqlstate or "XX000"
        if isinstance(
            exc, errors.UndefinedTable | errors.UndefinedColumn | errors.UndefinedFunction
        ):
            self.server.standin.forget(table)
        if isinstance(exc, psycopg.OperationalError) and not exc.sqlstate:
            return QueryError(
                503, "PGRST000", "Database client error. Retrying the connection.", str(exc)
            )
        status = 500
        if code in _CONFLICT_CODES:
            status = 409
        elif code == "42501":
            status = 401 if role == self.server.standin.anon_role else 403
        elif code == "42P01":
            status = 404
        elif code[:2] in ("22", "23", "42") or code == "P0001":
            status = 400
        return QueryError(
            status, code, diag.message_primary or str(exc), diag.message_detail, diag.message_hint
        )

    # ------------------------------------------------------------------ verbs

    @staticmethod
    def _aggregate(inner: sql.Composable) -> sql.Composed:
        return sql.SQL("SELECT coalesce(json_agg(_r), '[]')::text, count(*) FROM ({}) _r").format(
            inner
        )

    def _answer_rows(
        self,
        rows_json: str,
        count: int,
        status: int,
        prefer: set[str],
        total: int | None = None,
        first: int = 0,
    ) -> tuple[int, bytes, dict[str, str]]:
        headers = {}
        if "count=exact" in prefer or total is not None:
            shown = f"{first}-{first + count - 1}" if count else "*"
            headers["Content-Range"] = f"{shown}/{count if total is None else total}"
        if self.headers.get("Accept", "").startswith(_SINGLE):
            if count != 1:
                raise QueryError(
                    406,
                    "PGRST116",
                    "JSON object requested, multiple (or no) rows returned",
                    f"The result contains {count} rows",
                )
            return status, json.dumps(json.loads(rows_json)[0]).encode(), headers
        return status, rows_json.encode(), headers

    def _select(
        self,
        conn: psycopg.Connection[Any],
        table: Table,
        query: list[tuple[str, str]],
        prefer: set[str],
    ) -> tuple[int, bytes, dict[str, str]]:
        params = dict(query)
        condition, values = where(table, query)
        limit, offset = non_negative(params, "limit"), non_negative(params, "offset") or 0
        statement = sql.SQL("SELECT {} FROM {} WHERE {}{}").format(
            select_list(table, params.get("select")),
            table.identifier,
            condition,
            order_by(table, params.get("order")),
        )
        if limit is not None:
            statement += sql.SQL(" LIMIT {}").format(sql.Literal(limit))
        if offset:
            statement += sql.SQL(" OFFSET {}").format(sql.Literal(offset))
        rows_json, count = conn.execute(self._aggregate(statement), values).fetchone()  # type: ignore[misc]
        total = None
        if "count=exact" in prefer:
            counted = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                table.identifier, condition
            )
            total = conn.execute(counted, values).fetchone()[0]  # type: ignore[index]
        return self._answer_rows(rows_json, count, 200, prefer, total, offset)

    def _insert(
        self,
        conn: psycopg.Connection[Any],
        table: Table,
        query: list[tuple[str, str]],
        prefer: set[str],
        body: bytes,
    ) -> tuple[int, bytes, dict[str, str]]:
        params = dict(query)
        try:
            payload = json.loads(body or b"null")
        except ValueError as exc:
            raise QueryError(400, "PGRST102", "Empty or invalid json") from exc
        rows = [payload] if isinstance(payload, dict) else payload
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise QueryError(400, "PGRST102", "All object keys must match")
        names = (
            split_names(params["columns"]) if "columns" in params else list(rows[0] if rows else {})
        )
        for column in names:
            if column not in table.columns:
                raise QueryError(
                    400,
                    "PGRST204",
                    f"Could not find the '{column}' column of '{table.name}' in the schema cache",
                )
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in names)
        statement = sql.SQL(
            "INSERT INTO {t} AS _t ({c}) SELECT {c} FROM "
            "json_populate_recordset(NULL::{t}, %s::json)"
        ).format(t=table.identifier, c=columns)
        if "resolution=merge-duplicates" in prefer or "resolution=ignore-duplicates" in prefer:
            target = split_names(params.get("on_conflict", "")) or table.primary_key
            action = sql.SQL("NOTHING")
            if "resolution=merge-duplicates" in prefer:
                action = sql.SQL("UPDATE SET {}").format(
                    sql.SQL(", ").join(
                        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in names
                    )
                )
            statement += sql.SQL(" ON CONFLICT ({}) DO {}").format(
                sql.SQL(", ").join(table.column(c) for c in target), action
            )
        return self._write(conn, table, statement, [json.dumps(rows)], params, prefer, 201)

    def _delete(
        self,
        conn: psycopg.Connection[Any],
        table: Table,
        query: list[tuple[str, str]],
        prefer: set[str],
    ) -> tuple[int, bytes, dict[str, str]]:
        condition, values = where(table, query)
        statement = sql.SQL("DELETE FROM {} WHERE {}").format(table.identifier, condition)
        return self._write(conn, table, statement, values, dict(query), prefer, 200)

    def _write(
        self,
        conn: psycopg.Connection[Any],
        table: Table,
        statement: sql.Composable,
        values: list[Any],
        params: dict[str, str],
        prefer: set[str],
        status: int,
    ) -> tuple[int, bytes, dict[str, str]]:
        representation = "return=representation" in prefer
        returning = select_list(table, params.get("select")) if representation else sql.SQL("1")
        wrapped = sql.SQL(
            "WITH _w AS ({} RETURNING {}) "
            "SELECT coalesce(json_agg(_w), '[]')::text, count(*) FROM _w"
        ).format(statement, returning)
        rows_json, count = conn.execute(wrapped, values).fetchone()  # type: ignore[misc]
        if representation:
            return self._answer_rows(rows_json, count, status, prefer)
        headers = {"Content-Range": f"*/{count}"} if "count=exact" in prefer else {}
        return (201 if status == 201 else 204), b"", headers
