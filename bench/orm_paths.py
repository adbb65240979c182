"""The paths ``bench_orm`` measures, and the scratch databases it measures them on."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

RAW = "raw psycopg pool"
RAW_ORJSON = "raw psycopg pool + orjson"
PRISM = "prism orm"
BATCH_OFF = "prism orm batch=False"
LANGGRAPH = "langgraph AsyncPostgresStore"
DJANGO_ORM = "django ORM naive"
DJANGO_CACHE = "django DatabaseCache"

RAW_POOL_SIZE = 10
CACHE_TABLE = "prism_bench_orm_cache"


class Path:
    """One path under test: set/get (and, where ``batches``, set_many/get_many) by key."""

    name = ""
    batches = False

    async def set(self, key: str, value: dict[str, Any]) -> None:
        raise NotImplementedError

    async def get(self, key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def set_many(self, mapping: dict[str, dict[str, Any]]) -> None:
        raise NotImplementedError

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    async def close(self) -> None:
        pass


def _conninfo(alias: str, dbname: str | None = None) -> str:
    from django.db import connections
    from psycopg.conninfo import make_conninfo

    params = connections[alias].settings_dict
    parts = {
        "dbname": dbname or params["NAME"],
        "user": params["USER"],
        "password": params["PASSWORD"],
        "host": params["HOST"],
        "port": params["PORT"],
    }
    return make_conninfo(**{k: str(v) for k, v in parts.items() if v})


class RawPath(Path):
    """The hand-written baseline: a psycopg pool and the same upsert/select as the backend."""

    name = RAW
    batches = True

    def __init__(self, alias: str, *, fast: bool = False) -> None:
        from prism_storage.models import Record

        self.namespace = "raw"
        self.dumps: Callable[[Any], str] = json.dumps
        self.loads: Callable[[str], Any] = json.loads
        if fast:
            import orjson

            def dumps(value: Any) -> str:
                return orjson.dumps(value).decode()  # text for the ``%s::jsonb`` parameter

            self.dumps, self.loads = dumps, orjson.loads
            self.name, self.namespace = RAW_ORJSON, "raw-orjson"
        self.conninfo = _conninfo(alias)
        table = Record._meta.db_table
        self.upsert = (
            f'INSERT INTO "{table}" (namespace, key, value, created_at, updated_at, expires_at) '
            "VALUES (%s, %s, %s::jsonb, now(), now(), NULL) ON CONFLICT (namespace, key) "
            "DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, "
            "expires_at = EXCLUDED.expires_at"
        )
        self.select = (
            f'SELECT value::text FROM "{table}" WHERE namespace = %s AND key = %s '
            "AND (expires_at IS NULL OR expires_at > now())"
        )
        self.select_many = (
            f'SELECT key, value::text FROM "{table}" WHERE namespace = %s AND key = ANY(%s) '
            "AND (expires_at IS NULL OR expires_at > now())"
        )
        self.pool: Any = None

    async def open(self) -> RawPath:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            self.conninfo,
            min_size=RAW_POOL_SIZE,
            max_size=RAW_POOL_SIZE,
            open=False,
            kwargs={"autocommit": True},
        )
        await self.pool.open(wait=True)
        return self

    async def set(self, key: str, value: dict[str, Any]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(self.upsert, (self.namespace, key, self.dumps(value)))

    async def get(self, key: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(self.select, (self.namespace, key))
            row = await cursor.fetchone()
        return None if row is None else self.loads(row[0])  # type: ignore[no-any-return]

    async def set_many(self, mapping: dict[str, dict[str, Any]]) -> None:
        rows = [(self.namespace, key, self.dumps(value)) for key, value in mapping.items()]
        async with self.pool.connection() as conn, conn.cursor() as cursor:
            await cursor.executemany(self.upsert, rows)

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(self.select_many, (self.namespace, keys))
            rows = await cursor.fetchall()
        return {key: self.loads(text) for key, text in rows}

    async def close(self) -> None:
        await self.pool.close()


class PrismPath(Path):
    batches = True

    def __init__(self, alias: str, *, batch: bool = True) -> None:
        from prism_storage import ORMStorageBackend

        options: dict[str, Any] = {} if batch else {"batch": False}
        self.name = PRISM if batch else BATCH_OFF
        self.store = ORMStorageBackend(namespace=self.name, using=alias, **options)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.store.set(key, value)

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.store.get(key)

    async def set_many(self, mapping: dict[str, dict[str, Any]]) -> None:
        await self.store.set_many(mapping)

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        return await self.store.get_many(keys)

    async def close(self) -> None:
        await self.store.close()


class LangGraphPath(Path):
    name = LANGGRAPH
    batches = True
    namespace = ("bench",)

    def __init__(self, alias: str) -> None:
        self.conninfo = _conninfo(alias)
        self.stack = contextlib.AsyncExitStack()
        self.store: Any = None

    async def open(self) -> LangGraphPath:
        from langgraph.store.postgres import AsyncPostgresStore

        self.store = await self.stack.enter_async_context(
            AsyncPostgresStore.from_conn_string(self.conninfo)
        )
        await self.store.setup()
        return self

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.store.aput(self.namespace, key, value)

    async def get(self, key: str) -> dict[str, Any] | None:
        item = await self.store.aget(self.namespace, key)
        return None if item is None else item.value  # type: ignore[no-any-return]

    async def set_many(self, mapping: dict[str, dict[str, Any]]) -> None:
        from langgraph.store.base import PutOp

        await self.store.abatch([PutOp(self.namespace, k, v) for k, v in mapping.items()])

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        from langgraph.store.base import GetOp

        items = await self.store.abatch([GetOp(self.namespace, k) for k in keys])
        return {item.key: item.value for item in items if item is not None}

    async def close(self) -> None:
        await self.stack.aclose()


class DjangoORMPath(Path):
    name = DJANGO_ORM

    def __init__(self, alias: str) -> None:
        from prism_storage.models import Record

        self.records = Record.objects.using(alias)
        self.missing = Record.DoesNotExist

    async def set(self, key: str, value: dict[str, Any]) -> None:
        from django.utils import timezone

        now = timezone.now()
        await self.records.aupdate_or_create(
            namespace=self.name,
            key=key,
            defaults={"value": value, "updated_at": now, "expires_at": None},
            create_defaults={"value": value, "created_at": now, "updated_at": now},
        )

    async def get(self, key: str) -> dict[str, Any] | None:
        try:
            record = await self.records.aget(namespace=self.name, key=key)
        except self.missing:
            return None
        return record.value  # type: ignore[no-any-return]


class DjangoCachePath(Path):
    name = DJANGO_CACHE

    def __init__(self) -> None:
        from django.core.cache.backends.db import DatabaseCache

        self.cache = DatabaseCache(
            CACHE_TABLE, {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": 10**9}}
        )

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.cache.aset(key, value)

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.cache.aget(key)  # type: ignore[no-any-return]


async def pg_paths(alias: str, *, with_batch_off: bool) -> list[Path]:
    paths: list[Path] = [
        await RawPath(alias).open(),
        await RawPath(alias, fast=True).open(),
        PrismPath(alias),
    ]
    if with_batch_off:
        paths.append(PrismPath(alias, batch=False))
    paths += [await LangGraphPath(alias).open(), DjangoORMPath(alias), DjangoCachePath()]
    return paths


def sqlite_paths(alias: str, *, with_batch_off: bool) -> list[Path]:
    # The baseline first: the backend's per-call path where it exists.
    paths: list[Path] = [PrismPath(alias, batch=False)] if with_batch_off else []
    return [*paths, PrismPath(alias), DjangoORMPath(alias)]


async def analyze(alias: str) -> None:
    """Refresh the planner's statistics, as autovacuum does on a table in service."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(_conninfo(alias), autocommit=True) as conn:
        await conn.execute("ANALYZE")


@contextlib.asynccontextmanager
async def scratch_databases(pg_name: str, sqlite_file: str) -> AsyncIterator[tuple[str, str]]:
    """Point the ``default`` (PostgreSQL) and ``sqlite`` aliases at new, migrated databases.

    As Django's test runner does, the aliases' NAME is switched for the duration and
    restored after; the PostgreSQL database is dropped and the SQLite file removed.
    """
    import psycopg
    from asgiref.sync import sync_to_async
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections
    from django.test.utils import override_settings

    pg_alias, sqlite_alias = "default", "sqlite"
    admin = _conninfo(pg_alias, dbname="postgres")

    async def admin_sql(statement: str) -> None:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(statement)

    def close_connections() -> None:
        connections.close_all()

    await sync_to_async(close_connections)()
    saved = {alias: settings.DATABASES[alias]["NAME"] for alias in (pg_alias, sqlite_alias)}
    await admin_sql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    await admin_sql(f'CREATE DATABASE "{pg_name}"')
    settings.DATABASES[pg_alias]["NAME"] = pg_name
    settings.DATABASES[sqlite_alias]["NAME"] = sqlite_file

    def migrate() -> None:
        for alias in (pg_alias, sqlite_alias):
            call_command("migrate", database=alias, verbosity=0, interactive=False)
        cache = {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": CACHE_TABLE}
        with override_settings(CACHES={"default": cache}):
            call_command("createcachetable", database=pg_alias, verbosity=0)

    try:
        await sync_to_async(migrate)()
        yield pg_alias, sqlite_alias
    finally:
        await sync_to_async(close_connections)()
        for alias, name in saved.items():
            settings.DATABASES[alias]["NAME"] = name
        await admin_sql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        with contextlib.suppress(FileNotFoundError):
            os.remove(sqlite_file)
