"""The supabase backend's test infrastructure: a private database and the PostgREST stand-in.

The session creates its own database on the shared PostgreSQL server (a unique name,
dropped at the end; no other database is touched) with an ICU ``en-US`` default collation
like a Supabase project, and the Supabase roles ``anon``, ``authenticated`` and
``service_role`` (cluster-wide, created only if missing, never dropped: concurrent runs
share them). Unlike on Supabase, ``service_role`` here has no BYPASSRLS, so the shipped
policy is what lets it in. Every store gets a fresh table made from the shipped SQL.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from prism_storage.backends.supabase import table_sql
from tests.standins.postgrest_server import PostgRESTStandIn

PG_HOST = os.environ.get("PRISM_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("PRISM_TEST_PG_PORT", "5432")
PG_USER = os.environ.get("PRISM_TEST_PG_USER", "postgres")
#: Random per run, so a test that finds the key in a message found a real leak.
SERVICE_KEY = "sb_secret_" + secrets.token_urlsafe(24)
ANON_KEY = "sb_publishable_" + secrets.token_urlsafe(24)
SUPABASE_ROLES = ("anon", "authenticated", "service_role")


def pg_dsn(dbname: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname}"


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_roles(conn: psycopg.Connection) -> None:
    for role in SUPABASE_ROLES:
        conn.execute(
            sql.SQL(
                "DO $$ BEGIN CREATE ROLE {} NOLOGIN; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            ).format(sql.Identifier(role))
        )


def create_database(prefix: str) -> str:
    """Create a uniquely named database (default collation ICU en-US); return its name."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        create_roles(conn)
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
            ).format(sql.Identifier(name))
        )
        # Commits do not wait for the WAL to reach the disk. The tests check atomicity and
        # isolation, which this leaves intact; durability after a crash is not under test.
        # With a flush per commit (~5 ms on the shared test machine) 64 writers of one row
        # queue behind each other for seconds and calls outlast the store's timeout.
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name))
        )
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def supabase_database() -> Iterator[str]:
    """The DSN of this run's private database."""
    name = create_database("prism_supabase")
    try:
        yield pg_dsn(name)
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def supabase_admin(supabase_database: str) -> Iterator[psycopg.Connection]:
    """A superuser connection to the private database (DDL and direct checks)."""
    with psycopg.connect(supabase_database, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def postgrest_standin(supabase_database: str) -> Iterator[PostgRESTStandIn]:
    with PostgRESTStandIn(supabase_database, SERVICE_KEY, anon_key=ANON_KEY) as server:
        yield server


@pytest.fixture
def supabase_table(supabase_admin: psycopg.Connection) -> Callable[..., str]:
    """``make(sql_text=None)``: create a fresh table from the shipped SQL; return its name."""

    def make(sql_text: Callable[[str], str] = table_sql) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        supabase_admin.execute(sql_text(name).encode())
        return name

    return make


@pytest.fixture
def supabase_store_config(postgrest_standin, supabase_table):  # type: ignore[no-untyped-def]
    def make(namespace: str = "main") -> dict:
        return {
            "BACKEND": "supabase",
            "OPTIONS": {
                "url": postgrest_standin.url,
                "key": SERVICE_KEY,
                "table": supabase_table(),
            },
        }

    return make
