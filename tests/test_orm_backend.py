"""The orm backend on SQLite and on a real PostgreSQL: the conformance suite plus
what is specific to the model."""

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


@pytest.mark.django_db(transaction=True, databases=["default", "unreachable"])
class TestORMOnSQLiteInLargeRecordMode(ORMConformance):
    """The ORM path's large-record mode (capped write batches, two in the thread's queue,
    reads one by one) from the first write and read: every record counts as large."""

    database = "default"

    @pytest.fixture(autouse=True)
    def large_records(self, monkeypatch):
        from prism_storage.backends.orm import LargeRecords

        monkeypatch.setattr(ORMStorageBackend, "large_records",
                            LargeRecords(write=1, read=1, write_batch=40))


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
@pytest.mark.parametrize("database", ["default", "pg"])
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


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
@pytest.mark.parametrize("database", ["default", "pg"])
async def test_the_orm_path_writes_the_json_text_the_codec_made(database,
                                                               close_db_connections):
    import asyncio

    from django.db import connections

    from prism_storage.codec import encode_value
    from prism_storage.sync import SyncStore

    store = ORMStorageBackend("text", using=database, fast_path=False)
    value = {"name": "Zoë 🙂", "nested": {"list": [1, 2.5, None, True, -0.0]},
             "escapes": "quote \" backslash \\ tab \t"}
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
            cursor.execute(f'SELECT value FROM "{Record._meta.db_table}" '
                           "WHERE namespace = 'text' ORDER BY key")
            return [row[0] for row in cursor.fetchall()]

    if database == "default":
        # SQLite keeps the text as written: the codec's, not a second json.dumps of the
        # dict (which would have escaped the non-ASCII characters).
        assert await sync_to_async(stored_text)() == [encode_value(value)] * 4
    await store.close()
