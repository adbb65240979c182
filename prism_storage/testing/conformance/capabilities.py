"""Capabilities and life cycle: what a store cannot do is refused, typed; ping, close, reuse,
and the sync facade from a worker thread."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db import connections

from ...backends.base import BaseStorageBackend
from ...exceptions import UnsupportedOperationError
from ...sync import SyncStore

__all__ = ["CapabilityCases"]


class CapabilityCases:
    """Search and sweep per the capability flags; ping/close/reuse; the sync facade."""

    async def test_search_capability(self, store: BaseStorageBackend) -> None:
        if store.supports_search:
            pytest.skip("the store searches: the vector tests cover search itself")
        with pytest.raises(UnsupportedOperationError):
            await store.search([0.1, 0.2], limit=3)

    async def test_sweep_capability(self, store: BaseStorageBackend) -> None:
        if store.supports_sweep:
            assert await store.sweep() == 0
        else:
            with pytest.raises(UnsupportedOperationError):
                await store.sweep()

    async def test_ping_close_and_reuse(self, store: BaseStorageBackend) -> None:
        await store.ping()
        await store.set("k", {"v": 1})
        await store.close()
        assert await store.get("k") == {"v": 1}
        await store.close()
        await store.close()

    async def test_sync_facade_from_a_worker_thread(self, store: BaseStorageBackend) -> None:
        facade = SyncStore(store)

        def sync_caller() -> dict[str, Any] | None:
            try:
                facade.set("sync", {"from": "thread"})
                facade.set_many({"sync2": {"n": 2}})
                assert facade.get_many(["sync", "sync2"]) == {
                    "sync": {"from": "thread"},
                    "sync2": {"n": 2},
                }
                return facade.get("sync")
            finally:
                # As at the end of a request or task: this thread's database connections.
                connections.close_all()

        assert await asyncio.to_thread(sync_caller) == {"from": "thread"}
        assert await store.get("sync") == {"from": "thread"}
