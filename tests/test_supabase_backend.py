"""The supabase backend through the real supabase-py async client, against the PostgREST
stand-in on a real PostgreSQL: the conformance suite plus what is specific to Supabase."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import re
import sys
import threading
import time
import uuid

import pytest

from prism_storage import Registry, SupabaseStorageBackend
from prism_storage.backends.supabase import SupabaseRequestError, table_sql
from prism_storage.backends.supabase import legacy as supabase_legacy
from prism_storage.exceptions import (
    BackendPermissionError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidOptionError,
    InvalidValueError,
    SchemaMismatchError,
    VersionConflictError,
)
from prism_storage.testing import FakeClock, StorageConformanceTests
from tests.support.supabase import ANON_KEY, SERVICE_KEY, closed_port

#: The stand-in is a Python server in the test process, sharing its GIL with the callers:
#: with 64 concurrent callers on the 2-core test machine its tail latency reaches seconds
#: (measured: 3200 plain sets from 64 callers, p99 2.5 s, max 5.9 s), past the default
#: timeout. A real PostgREST answers each call in milliseconds.
_CONFORMANCE_TIMEOUT = 60.0


class TestSupabaseConformance(StorageConformanceTests):
    """One fresh table per store."""

    @pytest.fixture
    def make_store(self, postgrest_standin, supabase_table):
        def make(namespace="main", **options):
            options.setdefault("timeout", _CONFORMANCE_TIMEOUT)
            return SupabaseStorageBackend(
                postgrest_standin.url, SERVICE_KEY, supabase_table(), **options
            )

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        url = f"http://127.0.0.1:{closed_port()}"
        return lambda: SupabaseStorageBackend(url, SERVICE_KEY, timeout=2)


class TestSupabaseNamespaceConformance(StorageConformanceTests):
    """Stores sharing one table, isolated by ``namespace``."""

    @pytest.fixture
    def make_store(self, postgrest_standin, supabase_table):
        table = supabase_table()

        def make(namespace="main", **options):
            options.setdefault("timeout", _CONFORMANCE_TIMEOUT)
            return SupabaseStorageBackend(
                postgrest_standin.url, SERVICE_KEY, table, namespace=namespace, **options
            )

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        url = f"http://127.0.0.1:{closed_port()}"
        return lambda: SupabaseStorageBackend(url, SERVICE_KEY, namespace="main", timeout=2)


@pytest.fixture
async def store(postgrest_standin, supabase_table):
    backend = SupabaseStorageBackend(postgrest_standin.url, SERVICE_KEY, supabase_table())
    yield backend
    await backend.close()


@pytest.fixture
def server(postgrest_standin):
    postgrest_standin.reset()
    yield postgrest_standin
    postgrest_standin.reset()


def _requests(server, method):
    return [r for r in server.requests if r.method == method]


# ---------------------------------------------------------------------- requests


async def test_batches_are_single_requests(store, server):
    records = {f"agent:{i:03}": {"i": i} for i in range(120)}
    await store.set_many(records)
    assert len(_requests(server, "POST")) == 1
    assert len(await store.get_many(list(records))) == 120
    assert len(_requests(server, "GET")) == 1
    await store.delete_many(list(records))
    assert len(_requests(server, "DELETE")) == 1
    upsert = _requests(server, "POST")[0]
    assert upsert.path == f"/rest/v1/rpc/{store.table}_prism_set"
    assert upsert.headers["apikey"] == SERVICE_KEY
    assert upsert.headers["authorization"] == f"Bearer {SERVICE_KEY}"


async def test_rows_have_the_documented_shape(store, supabase_admin):
    clock = FakeClock(start=1_700_000_000)
    store.clock = clock
    await store.set("k", {"v": 1})
    clock.advance(60)
    await store.set("k", {"v": 2}, ttl=30)
    row = supabase_admin.execute(
        f'SELECT key, data, created_at, updated_at, expires_at FROM "{store.table}"'
    ).fetchone()
    key, data, created_at, updated_at, expires_at = row
    assert (key, data) == ("k", {"v": 2})
    assert updated_at.timestamp() == 1_700_000_060
    assert expires_at.timestamp() == 1_700_000_090
    assert created_at != updated_at  # the insert's time is kept on overwrite


async def test_huge_floats_are_refused_before_io(store, server):
    with pytest.raises(InvalidValueError, match="jsonb") as caught:
        await store.set_many({"ok": {"v": 1}, "floats": {"nested": [1.5, 1e23]}})
    assert caught.value.path == "$['nested'][1]"
    assert _requests(server, "POST") == []
    await store.set("fine", {"v": 1e15, "text": "1e+23", "int": 10**23})
    assert await store.get("fine") == {"v": 1e15, "text": "1e+23", "int": 10**23}


async def test_namespace_sweep_leaves_other_namespaces(postgrest_standin, supabase_table):
    table = supabase_table()
    clock = FakeClock()
    one = SupabaseStorageBackend(
        postgrest_standin.url, SERVICE_KEY, table, namespace="one", clock=clock
    )
    two = SupabaseStorageBackend(
        postgrest_standin.url, SERVICE_KEY, table, namespace="two", clock=clock
    )
    await one.set("k", {"v": 1}, ttl=5)
    await two.set("k", {"v": 2}, ttl=5)
    clock.advance(10)
    assert await one.sweep() == 1
    assert await two.sweep() == 1
    await one.close()
    await two.close()


async def test_key_order_is_code_point_order(store):
    keys = ["b", "B", "a", "A", "agent_x", "agents/1", "Agents/2", "é", "z", "🤖", "~"]
    await store.set_many({k: {} for k in keys})
    assert list(await store.keys(limit=100)) == sorted(keys)
    assert list(await store.keys("agents/")) == ["agents/1"]


async def test_default_collation_would_break_prefix_listing(postgrest_standin, supabase_table):
    """Why the shipped SQL says collate "C": this database's default is ICU en-US."""

    def without_c_collation(name):
        return table_sql(name).replace(' collate "C"', "")

    store = SupabaseStorageBackend(
        postgrest_standin.url, SERVICE_KEY, supabase_table(without_c_collation)
    )
    await store.set_many({"agents/1": {}, "Agents/1": {}})
    assert list(await store.keys("agents/")) != ["agents/1"]
    await store.close()


# ---------------------------------------------------------------------- versioned records

_BEFORE_VERSIONS = pathlib.Path(__file__).parent / "support" / "supabase_before_versions.sql"


def _sql_before_versions(table: str) -> str:
    """The table SQL of the previous release, for ``table``."""
    return re.sub(r'"agents(?=["_])', f'"{table}', _BEFORE_VERSIONS.read_text(encoding="utf-8"))


async def test_each_versioned_operation_is_one_function_call(store, server):
    put = await store.put("k", {"messages": []})
    await store.put("k", {"messages": []}, if_version=put.version)
    assert await store.append("k", [1, 2]) == 2
    assert await store.pop("k") == 2
    assert await store.remove("k") is True
    paths = [r.path.rsplit("/", 1)[-1] for r in _requests(server, "POST")]
    prefix = f"{store.table}_prism_"
    assert paths == [prefix + f for f in ("put", "put", "append", "pop", "remove")]
    assert _requests(server, "GET") == _requests(server, "DELETE") == []


async def test_an_expired_record_counts_as_absent(postgrest_standin, supabase_table):
    clock = FakeClock(start=1_700_000_000)
    store = SupabaseStorageBackend(
        postgrest_standin.url, SERVICE_KEY, supabase_table(), clock=clock
    )
    first = await store.put("k", {"messages": ["old"]}, ttl=10)
    clock.advance(20)
    with pytest.raises(VersionConflictError) as caught:
        await store.remove("k", if_version=first.version)
    assert caught.value.current_version is None
    await store.put("k", {"messages": ["old"]}, ttl=10)
    clock.advance(20)
    assert await store.append("k", ["new"]) == 1  # the expired list is not continued
    record = await store.get_record("k")
    assert record is not None and record.value == {"messages": ["new"]}
    assert record.created_at.timestamp() == 1_700_000_040
    assert record.expires_at is None  # the store has no default ttl
    clock.advance(1)
    await store.set("k", {"v": 1}, ttl=5)
    clock.advance(10)
    again = await store.put("k", {"v": 2}, if_absent=True)
    assert again.created is True
    record = await store.get_record("k")
    assert record is not None and record.created_at.timestamp() == 1_700_000_051
    await store.close()


async def test_the_anon_key_cannot_call_the_functions(postgrest_standin, supabase_table):
    store = SupabaseStorageBackend(postgrest_standin.url, ANON_KEY, supabase_table())
    for operation in (
        store.put("k", {"v": 1}),
        store.append("k", [1]),
        store.pop("k"),
        store.remove("k"),
    ):
        with pytest.raises(BackendPermissionError):
            await operation
    await store.close()


async def test_a_table_of_the_previous_release_keeps_working_and_upgrades(
    postgrest_standin, supabase_table, supabase_admin, monkeypatch
):
    # Look for the functions again at every write rather than after a minute.
    monkeypatch.setattr(supabase_legacy, "RECHECK_SECONDS", 0.0)
    table = supabase_table(_sql_before_versions)
    old = SupabaseStorageBackend(postgrest_standin.url, SERVICE_KEY, table)
    await old.set("a", {"messages": ["hi"]})
    await old.set_many({"b": {"v": 1}, "c": {"v": 2}})
    await old.set("a", {"messages": ["hi", "there"]})
    assert await old.get("a") == {"messages": ["hi", "there"]}
    assert await old.get_many(["a", "b", "c"]) == {
        "a": {"messages": ["hi", "there"]},
        "b": {"v": 1},
        "c": {"v": 2},
    }
    await old.delete("c")
    assert list(await old.keys()) == ["a", "b"]
    for operation in (
        old.get_record("a"),
        old.put("a", {"v": 1}),
        old.remove("a", if_version="0123456789abcdef"),
        old.append("a", ["more"]),
        old.pop("a"),
    ):
        with pytest.raises(SchemaMismatchError, match="prism_supabase_sql") as caught:
            await operation
        assert isinstance(caught.value, ConfigurationError)
    assert await old.get("a") == {"messages": ["hi", "there"]}  # nothing was written

    supabase_admin.execute(table_sql(table).encode())  # the upgrade: the current SQL
    postgrest_standin.forget(table)
    upgraded = SupabaseStorageBackend(postgrest_standin.url, SERVICE_KEY, table)
    records = await upgraded.get_many_records(["a", "b"])
    assert {k: r.value for k, r in records.items()} == {
        "a": {"messages": ["hi", "there"]},
        "b": {"v": 1},
    }
    assert records["a"].version != records["b"].version  # each old row got its own
    assert await upgraded.append("a", ["more"]) == 3
    with pytest.raises(VersionConflictError):
        await upgraded.put("a", {"v": 0}, if_version=records["a"].version)
    await upgraded.set("b", {"v": 3})
    after = await upgraded.get_record("b")
    assert after is not None and after.version != records["b"].version
    assert after.created_at == records["b"].created_at
    await old.set("b", {"v": 4})  # the store that found the old table now writes versions
    latest = await upgraded.get_record("b")
    assert latest is not None and latest.value == {"v": 4} and latest.version != after.version
    await old.close()
    await upgraded.close()


async def test_a_table_without_its_functions_is_not_written_without_versions(store, supabase_admin):
    await store.set("k", {"v": 1})
    before = await store.get_record("k")
    supabase_admin.execute(f'DROP FUNCTION "{store.table}_prism_set"')
    with pytest.raises(SchemaMismatchError, match="functions"):
        await store.set("k", {"v": 2})
    assert await store.get_record("k") == before


_APPENDER = """
import asyncio, os, sys
from prism_storage.backends.supabase import SupabaseStorageBackend

async def main():
    store = SupabaseStorageBackend(sys.argv[1], os.environ["TEST_SUPABASE_KEY"], sys.argv[2],
                                   timeout=60)
    async def writer(w):
        for n in range(25):
            await store.append("chat", [{"p": sys.argv[3], "w": w, "n": n}])
    await asyncio.gather(*(writer(w) for w in range(4)))
    await store.close()

asyncio.run(main())
"""


async def test_appends_from_several_processes_lose_nothing(postgrest_standin, supabase_table):
    """The atomicity is the database's: separate processes, each with its own clients."""
    table = supabase_table()
    root = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "TEST_SUPABASE_KEY": SERVICE_KEY}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _APPENDER, postgrest_standin.url, table, str(p), env=env
        )
        for p in range(3)
    ]
    assert [await process.wait() for process in processes] == [0, 0, 0]
    store = SupabaseStorageBackend(postgrest_standin.url, SERVICE_KEY, table)
    value = await store.get("chat")
    assert value is not None and len(value["messages"]) == 3 * 4 * 25
    for p in range(3):
        for w in range(4):
            mine = [i["n"] for i in value["messages"] if i["p"] == str(p) and i["w"] == w]
            assert mine == list(range(25))
    await store.close()


def test_the_sql_names_the_functions_after_the_table():
    text = table_sql("agent_memory")
    for function in ("set", "put", "remove", "append", "pop"):
        assert f'function public."agent_memory_prism_{function}"' in text
    assert "add column if not exists version" in text
    assert '"agents' not in text


# ---------------------------------------------------------------------- failures


async def test_server_down_fails_fast():
    store = SupabaseStorageBackend(f"http://127.0.0.1:{closed_port()}", SERVICE_KEY)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="could not read"):
        await store.get("k")
    assert time.monotonic() - started < 1.0
    await store.close()


async def test_server_errors_are_unavailable_not_none(store, server):
    await store.set("k", {"v": 1})
    for status in (500, 502, 503):
        server.fail_next(status)
        with pytest.raises(BackendUnavailableError, match=str(status)) as caught:
            await store.get("k")
        assert caught.value.__cause__ is not None
    assert len(_requests(server, "GET")) == 3  # no hidden retries of 503
    assert await store.get("k") == {"v": 1}


async def test_slow_server_times_out(postgrest_standin, supabase_table, server):
    store = SupabaseStorageBackend(server.url, SERVICE_KEY, supabase_table(), timeout=0.3)
    server.delay_next(1.5)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError):
        await store.get("k")
    assert time.monotonic() - started < 1.2
    server.drop_next()
    with pytest.raises(BackendUnavailableError):
        await store.set("k", {"v": 1})
    await store.close()


async def test_wrong_key_is_a_permission_error_without_the_key(postgrest_standin, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "sb_secret_" + uuid.uuid4().hex
    store = SupabaseStorageBackend(postgrest_standin.url, wrong)
    for operation in (store.get("k"), store.set("k", {"v": 1}), store.keys()):
        with pytest.raises(BackendPermissionError) as caught:
            await operation
        error = caught.value
        chain = [error, error.__cause__, error.__context__]
        assert all(wrong not in repr(e) and wrong not in str(e) for e in chain if e)
    assert wrong not in repr(store)
    assert wrong not in caplog.text
    await store.close()


async def test_anon_key_is_refused_by_row_level_security(postgrest_standin, supabase_table):
    store = SupabaseStorageBackend(postgrest_standin.url, ANON_KEY, supabase_table())
    with pytest.raises(BackendPermissionError, match="service-role"):
        await store.set("k", {"v": 1})
    with pytest.raises(BackendPermissionError):
        await store.get("k")
    assert ANON_KEY not in str(store.check())
    assert [m.id for m in store.check()] == ["prism_storage.W031"]
    await store.close()


async def test_the_policy_is_what_admits_the_service_role(store, supabase_admin):
    await store.set("k", {"v": 1})
    supabase_admin.execute(f'DROP POLICY "{store.table}_service_role_all" ON "{store.table}"')
    assert await store.get("k") is None  # RLS now hides every row
    with pytest.raises(BackendPermissionError):
        await store.set("k2", {"v": 2})


@pytest.mark.parametrize(
    "damage",
    [
        'DROP TABLE "{t}"',
        'ALTER TABLE "{t}" RENAME COLUMN data TO value',
        'ALTER TABLE "{t}" DROP COLUMN expires_at',
    ],
)
async def test_damaged_table_is_a_configuration_error(store, supabase_admin, damage):
    await store.set("k", {"v": 1})
    supabase_admin.execute(damage.format(t=store.table))
    for operation in (store.get("k"), store.set("k", {"v": 2}), store.ping()):
        with pytest.raises(SchemaMismatchError, match="prism_supabase_sql") as caught:
            await operation
        assert isinstance(caught.value, ConfigurationError)


async def test_missing_table_is_a_configuration_error(postgrest_standin):
    store = SupabaseStorageBackend(postgrest_standin.url, SERVICE_KEY, "never_created")
    with pytest.raises(SchemaMismatchError, match="never_created"):
        await store.get("k")
    await store.close()


async def test_transient_conflict_is_retried(store, server):
    server.fail_next(409, code="23505", message="duplicate key value")
    await store.set("k", {"v": 1})
    assert await store.get("k") == {"v": 1}
    assert len(_requests(server, "POST")) == 2


async def test_lasting_conflict_names_the_extra_constraint(store, supabase_admin):
    supabase_admin.execute(f"CREATE UNIQUE INDEX ON \"{store.table}\" ((data->>'email'))")
    await store.set("a", {"email": "x@example.com"})
    with pytest.raises(SchemaMismatchError, match="constraint"):
        await store.set("b", {"email": "x@example.com"})


async def test_unexpected_client_error_is_typed(store, server):
    server.fail_next(418, code="PGRST999")
    with pytest.raises(SupabaseRequestError, match="418"):
        await store.get("k")


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "options",
    [
        {"url": "ftp://example.com", "key": "k"},
        {"url": "example.supabase.co", "key": "k"},
        {"url": "https://x.supabase.co", "key": ""},
        {"url": "https://x.supabase.co", "key": "k", "table": "agents; drop"},
        {"url": "https://x.supabase.co", "key": "k", "table": "1agents"},
        {"url": "https://x.supabase.co", "key": "k", "namespace": "a:b"},
        {"url": "https://x.supabase.co", "key": "k", "timeout": 0},
        {"url": "https://x.supabase.co", "key": "k", "ttl": -1},
        {"url": "https://x.supabase.co", "key": "k", "max_connections": 0},
        {"url": "https://x.supabase.co", "key": "k", "max_connections": "8"},
        {"url": "https://x.supabase.co", "key": "k", "max_connections": True},
    ],
)
def test_bad_options_are_refused(options):
    with pytest.raises((InvalidOptionError, ValueError)):
        SupabaseStorageBackend(**options)


def test_registry_and_repr():
    store = Registry.create(
        "supabase", url="https://abc.supabase.co", key=SERVICE_KEY, table="agent_data"
    )
    assert isinstance(store, SupabaseStorageBackend)
    assert SERVICE_KEY not in repr(store)
    assert "agent_data" in repr(store)
    with pytest.raises(InvalidOptionError, match="unknown option"):
        Registry.create("supabase", url="https://abc.supabase.co", key="k", tabel="x")


def test_checks():
    plain = SupabaseStorageBackend("http://db.example.com", SERVICE_KEY)
    assert [m.id for m in plain.check()] == ["prism_storage.W030"]
    assert SupabaseStorageBackend("http://127.0.0.1:8000", SERVICE_KEY).check() == []
    legacy_anon = "e30.eyJyb2xlIjoiYW5vbiJ9.sig"  # {"role": "anon"}
    assert [m.id for m in SupabaseStorageBackend("https://x.supabase.co", legacy_anon).check()] == [
        "prism_storage.W031"
    ]


def test_sql_command_prints_the_table_sql():
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("prism_supabase_sql", "--table", "agent_memory", stdout=out)
    text = out.getvalue()
    assert 'create table if not exists public."agent_memory"' in text
    assert 'collate "C"' in text
    assert "enable row level security" in text
    assert '"agents' not in text
    with pytest.raises(CommandError):
        call_command("prism_supabase_sql", "--table", 'x"; drop table y; --')


async def test_one_client_per_event_loop_and_close(store):
    await store.set("k", {"v": 1})
    results = []

    def other_loop():
        async def run():
            try:
                results.append(await store.get("k"))
            finally:
                await store.close()

        asyncio.run(run())

    thread = threading.Thread(target=other_loop)
    thread.start()
    thread.join()
    assert results == [{"v": 1}]
    assert await store.get("k") == {"v": 1}  # this loop's client is still open


# ---------------------------------------------------------------------- live


@pytest.mark.live
@pytest.mark.skipif(
    not (os.environ.get("SUPABASE_URL") and os.environ.get("SUPABASE_KEY")),
    reason="SUPABASE_URL and SUPABASE_KEY are not set",
)
async def test_live_supabase_project():
    """Against a real project whose table (SUPABASE_TABLE, default "agents") was created
    with the shipped SQL; works in its own namespace and removes what it wrote."""
    store = SupabaseStorageBackend(
        os.environ["SUPABASE_URL"],
        os.environ["SUPABASE_KEY"],
        os.environ.get("SUPABASE_TABLE", "agents"),
        namespace=f"prism-live-{uuid.uuid4().hex}",
    )
    try:
        await store.ping()
        await store.set("agent_1", {"messages": [{"role": "user", "content": "Hello"}]})
        assert await store.get("agent_1") == {"messages": [{"role": "user", "content": "Hello"}]}
        await store.set_many({f"t/{i}": {"i": i} for i in range(20)}, ttl=600)
        assert len(await store.get_many([f"t/{i}" for i in range(20)])) == 20
        assert [k async for k in store.iter_keys("t/", page_size=7)] == sorted(
            f"t/{i}" for i in range(20)
        )
    finally:
        await store.delete_many(["agent_1", *(f"t/{i}" for i in range(20))])
        assert list(await store.keys()) == []
        await store.close()


@pytest.mark.parametrize("limit", [2, 6])
async def test_max_connections_bounds_the_connections_a_loop_opens(server, supabase_table, limit):
    store = SupabaseStorageBackend(
        server.url, SERVICE_KEY, supabase_table(), max_connections=limit, timeout=30
    )
    try:
        await store.set_many({f"k{i}": {"i": i} for i in range(16)})
        server.reset()
        # Slow answers keep every connection busy, so 16 callers want 16 connections.
        server.delay_next(0.2, count=16)
        found = await asyncio.gather(*(store.get(f"k{i}") for i in range(16)))
        assert found == [{"i": i} for i in range(16)]
        connections = {request.client_port for request in server.requests}
        assert len(connections) == limit
    finally:
        await store.close()
