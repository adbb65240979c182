"""Expiry: a TTL hides a record once it passes, a default TTL applies, bad TTLs are refused."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from ...backends.base import BaseStorageBackend
from ...exceptions import InvalidValueError, UnsupportedOperationError
from ..clock import FakeClock
from .fixtures import StoreFactory

__all__ = ["ExpiryCases"]


class ExpiryCases:
    """TTL on stores that keep it (by an injected clock or by the server's own), else a refusal."""

    async def test_ttl_is_refused_without_the_capability(self, store: BaseStorageBackend) -> None:
        if store.supports_ttl:
            pytest.skip("the store keeps TTL: the expiry cases cover it")
        with pytest.raises(UnsupportedOperationError):
            await store.set("k", {"v": 1}, ttl=10)
        with pytest.raises(UnsupportedOperationError):
            await store.set_many({"k": {"v": 1}}, ttl=10)
        assert await store.get("k") is None

    async def test_ttl(self, stores: StoreFactory) -> None:
        store = stores("ttl")
        if not store.supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        if store.ttl_uses_clock:
            clock = FakeClock()
            store = stores("ttl-clock", clock=clock)
            await store.set("short", {"v": 1}, ttl=10)
            await store.set("long", {"v": 2}, ttl=1000)
            await store.set("forever", {"v": 3})
            await store.set_many({"batch": {"v": 4}}, ttl=10)
            clock.advance(5)
            assert await store.get("short") == {"v": 1}
            clock.advance(6)
            await self._assert_expired(store, ["short", "batch"], ["long", "forever"])
            if store.supports_sweep:
                assert await store.sweep() >= 2
                assert await store.sweep() == 0
                assert await store.get("long") == {"v": 2}
            # A default ttl applies to every write; a per-call ttl overrides it.
            defaulted = stores("ttl-default", clock=clock, ttl=10)
            await defaulted.set("d", {"v": 1})
            await defaulted.set("o", {"v": 1}, ttl=100)
            clock.advance(11)
            await self._assert_expired(defaulted, ["d"], ["o"])
            # Overwriting without ttl makes a record permanent again.
            await store.set("long", {"v": 5})
            clock.advance(2000)
            assert await store.get("long") == {"v": 5}
        else:
            await store.set("short", {"v": 1}, ttl=1)
            await store.set("forever", {"v": 3})
            assert await store.get("short") == {"v": 1}
            await asyncio.sleep(1.3)
            await self._assert_expired(store, ["short"], ["forever"])

    async def _assert_expired(
        self, store: BaseStorageBackend, expired: list[str], alive: list[str]
    ) -> None:
        for key in expired:
            assert await store.get(key) is None, key
            assert await store.exists(key) is False, key
        for key in alive:
            assert await store.get(key) is not None, key
        assert set(await store.get_many(expired + alive)) == set(alive)
        if store.supports_listing:
            assert set(await store.keys(limit=100)) == set(alive)

    @pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, "10", True, 1e300, 10**400])
    async def test_invalid_ttl_is_refused(self, store: BaseStorageBackend, ttl: Any) -> None:
        if not store.supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        with pytest.raises(InvalidValueError):
            await store.set("k", {"v": 1}, ttl=ttl)
        assert await store.get("k") is None
