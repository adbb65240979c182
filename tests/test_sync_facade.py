"""The sync facade used by management commands, sync views and workers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from prism_storage import FileStorageBackend, SyncStore, sync_storages
from prism_storage.backends.clients import LoopBoundClients
from prism_storage.exceptions import InvalidKeyError, InvalidValueError


def test_sync_facade_round_trip(tmp_path):
    store = SyncStore(FileStorageBackend(data_dir=tmp_path))
    store.set("k", {"v": 1})
    assert store.get("k") == {"v": 1}
    assert store.exists("k")
    assert list(store.iter_keys()) == ["k"]
    store.delete("k")
    assert store.get("k") is None


def test_sync_facade_scopes_and_erasure(tmp_path):
    store = SyncStore(FileStorageBackend(data_dir=tmp_path))
    tenant = store.scoped("acme")
    alice = tenant.scoped("alice")
    alice.set("t/1", {"v": 1})
    tenant.set("t/1", {"v": 2})
    store.set("acme-2/t/1", {"v": 3})
    assert list(alice.iter_keys()) == ["t/1"]
    assert sorted(tenant.iter_keys()) == ["alice/t/1", "t/1"]
    assert "('acme', 'alice')" in repr(alice)
    assert alice.delete_prefix("", all=True) == 1
    assert tenant.get("t/1") == {"v": 2}
    with pytest.raises(InvalidValueError):
        store.delete_prefix("")
    with pytest.raises(InvalidKeyError):
        store.scoped("x" * 600)  # the scope's prefix alone is too long for a key
    assert store.delete_prefix("acme") == 2
    assert list(store.iter_keys()) == []


def test_sync_facade_touch(tmp_path):
    store = SyncStore(FileStorageBackend(data_dir=tmp_path))
    store.set("k", {"v": 1}, ttl=5)
    assert store.touch("k", 3600) is True
    record = store.get_record("k")
    assert record is not None and record.expires_at is not None
    assert record.expires_at.timestamp() > time.time() + 3000
    assert store.touch("k") is True  # no default ttl: permanent
    record = store.get_record("k")
    assert record is not None and record.expires_at is None
    assert store.touch("missing") is False


def test_sync_storages(tmp_path, settings):
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path)}}
    }
    sync_storages["default"].set("a", {"n": 1})
    assert sync_storages["default"].get("a") == {"n": 1}
    assert list(sync_storages) == ["default"]


class LoopTrackingStore(FileStorageBackend):
    """A file store that also keeps a per-loop client, to observe loop handling."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.created: list[asyncio.AbstractEventLoop] = []
        self.closed: list[object] = []
        self.clients = LoopBoundClients(self._create_client, self._close_client)

    def _create_client(self):
        loop = asyncio.get_running_loop()
        self.created.append(loop)
        return object()

    async def _close_client(self, client):
        self.closed.append(client)

    async def _get(self, key):
        self.clients.get()
        return await super()._get(key)

    async def close(self):
        await self.clients.close_all()


def test_short_lived_loops_are_cleaned_up(tmp_path):
    store = LoopTrackingStore(data_dir=tmp_path)
    facade = SyncStore(store)
    for _ in range(3):
        assert facade.get("k") is None
    # async_to_sync ran each call on its own loop; each loop's client was closed after it.
    assert len(store.created) == 3
    assert len(store.closed) == 3


async def test_inside_an_outer_loop_the_client_is_reused(tmp_path):
    store = LoopTrackingStore(data_dir=tmp_path)
    facade = SyncStore(store)

    def sync_view():
        return [facade.get("k") for _ in range(3)]

    assert await sync_to_async(sync_view)() == [None, None, None]
    # The calls ran on this test's loop (asgiref's main event loop): one client, kept open.
    assert store.created == [asyncio.get_running_loop()]
    assert store.closed == []
    await store.close()
    assert len(store.closed) == 1


def test_sync_facade_from_many_threads(tmp_path):
    store = SyncStore(FileStorageBackend(data_dir=tmp_path))
    errors = []

    def worker(n):
        try:
            for i in range(20):
                store.set(f"t{n}/{i}", {"n": n, "i": i})
                assert store.get(f"t{n}/{i}") == {"n": n, "i": i}
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(store.iter_keys())) == 160


def test_async_to_sync_inside_running_loop_is_refused(tmp_path):
    store = SyncStore(FileStorageBackend(data_dir=tmp_path))

    async def call_from_async():
        store.get("k")

    with pytest.raises(RuntimeError):
        async_to_sync(call_from_async)()


def test_sync_facade_versioned_records_and_lists():
    from prism_storage import MemoryStorageBackend, VersionConflictError

    store = SyncStore(MemoryStorageBackend())
    created = store.put("k", {"v": 1}, if_absent=True)
    assert created.created is True
    record = store.get_record("k")
    assert record is not None and record.version == created.version
    assert store.get_many_records(["k", "x"]) == {"k": record}
    with pytest.raises(VersionConflictError):
        store.put("k", {"v": 2}, if_absent=True)
    assert store.update("k", lambda value: {"v": (value or {})["v"] + 1}) == {"v": 2}
    assert store.append("chat", ["a", "b"]) == 2
    assert store.append("chat", ["c"], max_items=2) == 2
    assert store.pop("chat") == "c"
    assert store.get("chat") == {"messages": ["b"]}
    with pytest.raises(VersionConflictError):
        store.remove("k", if_version=created.version)
    assert store.remove("k") is True
    assert store.get("k") is None
