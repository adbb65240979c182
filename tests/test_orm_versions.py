"""What the conformance suite cannot show about the orm store's versioned records: appends
from several processes at once, and records written before the ``version`` column."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connections

from prism_storage import ORMStorageBackend
from prism_storage.exceptions import VersionConflictError
from prism_storage.models import Record

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 4
APPENDS = 100
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _database_settings(alias: str) -> dict:
    settings = connections[alias].settings_dict
    return {
        k: settings[k]
        for k in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
        if k in settings
    }


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("database", ["default", "pg", "mariadb"])
def test_appends_from_several_processes_lose_and_duplicate_nothing(database):
    """SQLite in a file (its write lock) and PostgreSQL (one statement per append): every
    process's items end in the list once each, in the order the process appended them."""
    namespace = f"appends-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env["PRISM_WORKER_CONFIG"] = json.dumps(
        {
            "store": {"BACKEND": "orm", "OPTIONS": {"namespace": namespace}},
            "databases": {"default": _database_settings(database)},
        },
        default=str,
    )
    env["DJANGO_SETTINGS_MODULE"] = "tests.reliability.worker_settings"
    env["PYTHONPATH"] = str(ROOT)
    env["PRISM_WORKER_APPENDS"] = str(APPENDS)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.append_lengths_worker"],
            cwd=ROOT,
            env={**env, "PRISM_WORKER_ID": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
            outputs.append([int(line) for line in out.split()])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    record = Record.objects.using(database).get(namespace=namespace, key="chat")
    items = record.value["messages"]
    assert len(items) == PROCESSES * APPENDS
    for worker, lengths in enumerate(outputs):
        assert [item["n"] for item in items if item["w"] == worker] == list(range(APPENDS))
        # Each append saw the list grow by its own item, after every earlier one of its own.
        assert lengths == sorted(set(lengths)) and len(lengths) == APPENDS
        assert lengths[-1] <= PROCESSES * APPENDS
    assert max(length for lengths in outputs for length in lengths) == PROCESSES * APPENDS


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("path", ["sqlite", "pg-orm", "mariadb"])
def test_merged_appends_to_several_lists_from_several_processes(path):
    """Processes whose tasks append to several lists at once, created on the way (merged
    appends on the ORM path: the rows read in one locked statement, written in one):
    every item ends in its list once, each task's items in the order it appended them."""
    database, options = PATHS[path]
    namespace = f"keys-{uuid.uuid4().hex[:8]}"
    keys, tasks, appends = 6, 8, 30
    env = dict(os.environ)
    env["PRISM_WORKER_CONFIG"] = json.dumps(
        {
            "store": {"BACKEND": "orm", "OPTIONS": {"namespace": namespace, **options}},
            "databases": {"default": _database_settings(database)},
        },
        default=str,
    )
    env["DJANGO_SETTINGS_MODULE"] = "tests.reliability.worker_settings"
    env["PYTHONPATH"] = str(ROOT)
    env.update(
        PRISM_WORKER_KEYS=str(keys),
        PRISM_WORKER_TASKS=str(tasks),
        PRISM_WORKER_APPENDS=str(appends),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.append_keys_worker"],
            cwd=ROOT,
            env={**env, "PRISM_WORKER_ID": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    rows = Record.objects.using(database).filter(namespace=namespace)
    lists = {row.key: row.value["messages"] for row in rows}
    assert sorted(lists) == [f"chat-{k}" for k in range(keys)]
    for key, items in lists.items():
        k = int(key.split("-")[1])
        for w in range(PROCESSES):
            for t in range(tasks):
                mine = [item["n"] for item in items if (item["w"], item["t"]) == (w, t)]
                assert mine == [n for n in range(appends) if (t + n) % keys == k]
    assert sum(len(items) for items in lists.values()) == PROCESSES * tasks * appends


def _insert_without_version(database: str, namespace: str, key: str, value: dict) -> None:
    """A row as the store wrote it before migration 0002 (no ``version`` column named)."""
    connection = connections[database]
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(name) for name in ("namespace", "key", "value", "created_at", "updated_at")
    )
    created = connection.ops.adapt_datetimefield_value(CREATED)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(Record._meta.db_table)} ({columns}, {quote('expires_at')}) "
            "VALUES (%s, %s, %s, %s, %s, NULL)",
            [namespace, key, json.dumps(value), created, created],
        )


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("database", ["default", "pg", "mariadb"])
async def test_records_from_before_the_version_column_get_a_version(database, close_db_connections):
    def migrate(*target: str) -> None:
        call_command("migrate", "prism_storage", *target, database=database, verbosity=0)

    await sync_to_async(migrate)("0001")
    try:
        for key in ("a", "b"):
            await sync_to_async(_insert_without_version)(database, "old", key, {"v": key})
    finally:
        await sync_to_async(migrate)()  # all of them
    # Code that predates the column may still insert rows until it is redeployed.
    await sync_to_async(_insert_without_version)(database, "old", "c", {"v": "c"})

    store = ORMStorageBackend("old", using=database)
    records = await store.get_many_records(["a", "b", "c"])
    assert {key: record.value for key, record in records.items()} == {
        "a": {"v": "a"},
        "b": {"v": "b"},
        "c": {"v": "c"},
    }
    assert all(record.version for record in records.values())
    assert records["a"].version != records["b"].version  # one each, not one for all
    assert records["c"].version == "0"  # the column's database default
    assert records["a"].created_at == CREATED

    # Writable like any other: conditional writes at the version read, list operations.
    written = await store.put("a", {"v": "a2"}, if_version=records["a"].version)
    assert written.created is False and written.version != records["a"].version
    assert await store.append("b", ["x"]) == 1
    assert (await store.put("c", {"v": "c2"}, if_version="0")).created is False
    after = await store.get_many_records(["a", "b"])
    assert after["a"].value == {"v": "a2"}
    assert after["b"].value == {"v": "b", "messages": ["x"]}
    for key in ("a", "b"):
        assert after[key].created_at == records[key].created_at  # kept
        assert after[key].version != records[key].version
    await store.close()


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("database", ["default", "pg", "mariadb"])
async def test_merged_appends_each_return_their_own_length(database, close_db_connections):
    """Appends to one list in one batch go as one statement; every caller still gets the
    length the list had once its own items were in."""
    import asyncio

    store = ORMStorageBackend("merged", using=database)
    await store.append("chat", ["first"])
    lengths = await asyncio.gather(*(store.append("chat", [n, n]) for n in range(30)))
    assert sorted(lengths) == list(range(3, 62, 2))
    value = await store.get("chat")
    assert value is not None and value["messages"][0] == "first"
    pairs = value["messages"][1:]
    assert sorted(pairs[0::2]) == list(range(30)) and pairs[0::2] == pairs[1::2]
    await store.close()


@pytest.mark.django_db(transaction=True, databases=["default"])
def test_an_admin_edit_makes_a_new_version():
    from django.contrib import admin

    from prism_storage.admin import RecordAdmin

    record = Record.objects.create(
        namespace="admin", key="k", value={"v": 1}, created_at=CREATED, updated_at=CREATED
    )
    record.refresh_from_db()
    before = record.version
    record.value = {"v": 2}
    RecordAdmin(Record, admin.site).save_model(None, record, None, True)  # type: ignore[arg-type]
    record.refresh_from_db()
    assert record.version not in ("", before) and record.created_at == CREATED


#: The paths a versioned operation can take: (alias, store options).
PATHS = {
    "sqlite": ("default", {}),
    "pg-fast-path": ("pg", {}),
    "pg-orm": ("pg", {"fast_path": False}),
    "mariadb": ("mariadb", {}),
}


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("path", list(PATHS))
async def test_an_expired_record_counts_as_absent(path, close_db_connections):
    from prism_storage.testing import FakeClock

    database, options = PATHS[path]
    clock = FakeClock(start=1_700_000_000)
    store = ORMStorageBackend("expired", using=database, clock=clock, **options)
    for key in ("put", "absent", "set", "append"):
        await store.set(key, {"messages": ["old"]}, ttl=10)
    old = await store.get_record("put")
    assert old is not None
    clock.advance(20)
    assert (await store.put("put", {"v": 1})).created is True
    assert (await store.put("absent", {"v": 1}, if_absent=True)).created is True
    await store.set("set", {"v": 1})
    assert await store.append("append", ["new"]) == 1
    with pytest.raises(VersionConflictError) as gone:
        await store.put("put", {"v": 2}, if_version=old.version)
    assert gone.value.current_version is not None
    records = await store.get_many_records(["put", "absent", "set", "append"])
    for record in records.values():
        assert record.created_at == record.updated_at == _now(clock)
        assert record.expires_at is None
    assert records["append"].value == {"messages": ["new"]}
    await store.close()


def _now(clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("database", ["default", "pg", "mariadb"])
async def test_sync_callers_append_inside_their_transaction(database, close_db_connections):
    """From sync code the operations run on the caller's connection: inside
    ``transaction.atomic`` they commit or roll back with it."""
    from asgiref.sync import async_to_sync
    from django.db import transaction

    store = ORMStorageBackend("sync", using=database)

    class Undo(Exception):
        pass

    def rolled_back() -> None:
        with pytest.raises(Undo), transaction.atomic(using=database):
            assert async_to_sync(store.append)("chat", ["a", "b"]) == 2
            assert async_to_sync(store.pop)("chat") == "b"
            assert async_to_sync(store.put)("other", {"v": 1}, if_absent=True).created
            raise Undo

    def committed() -> int:
        with transaction.atomic(using=database):
            return async_to_sync(store.append)("chat", ["c"])

    await sync_to_async(rolled_back)()
    assert await store.get_many(["chat", "other"]) == {}
    assert await sync_to_async(committed)() == 1
    assert await store.get("chat") == {"messages": ["c"]}
    await store.close()


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("path", list(PATHS))
async def test_merged_appends_to_several_lists(path, close_db_connections):
    """Appends to several lists in one batch: one operation, yet a field that is not a
    list fails only its own callers, and each caller gets its own list's length."""
    import asyncio

    from prism_storage.exceptions import InvalidValueError

    database, options = PATHS[path]
    store = ORMStorageBackend("several", using=database, **options)
    await store.set("bad", {"messages": "not a list"})
    await store.set("b", {"messages": [0], "title": "kept"})
    calls = [("a", 1), ("b", 1), ("bad", 1), ("a", 2), ("b", 2), ("a", 3), ("bad", 2)]
    results = await asyncio.gather(
        *(store.append(key, [n]) for key, n in calls), return_exceptions=True
    )
    by_key: dict[str, list] = {}
    for (key, _n), result in zip(calls, results, strict=True):
        by_key.setdefault(key, []).append(result)
    assert sorted(by_key["a"]) == [1, 2, 3]
    assert sorted(by_key["b"]) == [2, 3]
    assert all(isinstance(error, InvalidValueError) for error in by_key["bad"])
    assert await store.get_many(["a", "b", "bad"]) == {
        "a": {"messages": [1, 2, 3]},
        "b": {"messages": [0, 1, 2], "title": "kept"},
        "bad": {"messages": "not a list"},
    }
    await store.close()
