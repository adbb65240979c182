"""The ``supabase`` backend against supabase-py used directly and against the same SQL on psycopg.

Paths, each writing and reading ~2.5 KB agent records by key in a table made from the
shipped SQL:

* ``supabase-py direct`` (the baseline): the requests the backend sends, built by hand
  with supabase-py's ``AsyncClient``: an upsert on ``key`` with ``return=minimal``, and a
  ``select("data")`` with the ``eq``/expiry filters and ``limit(1)``.
* ``prism supabase``: ``SupabaseStorageBackend.set/get`` (validation, encoding, typed
  errors, the per-loop client).
* ``psycopg pool (same SQL)``: the SQL those requests become (``INSERT ... ON CONFLICT
  (key) DO UPDATE``; ``SELECT data ... WHERE key = %s AND (expires_at IS NULL OR
  expires_at > %s)``) through psycopg's ``AsyncConnectionPool`` straight to PostgreSQL:
  what the HTTP hop costs.
* ``psycopg pool (same SQL) + orjson``: the same with orjson as psycopg's JSON dumps and
  loads. supabase-py encodes inside httpx with the standard library and offers no hook,
  so this is the only raw path here with the fast encoder; it is shown for reference (the
  tables' ratio stays against supabase-py direct).

The HTTP server is the PostgREST test stand-in (tests/standins), run in its own process
so that it does not share the client's interpreter lock; real PostgREST (Haskell) is
faster, and a real Supabase adds the network. The database is a scratch database on the
local PostgreSQL server, created and dropped by the bench. Each round measures every path
of every case once, in an order rotated round by round (``--rounds``, default 5, 2 with
``--quick``); a figure is the median over rounds, a ratio the median of same-round ratios
(min-max shown).

Run: ``python -m bench.bench_supabase [--quick] [--rounds N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bench.harness import (
    Case,
    Row,
    agent_record,
    measure_cases,
    parser,
    print_table,
    rounds_of,
    save_json,
    throughput,
)

BENCH = "supabase"
DIRECT = "supabase-py direct"
PRISM = "prism supabase"
PSYCOPG = "psycopg pool (same SQL)"
PSYCOPG_ORJSON = "psycopg pool (same SQL) + orjson"
TASKS = (1, 64)
KEY_SPACE = 512
KEY = "bench-service-key-0123456789"


def _serve(dsn: str, pipe: Any) -> None:
    """Child process: run the stand-in until the parent says stop."""
    import sys

    from tests.standins.postgrest_server import PostgRESTStandIn

    # 64 handler threads mostly wait on sockets; a short switch interval keeps a thread
    # that woke up from queueing ~5 ms for the interpreter lock behind the others.
    sys.setswitchinterval(0.0005)
    with PostgRESTStandIn(dsn, KEY, pool_size=16) as server:
        pipe.send(server.url)
        pipe.recv()


@contextlib.contextmanager
def standin_process(dsn: str) -> Any:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(dsn, child), daemon=True)
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Paths:
    """The three paths' set/get on one table."""

    def __init__(self, url: str, dsn: str, table: str) -> None:
        self.url, self.dsn, self.table = url, dsn, table

    async def __aenter__(self) -> Paths:
        import httpx
        from psycopg_pool import AsyncConnectionPool
        from supabase import AsyncClient, AsyncClientOptions

        from prism_storage.backends.supabase import SupabaseStorageBackend

        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
        )
        self.client = AsyncClient(
            self.url, KEY, AsyncClientOptions(httpx_client=self.http, postgrest_client_retry=False)
        )
        # A generous timeout: at 64 tasks the stand-in, not the backend, is the bottleneck.
        self.prism = SupabaseStorageBackend(self.url, KEY, self.table, timeout=60)
        self.pool = AsyncConnectionPool(self.dsn, min_size=16, max_size=16, open=False)
        await self.pool.open()

        async def orjson_loads(conn: Any) -> None:
            import orjson
            from psycopg.types.json import set_json_loads

            set_json_loads(orjson.loads, conn)

        self.fast_pool = AsyncConnectionPool(
            self.dsn, min_size=16, max_size=16, open=False, configure=orjson_loads
        )
        await self.fast_pool.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.prism.close()
        await self.pool.close()
        await self.fast_pool.close()

    async def direct_set(self, key: str, value: dict[str, Any]) -> None:
        from postgrest.types import ReturnMethod

        row = {"key": key, "data": value, "updated_at": _now(), "expires_at": None}
        await (
            self.client.table(self.table)
            .upsert(row, on_conflict="key", returning=ReturnMethod.minimal)
            .execute()
        )

    async def direct_get(self, key: str) -> Any:
        response = (
            await self.client.table(self.table)
            .select("data")
            .eq("key", key)
            .or_(f"expires_at.is.null,expires_at.gt.{_now()}")
            .limit(1)
            .execute()
        )
        return response.data[0]["data"] if response.data else None

    async def psycopg_set(self, key: str, value: dict[str, Any], fast: bool = False) -> None:
        from psycopg.types.json import Jsonb

        if fast:
            import orjson

            data, pool = Jsonb(value, dumps=orjson.dumps), self.fast_pool
        else:
            data, pool = Jsonb(value), self.pool
        async with pool.connection() as conn:
            await conn.execute(
                f'INSERT INTO "{self.table}" (key, data, updated_at, expires_at) '
                "VALUES (%s, %s, %s, NULL) ON CONFLICT (key) DO UPDATE SET "
                "data = EXCLUDED.data, updated_at = EXCLUDED.updated_at, "
                "expires_at = EXCLUDED.expires_at",
                [key, data, _now()],
            )

    async def psycopg_get(self, key: str, fast: bool = False) -> Any:
        async with (self.fast_pool if fast else self.pool).connection() as conn:
            cursor = await conn.execute(
                f'SELECT data FROM "{self.table}" WHERE key = %s '
                "AND (expires_at IS NULL OR expires_at > %s) LIMIT 1",
                [key, _now()],
            )
            row = await cursor.fetchone()
            return row[0] if row else None

    def operations(self) -> dict[str, dict[str, Callable[[str, dict[str, Any]], Awaitable[Any]]]]:
        return {
            DIRECT: {"set": self.direct_set, "get": lambda k, v: self.direct_get(k)},
            PRISM: {"set": self.prism.set, "get": lambda k, v: self.prism.get(k)},
            PSYCOPG: {"set": self.psycopg_set, "get": lambda k, v: self.psycopg_get(k)},
            PSYCOPG_ORJSON: {
                "set": lambda k, v: self.psycopg_set(k, v, fast=True),
                "get": lambda k, v: self.psycopg_get(k, fast=True),
            },
        }


async def run(url: str, dsn: str, table: str, *, quick: bool, rounds: int) -> list[Row]:
    records = [agent_record(i) for i in range(KEY_SPACE)]
    keys = [f"agent:{i:04}" for i in range(KEY_SPACE)]
    total = 200 if quick else 2000
    async with Paths(url, dsn, table) as paths:
        operations = paths.operations()
        await paths.prism.set_many(dict(zip(keys, records, strict=True)))

        def timed(
            call: Callable[[str, dict[str, Any]], Awaitable[Any]], tasks: int
        ) -> Callable[[], Awaitable[float]]:
            async def one(i: int) -> None:
                await call(keys[i % KEY_SPACE], records[i % KEY_SPACE])

            return lambda: throughput(one, tasks=tasks, total=total)

        cases = [
            Case(
                BENCH,
                f"{op} x{tasks}",
                [(path, timed(ops[op], tasks)) for path, ops in operations.items()],
            )
            for op in ("set", "get")
            for tasks in TASKS
        ]
        return await measure_cases(cases, rounds)


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])  # type: ignore[union-attr]
    args = p.parse_args(argv)
    rounds = rounds_of(args)

    import psycopg

    from prism_storage.backends.supabase import table_sql
    from tests.support.supabase import create_database, drop_database, pg_dsn

    database = create_database("prism_bench_supabase")
    try:
        dsn = pg_dsn(database)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(table_sql("agents").encode())
        started = time.monotonic()
        with standin_process(dsn) as url:
            rows = await run(url, dsn, "agents", quick=args.quick, rounds=rounds)
    finally:
        drop_database(database)
    print_table(
        rows,
        f"supabase backend, ~2.5 KB records, median of {rounds} rotated round(s) "
        f"({time.monotonic() - started:.0f} s)",
    )
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
