"""The orm backend on SQLite, a real PostgreSQL and a real MariaDB: the conformance suite
plus what is specific to the model."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async

from prism_storage import ORMStorageBackend
from prism_storage.models import Record
from prism_storage.testing import FakeClock, StorageConformanceTests


class ORMConformance(StorageConformanceTests):
    database = "default"

    @pytest.fixture
    def make_store(self, close_db_connections):
        def make(namespace="main", **options):
            return ORMStorageBackend(namespace=namespace, using=self.database, **options)

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        return lambda: ORMStorageBackend(namespace="main", using="unreachable")


@pytest.mark.django_db(transaction=True, databases=["default", "unreachable"])
class TestORMOnSQLite(ORMConformance):
    database = "default"


@pytest.mark.django_db(transaction=True, databases=["pg", "unreachable"])
class TestORMOnPostgreSQL(ORMConformance):
    database = "pg"


@pytest.mark.django_db(transaction=True, databases=["pg", "unreachable"])
class TestORMOnPostgreSQLThroughTheORM(ORMConformance):
    """PostgreSQL without the fast path: batches, and the versioned operations in
    ``SELECT ... FOR UPDATE`` transactions, through Django."""

    database = "pg"

    @pytest.fixture
    def make_store(self, close_db_connections):
        def make(namespace="main", **options):
            options.setdefault("fast_path", False)
            return ORMStorageBackend(namespace=namespace, using=self.database, **options)

        return make


@pytest.mark.django_db(transaction=True, databases=["mariadb", "mariadb_unreachable"])
class TestORMOnMariaDB(ORMConformance):
    """MariaDB (or MySQL) through the ORM path, on a server whose default collation
    compares case- and space-insensitively."""

    database = "mariadb"

    @pytest.fixture
    def make_unavailable_store(self):
        return lambda: ORMStorageBackend(namespace="main", using="mariadb_unreachable")


@pytest.mark.django_db(transaction=True, databases=["default", "unreachable"])
class TestORMOnSQLiteInLargeRecordMode(ORMConformance):
    """The ORM path's large-record mode (capped write batches, two in the thread's queue,
    reads one by one) from the first write and read: every record counts as large."""

    database = "default"

    @pytest.fixture(autouse=True)
    def large_records(self, monkeypatch):
        from prism_storage.backends.orm import LargeRecords

        monkeypatch.setattr(
            ORMStorageBackend, "large_records", LargeRecords(write=1, read=1, write_batch=40)
        )


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("database", ["default", "pg", "mariadb"])
async def test_timestamps_are_kept_right_on_overwrite(database, close_db_connections):
    clock = FakeClock(start=1_700_000_000)
    store = ORMStorageBackend("stamps", using=database, clock=clock)
    await store.set("k", {"v": 1})
    clock.advance(60)
    await store.set("k", {"v": 2})
    record = await Record.objects.using(database).aget(namespace="stamps", key="k")
    assert record.value == {"v": 2}
    assert record.updated_at - record.created_at == timedelta(seconds=60)
    assert record.expires_at is None
    await store.set("k", {"v": 3}, ttl=30)
    record = await Record.objects.using(database).aget(namespace="stamps", key="k")
    assert record.expires_at - record.updated_at == timedelta(seconds=30)
    await store.close()


@pytest.mark.django_db(transaction=True, databases=["default"])
async def test_namespace_defaults_to_the_alias(settings, close_db_connections):
    from prism_storage import storages

    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "threads": {"BACKEND": "orm"},
    }
    await storages["threads"].set("t1", {"v": 1})
    assert await storages["default"].get("t1") is None
    assert await sync_to_async(Record.objects.filter(namespace="threads", key="t1").exists)()


@pytest.mark.django_db(transaction=True, databases=["pg", "unreachable"])
async def test_unreachable_database_fails_fast(close_db_connections):
    from prism_storage.exceptions import BackendUnavailableError

    store = ORMStorageBackend("main", using="unreachable")
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="could not read"):
        await store.get("k")
    assert time.monotonic() - started < 5
    await store.close()


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("database", ["default", "pg", "mariadb"])
async def test_the_orm_path_writes_the_json_text_the_codec_made(database, close_db_connections):
    import asyncio

    from django.db import connections

    from prism_storage.codec import encode_value
    from prism_storage.sync import SyncStore

    store = ORMStorageBackend("text", using=database, fast_path=False)
    value = {
        "name": "Zoë 🙂",
        "nested": {"list": [1, 2.5, None, True, -0.0]},
        "escapes": 'quote " backslash \\ tab \t',
    }
    # Batched (several callers), alone (one caller), and from sync code.
    await asyncio.gather(store.set("a", value), store.set("b", value))
    await store.set("c", value)
    await sync_to_async(SyncStore(ORMStorageBackend("text", using=database)).set)("d", value)
    for key in "abcd":
        record = await Record.objects.using(database).aget(namespace="text", key=key)
        assert record.value == value
        assert await store.get(key) == value

    def stored_text() -> list[str]:
        with connections[database].cursor() as cursor:
            quote = connections[database].ops.quote_name
            cursor.execute(
                f"SELECT {quote('value')} FROM {quote(Record._meta.db_table)} "
                f"WHERE {quote('namespace')} = 'text' ORDER BY {quote('key')}"
            )
            return [row[0] for row in cursor.fetchall()]

    def keeps_text() -> bool:
        connection = connections[database]
        return connection.vendor == "sqlite" or (
            connection.vendor == "mysql" and connection.mysql_is_mariadb
        )

    if await sync_to_async(keeps_text)():
        # SQLite and MariaDB keep the text as written: the codec's, not a second json.dumps
        # of the dict (which would have escaped the non-ASCII characters).
        assert await sync_to_async(stored_text)() == [encode_value(value)] * 4
    await store.close()


# --------------------------------------------------------------------------- model signals

#: Every way a call reaches the database: (alias, store options, through the sync facade).
SIGNAL_PATHS = {
    "sqlite-orm-batched": ("default", {}, False),
    "sqlite-orm-batch-off": ("default", {"batch": False}, False),
    "sqlite-sync-facade": ("default", {}, True),
    "pg-fast-path": ("pg", {}, False),
    "pg-orm": ("pg", {"fast_path": False}, False),
    "pg-orm-batch-off": ("pg", {"batch": False}, False),
    "pg-sync-facade": ("pg", {}, True),
    "mariadb-orm": ("mariadb", {}, False),
    "mariadb-orm-batch-off": ("mariadb", {"batch": False}, False),
    "mariadb-sync-facade": ("mariadb", {}, True),
}


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "mariadb"])
@pytest.mark.parametrize("path", list(SIGNAL_PATHS))
async def test_no_orm_path_sends_the_record_models_signals(path, close_db_connections):
    """The decision in docs/orm.md: writes, deletes and the sweep send none of
    ``pre_save``/``post_save``/``pre_delete``/``post_delete`` for ``Record``, on every path
    (like Django's database cache, whose rows are written with SQL)."""
    import asyncio

    from django.db.models import signals

    from prism_storage.sync import SyncStore

    database, options, sync = SIGNAL_PATHS[path]
    clock = FakeClock(start=1_700_000_000)
    store = ORMStorageBackend("signals", using=database, clock=clock, **options)
    seen: list[tuple[str, str]] = []
    receivers = {}
    for name in ("pre_save", "post_save", "pre_delete", "post_delete"):

        def receiver(sender, instance, name=name, **kwargs):  # type: ignore[no-untyped-def]
            seen.append((name, instance.key))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver, sender=Record, weak=False)
    try:
        if sync:

            def run() -> None:
                facade = SyncStore(store)
                facade.set("one", {"v": 1})
                facade.set("one", {"v": 2})
                facade.delete("one")
                facade.set_many({"a": {"v": 1}, "b": {"v": 2}}, ttl=10)
                facade.delete_many(["a"])

            await sync_to_async(run)()
        else:
            await store.set("one", {"v": 1})
            await store.set("one", {"v": 2})
            await store.delete("one")
            await store.set_many({"a": {"v": 1}, "b": {"v": 2}}, ttl=10)
            await store.delete_many(["a"])
            # Batched as well: concurrent callers on the same store.
            await asyncio.gather(
                store.set("c", {"v": 3}),
                store.set("d", {"v": 4}),
                store.delete("c"),
                store.delete_many(["d"]),
            )
        # The writes and deletes did happen.
        assert await store.get_many(["one", "a", "b", "c", "d"]) == {"b": {"v": 2}}
        clock.advance(60)
        assert await store.sweep() == 1  # "b" expired
        assert seen == []
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver, sender=Record)
        await store.close()
